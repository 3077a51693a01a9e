"""`glyphfuse serve`: editing a picture through ``POST /api/edit`` (starlette's TestClient), its
limits and bad inputs, ``GET /api/model``'s ``edit``, and a real uvicorn server for what needs
sockets (an edit and a sampling share the one worker and its queue).

Micro 16 px models with random weights on the CPU: a grey base model for sampling, an inpainting
model warm-started from a micro colour scene model for editing (as in tests/test_edit.py), and
that colour model itself for training-free repaint. OCR is a fake reader (its text is known).
"""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from glyphfuse import cli
from glyphfuse.core.checkpoint import save_checkpoint
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.editing import open_picture
from glyphfuse.ocr import reader, tesseract
from glyphfuse.sampling import pipeline
from glyphfuse.serve import app as app_module
from glyphfuse.sampling import generation
from glyphfuse.serve import server
from glyphfuse.serve.app import EDIT_OFF, Editor, create_app
from glyphfuse.serve.checks import Limits
from glyphfuse.training.inpaint import inpaint_warm_start
from helpers import micro_config, micro_scene_config, one_torch_thread, random_model, served_in_thread  # noqa: F401 (one_torch_thread: autouse fixture)
from test_edit import animated_gif, outside, photo, picture_bytes, png_header_only

with warnings.catch_warnings():  # starlette >= 1.x prefers httpx2 to httpx; both work
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

STEPS = 2
OCR_TEXT = "hi"
BOX = (20, 10, 60, 24)  # x, y, w, h in the 96x64 test photo
SMALL = Limits(edit_bytes=100_000)  # a byte limit the tests can pass cheaply (the photo's PNG is ~18 kB)


@pytest.fixture(autouse=True)
def fake_ocr(monkeypatch):
    monkeypatch.setattr(tesseract, "read_images", lambda images, processes=None, **kwargs: [OCR_TEXT] * len(images))
    monkeypatch.setattr(reader, "read_images", lambda images, processes=None, **kwargs: [OCR_TEXT] * len(images))
    monkeypatch.setattr(tesseract, "check_tesseract", lambda: "/fake/tesseract")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Checkpoint folders: ``base`` (grey, samples), ``inpaint`` (edits with the model), ``scenes`` (edits by repaint)."""
    root = tmp_path_factory.mktemp("serve-edit")
    grey = micro_config("micro16")
    scenes = micro_scene_config("micro16rgb")
    inpaint_model, inpaint_config = inpaint_warm_start(random_model(scenes, 3), scenes)
    return {"base": Path(save_checkpoint(root / "base", random_model(grey), grey)),
            "inpaint": Path(save_checkpoint(root / "inpaint", inpaint_model, inpaint_config)),
            "scenes": Path(save_checkpoint(root / "scenes", random_model(scenes, 3), scenes))}


@pytest.fixture(scope="module")
def models(folders):
    return pipeline.load_models(folders["base"], device="cpu")


@pytest.fixture(scope="module")
def editor(folders):
    return Editor.load(folders["inpaint"])


@pytest.fixture
def client(models, folders, editor):
    with TestClient(create_app(models, folders["base"], queue_size=4, limits=SMALL, editor=editor)) as test_client:
        yield test_client


def photo_png(**kwargs) -> bytes:
    return picture_bytes(photo(**kwargs), "PNG")


def post_edit(client, params, body: bytes | None = None, content_type: str | None = "image/png"):
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return client.post("/api/edit", params=params, content=photo_png() if body is None else body, headers=headers)


def edit_params(box=BOX, **fields) -> dict:
    return {"text": "hi", "box": ",".join(map(str, box)), "steps": STEPS, **fields}


def decode_png(answer: dict) -> Image.Image:
    data = base64.b64decode(answer["image_png_base64"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- a good edit ---------------------------------------------------------------------------------


def test_an_edit_changes_only_the_box_and_answers_a_png(client):
    response = post_edit(client, edit_params(seed=5, guidance=2.5))
    assert response.status_code == 200, response.text
    answer = response.json()
    image = decode_png(answer)
    before, after = np.asarray(photo()), np.asarray(image)
    assert image.mode == "RGB" and image.size == (96, 64)
    assert np.array_equal(outside(before, BOX), outside(after, BOX))  # every pixel outside the box is the upload's
    assert not np.array_equal(before, after)  # and the box was drawn
    assert answer["box"] == list(BOX) and answer["size"] == [96, 64] and answer["mode"] == "RGB" and answer["input_format"] == "PNG"
    assert answer["text"] == "hi" and answer["seed"] == 5 and answer["image_seed"] == 5 and answer["chosen_candidate"] == 0
    assert answer["ocr_text"] == OCR_TEXT and 0.0 <= answer["similarity"] <= 1.0
    assert answer["method"] == "model" and answer["seconds"] >= 0
    assert "much larger than this text needs" in answer["note"]  # edit_picture's note, passed on (two letters in a 60 px box)
    assert answer["settings"]["steps"] == STEPS and answer["settings"]["guidance"] == 2.5 and answer["settings"]["candidates"] == 1
    again = post_edit(client, edit_params(seed=5, guidance=2.5)).json()
    assert again["image_png_base64"] == answer["image_png_base64"]  # the same request: the same picture


def test_the_answer_is_the_picture_glyphfuse_edit_writes(client, folders, tmp_path):
    from typer.testing import CliRunner

    answer = post_edit(client, edit_params(text="hi\\nyo", box=(10, 8, 70, 40), seed=7, guidance=2.0)).json()
    source, out = tmp_path / "in.png", tmp_path / "out.png"
    source.write_bytes(photo_png())
    result = CliRunner().invoke(cli.app, ["edit", str(source), "hi\\nyo", "--box", "10,8,70,40", "-o", str(out), "-c", str(folders["inpaint"]),
                                          "--seed", "7", "--steps", str(STEPS), "--guidance", "2.0", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert answer["text"] == "hi\nyo"
    assert decode_png(answer).tobytes() == Image.open(out).tobytes()


def test_candidates_are_ranked_and_the_seed_is_random_when_not_given(client):
    answer = post_edit(client, edit_params(seed=10, candidates=3)).json()
    assert answer["settings"]["candidates"] == 3 and answer["seed"] == 10 and 10 <= answer["image_seed"] <= 12
    seeds = {post_edit(client, edit_params(steps=1)).json()["seed"] for _ in range(2)}
    assert len(seeds) == 2  # no seed: a random one each time, said in the answer
    assert post_edit(client, {**edit_params(steps=1), "seed": "", "guidance": ""}).status_code == 200  # empty = left out


@pytest.mark.parametrize("kind", ["grey", "rgba", "16-bit", "jpeg", "cmyk", "lab"])
def test_every_kind_of_upload_comes_back_as_png_in_its_own_mode(client, kind):
    rgb = photo()
    rgba = rgb.copy()
    rgba.putalpha(128)
    data = {"grey": picture_bytes(rgb.convert("L"), "PNG"), "rgba": picture_bytes(rgba, "PNG"),
            "16-bit": picture_bytes(Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257), "PNG"),
            "jpeg": picture_bytes(rgb, "JPEG", quality=90), "cmyk": picture_bytes(rgb.convert("CMYK"), "JPEG"),
            "lab": picture_bytes(Image.merge("LAB", rgb.split()), "TIFF")}[kind]
    content_type = "image/jpeg" if kind in ("jpeg", "cmyk") else "application/octet-stream"
    response = post_edit(client, edit_params(steps=1, seed=1), data, content_type)
    assert response.status_code == 200, response.text
    uploaded = open_picture(data).image
    if kind in ("cmyk", "lab"):  # modes PNG cannot hold come back in RGB
        assert uploaded.mode == kind.upper()
        uploaded = uploaded.convert("RGB")
    answer = response.json()
    image = decode_png(answer)
    assert image.mode == uploaded.mode == answer["mode"] and image.size == uploaded.size
    # a JPEG comes back as a PNG of the picture as decoded: outside the box nothing is re-encoded
    assert np.array_equal(outside(np.asarray(uploaded), BOX), outside(np.asarray(image), BOX)), kind


def test_a_colour_base_model_edits_by_repaint(models, folders):
    with TestClient(create_app(models, folders["base"], editor=Editor.load(folders["scenes"]))) as repaint_client:
        assert repaint_client.get("/api/model").json()["edit"]["method"] == "repaint"
        response = post_edit(repaint_client, edit_params(steps=1, seed=2, style="sign", text_color="white"))
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["method"] == "repaint" and answer["settings"]["style"] == "sign" and answer["settings"]["text_color"] == "white"
        assert np.array_equal(outside(np.asarray(photo()), BOX), outside(np.asarray(decode_png(answer)), BOX))


# -- GET /api/model and the page -----------------------------------------------------------------


def test_the_model_summary_says_whether_and_how_the_server_edits(client, models, folders, editor):
    edit = client.get("/api/model").json()["edit"]
    assert edit["available"] is True and edit["model"] == editor.config.name == "micro16rgb-inpaint" and edit["method"] == "model"
    assert edit["max_bytes"] == SMALL.edit_bytes and edit["max_pixels"] == 40_000_000
    assert edit["image_size"] == 16 and edit["scene_kinds"] == list(editor.config.scene_kinds) and edit["steps"] == 250
    with TestClient(create_app(models, folders["base"])) as plain:
        off = plain.get("/api/model").json()["edit"]
        assert off["available"] is False and off["model"] is None and "--edit-checkpoint" in off["reason"]
        response = post_edit(plain, edit_params())
        assert response.status_code == 404 and response.json()["error"] == EDIT_OFF
        assert plain.app.state.worker.served == 0


def test_the_page_has_the_edit_panel_hidden_until_the_server_edits(client):
    response = client.get("/")
    page = response.text
    for element in ('id="edit" hidden', 'id="edit-file" type="file" accept="image/*"', 'id="edit-canvas"', 'id="edit-box"',
                    'id="edit-text"', 'id="edit-candidates"', 'id="edit-seed"', 'id="edit-run"', 'id="edit-result"', 'id="edit-ocr"',
                    'id="edit-error"', "createImageBitmap", "setPointerCapture"):
        assert element in page, element
    assert "http://" not in page and "https://" not in page
    csp = response.headers["content-security-policy"]
    assert "img-src data:;" in csp and "blob:" not in csp and "connect-src 'self'" in csp  # the upload is shown without a blob: URL


# -- limits and bad input ------------------------------------------------------------------------


BAD_EDITS = [
    # (query, body, content type, status, reason)
    (edit_params(), b"\x89PNG" + b"x" * SMALL.edit_bytes, "image/png", 413, f"larger than {SMALL.edit_bytes} bytes"),
    (edit_params(), b"hello, this is text", "image/png", 400, "upload: not a picture glyphfuse can read"),
    (edit_params(), b"", "image/png", 400, "the request body is empty"),
    (edit_params(), "truncated", "image/png", 400, "unreadable or truncated picture"),
    (edit_params(), "animated", "image/gif", 400, "an animated picture (3 frames)"),
    (edit_params(), png_header_only(8000, 6000), "image/png", 400, "upload: picture is 8000x6000 (48.0 Mpx), more than the 40 Mpx"),
    (edit_params(), png_header_only(30000, 30000), "image/png", 400, "upload: picture is more than the 40 Mpx"),  # PIL's own bomb check
    (edit_params(box=(80, 50, 40, 20)), None, "image/png", 400, "box 80,50,40,20 reaches outside the 96x64 picture (it ends at 120,70)"),
    ({"text": "hi"}, None, "image/png", 400, "box is missing: give X,Y,W,H"),
    ({"text": "hi", "box": "1,2,3"}, None, "image/png", 400, "box '1,2,3' is not X,Y,W,H"),
    ({"text": "hi", "box": "a,b,c,d"}, None, "image/png", 400, "is not X,Y,W,H"),
    ({"text": "hi", "box": "-1,2,30,20"}, None, "image/png", 400, "is not X,Y,W,H"),
    ({"text": "hi", "box": "1.5,2,30,20"}, None, "image/png", 400, "is not X,Y,W,H"),
    ({"text": "hi", "box": "1,2,0,20"}, None, "image/png", 400, "box 1,2,0,20: its width and height must be at least 1 px"),
    ({"text": "hi", "box": "9" * 5000 + ",1,1,1"}, None, "image/png", 400, "is not X,Y,W,H"),
    ({"text": "hello\nworld", "box": "1,1,12,8"}, None, "image/png", 400, "box 1,1,12,8 is too small for 2 line(s)"),
    ({"box": "1,1,40,20"}, None, "image/png", 400, "text is missing: give the text to write"),
    ({"text": "   ", "box": "1,1,40,20"}, None, "image/png", 400, "text is empty"),
    ({"text": "a\x00b", "box": "1,1,40,20"}, None, "image/png", 400, "text holds a control character"),
    ({"text": "a" * 201, "box": "1,1,40,20"}, None, "image/png", 400, "text is 201 characters, more than the 200 allowed"),
    ({"text": "ab " * 30, "box": "0,0,96,64"}, None, "image/png", 400, "tokens, more than the 48"),
    (edit_params(checkpoint="/etc/passwd"), None, "image/png", 400, "unknown field(s) 'checkpoint'"),
    (edit_params(path="/tmp/x.png", out="../y.png"), None, "image/png", 400, "unknown field(s) 'out', 'path'"),
    ([("text", "hi"), ("text", "ho"), ("box", "1,1,40,20")], None, "image/png", 400, "text given more than once"),
    (edit_params(candidates=17), None, "image/png", 400, "candidates must be between 1 and 16, got 17"),
    (edit_params(candidates="two"), None, "image/png", 400, 'candidates must be an integer, got "two"'),
    (edit_params(candidates="2.5"), None, "image/png", 400, "candidates must be an integer"),
    (edit_params(seed=-1), None, "image/png", 400, "seed must be between 0 and"),
    (edit_params(seed=2**53), None, "image/png", 400, "seed must be between 0 and"),
    (edit_params(seed="9" * 400), None, "image/png", 400, "seed must be an integer"),
    (edit_params(steps=0), None, "image/png", 400, "steps must be between 1 and 250"),
    (edit_params(guidance=1000), None, "image/png", 400, "guidance must be between 0 and 20"),
    (edit_params(guidance="nan"), None, "image/png", 400, 'guidance must be a number, got "nan"'),
    (edit_params(guidance="inf"), None, "image/png", 400, "guidance must be a number"),
    (edit_params(style="poster"), None, "image/png", 400, 'unknown style "poster"; choose one of: plain, gradient'),
    (edit_params(text_color="reddish"), None, "image/png", 400, 'text_color "reddish" is neither #RRGGBB nor a colour name'),
    (edit_params(), None, "application/json", 415, "send the picture itself as the request body (Content-Type: image/png"),
    (edit_params(), None, "multipart/form-data; boundary=x", 415, "send the picture itself as the request body"),
    (edit_params(), None, "text/plain", 415, "send the picture itself"),
    (edit_params(), None, None, 415, "send the picture itself"),
]


@pytest.mark.parametrize("query, body, content_type, status, reason", BAD_EDITS, ids=range(len(BAD_EDITS)))
def test_bad_edits_are_refused_with_one_line(client, query, body, content_type, status, reason):
    if body == "truncated":
        body = photo_png()[:300]
    elif body == "animated":
        body = animated_gif()
    response = post_edit(client, query, body, content_type)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    assert reason in message and "\n" not in message and len(message) < 500, message
    assert client.app.state.worker.served == 0  # refused before anything was queued


def test_the_default_limits():
    limits = Limits()
    assert limits.edit_bytes == 20_000_000 and limits.edit_pixels == 40_000_000


def test_wrong_method_answers_json(client):
    response = client.get("/api/edit")
    assert response.status_code == 405 and "error" in response.json()


# -- the edit model at start ---------------------------------------------------------------------


def test_the_edit_model_at_start(models, folders, tmp_path, monkeypatch):
    monkeypatch.setattr(generation, "DEFAULT_MODEL_DIR", tmp_path)
    assert server.edit_checkpoint_dir(None) is None  # nothing packaged: editing off
    assert server.edit_checkpoint_dir(folders["inpaint"]) == folders["inpaint"]
    (tmp_path / "paint").mkdir()
    (tmp_path / "paint" / "config.json").write_text("{}")
    (tmp_path / "paint" / "model.safetensors").write_bytes(b"")
    assert server.edit_checkpoint_dir(None) == tmp_path / "paint"  # packaged: the default
    with pytest.raises(GlyphfuseError, match="draws greyscale pictures; edit needs a colour model"):
        server.load_editor(folders["base"], models, folders["base"], "cpu")  # the grey base model cannot edit
    scenes = pipeline.load_models(folders["scenes"], device="cpu")
    same = server.load_editor(folders["scenes"], scenes, folders["scenes"], "cpu")
    assert same.model is scenes["base_model"] and same.method == "repaint"  # the base model itself, not loaded twice


def test_a_grey_edit_checkpoint_is_one_line_at_start(folders, monkeypatch, capsys):
    import sys

    monkeypatch.setattr(sys, "argv", ["glyphfuse", "serve", "-c", str(folders["base"]), "--edit-checkpoint", str(folders["base"]),
                                      "--port", "0", "--device", "cpu"])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as done:
        cli.main()
    err = capsys.readouterr().err.strip()
    assert done.value.code == 1 and err.startswith("error: ") and "greyscale" in err and "\n" not in err


# -- a real server: one worker for samplings and edits -------------------------------------------


@pytest.fixture
def live(models, folders, editor):
    """(base URL, app) of a uvicorn server in a thread, queue of 1, editing on."""
    app = create_app(models, folders["base"], queue_size=1, limits=SMALL, editor=editor)
    with served_in_thread(app) as url:
        yield url, app


def wait_until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_edits_and_samplings_share_the_one_worker_and_its_queue(live, monkeypatch):
    url, app = live
    started, release, lock, events = threading.Event(), threading.Event(), threading.Lock(), []
    running = []  # what runs now: never two at once
    real_sample, real_edit = pipeline.sample_many, app_module.edit_picture

    def tracked(name, real, hold):
        def run(*args, **kwargs):
            with lock:
                running.append(name)
                events.append((name, len(running)))
            if hold:
                started.set()
                assert release.wait(30)
            try:
                return real(*args, **kwargs)
            finally:
                with lock:
                    running.remove(name)
        return run

    monkeypatch.setattr(pipeline, "sample_many", tracked("sample", real_sample, True))
    monkeypatch.setattr(app_module, "edit_picture", tracked("edit", real_edit, False))
    upload = photo_png()
    with ThreadPoolExecutor(2) as pool, httpx.Client(base_url=url, timeout=120) as http:
        sampling = pool.submit(http.post, "/api/sample", json={"prompt": "ab", "seed": 1, "steps": 1})
        assert started.wait(30)
        editing = pool.submit(http.post, "/api/edit", params=edit_params(steps=1, seed=3), content=upload,
                              headers={"Content-Type": "image/png"})
        wait_until(lambda: app.state.worker.waiting == 1)  # the edit waits for the sampling
        full = http.post("/api/edit", params=edit_params(steps=1), content=upload, headers={"Content-Type": "image/png"})
        assert full.status_code == 503 and "busy" in full.json()["error"] and full.headers["retry-after"] == "1"
        release.set()
        assert sampling.result(120).json()["seed"] == 1
        edited = editing.result(120)
        assert edited.status_code == 200, edited.text
        assert edited.json()["seed"] == 3 and edited.json()["box"] == list(BOX)
    assert events == [("sample", 1), ("edit", 1)]  # one after the other, never together


def raw_post(url: str, head: bytes, chunks=()) -> bytes:
    """Send a request's head and body chunks on a socket without ending the body; the server's answer."""
    with socket.create_connection((httpx.URL(url).host, httpx.URL(url).port), timeout=30) as sock:
        sock.sendall(head)
        for chunk in chunks:
            sock.sendall(chunk)
        answer = b""
        while not answer.endswith(b"}"):  # the JSON error ends the answer
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


def test_the_byte_limit_holds_while_the_body_is_read(live):
    """413 before the body ends: a declared Content-Length over the limit, or a chunked body once it passes it."""
    url, app = live
    target = b"/api/edit?text=hi&box=20,10,60,24"
    declared = raw_post(url, b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 50000000\r\n\r\n" % target)
    assert declared.startswith(b"HTTP/1.1 413") and b"larger than 100000 bytes" in declared
    chunk = b"2710\r\n" + b"\0" * 10_000 + b"\r\n"  # 10,000 bytes a chunk; 11 of them pass the limit, the body never ends
    streamed = raw_post(url, b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n" % target,
                        [chunk] * 11)
    assert streamed.startswith(b"HTTP/1.1 413") and b"larger than 100000 bytes" in streamed
    assert app.state.worker.served == 0

"""`glyphfuse serve`: the API (starlette's TestClient), its checks, the worker and its queue, and
a real uvicorn server on a free port for what needs sockets (concurrency, 503, a client leaving).

A micro 16 px model with random weights, 2 steps on the CPU (and its RGB variant with scene
controls, for style/text_color/background_color); OCR is a fake reader (its text is known,
tesseract need not run), as in tests/test_pipeline.py.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import socket
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch
from PIL import Image

from glyphfuse import cli
from glyphfuse import serve as serve_package
from glyphfuse.core.checkpoint import CARD_NAME, save_checkpoint
from glyphfuse.core.controls import SCENE_KINDS
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.ocr import tesseract
from glyphfuse.sampling import pipeline
from glyphfuse.sampling.settings import SamplingSettings
from glyphfuse.serve import server
from glyphfuse.serve.app import create_app
from glyphfuse.serve.checks import MAX_JSON_SEED, BadRequest, Limits, check_sample_request
from glyphfuse.serve.worker import Job, QueueFull, SamplingWorker
from helpers import micro_config, one_torch_thread, random_model, served_in_thread  # noqa: F401 (one_torch_thread: autouse fixture)

with warnings.catch_warnings():  # starlette >= 1.x prefers httpx2 to httpx; both work
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

STEPS = 2
OCR_TEXT = "hi"
CARD = {"name": "micro-card", "domain": {"summary": "lowercase letters", "characters": "abcdefghijklmnopqrstuvwxyz ",
                                         "max_lines": 2, "max_chars_per_line": 9}}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    config = micro_config("micro16")
    folder = tmp_path_factory.mktemp("serve") / "ckpt"
    save_checkpoint(folder, random_model(config), config)
    (folder / CARD_NAME).write_text(json.dumps(CARD), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def models(checkpoint):
    return pipeline.load_models(checkpoint, device="cpu")


def scene_config(name: str = "micro16rgb", kinds: tuple[str, ...] = SCENE_KINDS):
    """The micro model in RGB with scene controls (a micro scenes128)."""
    config = micro_config(name)
    return dataclasses.replace(config, channels=3, scene_kinds=kinds,
                               unet=dataclasses.replace(config.unet, in_channels=3, out_channels=3))


@pytest.fixture(scope="module")
def scene_checkpoint(tmp_path_factory):
    config = scene_config()
    folder = tmp_path_factory.mktemp("serve-scenes") / "ckpt"
    save_checkpoint(folder, random_model(config, 2), config)
    return folder


@pytest.fixture
def scene_client(scene_checkpoint):
    with TestClient(create_app(pipeline.load_models(scene_checkpoint, device="cpu"), scene_checkpoint, queue_size=4)) as test_client:
        yield test_client


@pytest.fixture(autouse=True)
def fake_ocr(monkeypatch):
    monkeypatch.setattr(tesseract, "read_images", lambda images, processes=None, **kwargs: [OCR_TEXT] * len(images))
    monkeypatch.setattr(tesseract, "check_tesseract", lambda: "/fake/tesseract")


@pytest.fixture
def client(models, checkpoint):
    with TestClient(create_app(models, checkpoint, queue_size=4)) as test_client:
        yield test_client


def post(client, body, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/api/sample", content=data, headers={"Content-Type": content_type})


def decode_png(answer: dict) -> Image.Image:
    data = base64.b64decode(answer["image_png_base64"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- the API ------------------------------------------------------------------------------------


def test_a_sample_answers_a_png_and_echoes_seed_and_prompt(client):
    response = post(client, {"prompt": "ab", "seed": 5, "steps": STEPS, "guidance": 2.5, "candidates": 1})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert decode_png(answer).size == (16, 16)
    assert answer["seed"] == 5 and answer["image_seed"] == 5 and answer["prompt"] == "ab"
    assert answer["ocr_text"] == OCR_TEXT and 0.0 <= answer["similarity"] <= 1.0
    assert answer["settings"]["steps"] == STEPS and answer["settings"]["guidance"] == 2.5 and answer["settings"]["seed"] == 5
    assert answer["warning"] is None and answer["seconds"] >= 0
    again = post(client, {"prompt": "ab", "seed": 5, "steps": STEPS, "guidance": 2.5}).json()
    assert again["image_png_base64"] == answer["image_png_base64"]  # same seed and settings: same image



def test_the_answer_is_the_image_glyphfuse_sample_writes(client, checkpoint, tmp_path):
    from typer.testing import CliRunner

    answer = post(client, {"prompt": "ab\ncd", "seed": 7, "steps": STEPS, "guidance": 2.0, "candidates": 2}).json()
    out = tmp_path / "x.png"
    result = CliRunner().invoke(cli.app, ["sample", "ab\\ncd", "-o", str(out), "-c", str(checkpoint), "--seed", "7",
                                          "--steps", str(STEPS), "--guidance", "2.0", "--candidates", "2", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert decode_png(answer).tobytes() == Image.open(out).tobytes()

def test_no_seed_draws_a_random_one_and_says_which(client):
    seeds = {post(client, {"prompt": "ab", "steps": 1}).json()["seed"] for _ in range(3)}
    assert all(isinstance(seed, int) and 0 <= seed <= MAX_JSON_SEED for seed in seeds)
    assert len(seeds) > 1


def test_line_breaks_and_candidates(client):
    answer = post(client, {"prompt": "ab\ncd", "steps": 1, "seed": 0}).json()
    assert answer["prompt"] == "ab\ncd"
    assert post(client, {"prompt": "ab\\ncd", "steps": 1}).json()["prompt"] == "ab\ncd"  # as on the command line
    best = post(client, {"prompt": "ab", "steps": 1, "seed": 10, "candidates": 3, "guidance": None}).json()
    assert best["settings"]["candidates"] == 3 and best["seed"] == 10 and 10 <= best["image_seed"] <= 12
    assert best["settings"]["guidance"] == SamplingSettings().guidance  # null: the default


def test_a_prompt_outside_the_model_card_domain_is_drawn_with_a_warning(client):
    answer = post(client, {"prompt": "HELLO WORLD 42", "steps": 1}).json()
    assert "outside what this model was trained to write" in answer["warning"]
    assert answer["prompt"] == "HELLO WORLD 42"



def test_with_a_super_resolution_model_and_no_card(models):
    from glyphfuse.core.config import sr_config_for

    sr_config = sr_config_for(models["base_config"], 32)
    with_sr = {**models, "sr_model": random_model(sr_config, 1), "sr_config": sr_config}
    with TestClient(create_app(with_sr, None)) as sr_client:
        model = sr_client.get("/api/model").json()
        assert model["image_size"] == 32 and model["base_image_size"] == 16 and model["super_resolution"] == sr_config.name
        assert model["card"] is None and model["domain"] is None and model["name"] == "micro16"
        answer = post(sr_client, {"prompt": "HELLO", "seed": 1, "steps": 1}).json()
        assert decode_png(answer).size == (32, 32) and answer["warning"] is None  # no card, no stated domain

BAD_REQUESTS = [
    (b"{", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"prompt": "ab", "guidance": NaN}', 400, "finite"),
    (b'{"prompt": "ab", "guidance": Infinity}', 400, "finite"),
    (b'{"prompt": "ab", "guidance": -Infinity}', 400, "finite"),
    (b'{"prompt": "ab", "guidance": 1e999}', 400, "finite"),
    (b'{"prompt": "ab", "seed": ' + b"9" * 5000 + b"}", 400, "not valid JSON"),
    ({"prompt": "ab", "checkpoint": "/etc/passwd"}, 400, "unknown field(s) 'checkpoint'"),
    ({"prompt": "ab", "out": "../x.png", "device": "cuda"}, 400, "unknown field(s)"),
    ({}, 400, "prompt is missing"),
    ({"prompt": 7}, 400, "prompt must be a string"),
    ({"prompt": "   "}, 400, "prompt is empty"),
    ({"prompt": "a\x00b"}, 400, "control character"),
    ({"prompt": "a" * 201}, 400, "201 characters, more than the 200"),
    ({"prompt": "ab " * 30}, 400, "tokens, more than the 48"),
    ({"prompt": "ab", "candidates": 0}, 400, "candidates must be between 1 and 16"),
    ({"prompt": "ab", "candidates": 17}, 400, "candidates must be between 1 and 16"),
    ({"prompt": "ab", "candidates": "2"}, 400, "candidates must be an integer"),
    ({"prompt": "ab", "candidates": True}, 400, "candidates must be an integer"),
    ({"prompt": "ab", "steps": 0}, 400, "steps must be between 1 and 250"),
    ({"prompt": "ab", "steps": 100000}, 400, "steps must be between 1 and 250"),
    ({"prompt": "ab", "steps": 2.5}, 400, "steps must be an integer"),
    ({"prompt": "ab", "seed": -1}, 400, "seed must be between 0 and"),
    ({"prompt": "ab", "seed": 2**53}, 400, "seed must be between 0 and"),
    ({"prompt": "ab", "guidance": -1}, 400, "guidance must be between 0 and 20"),
    ({"prompt": "ab", "guidance": 1000}, 400, "guidance must be between 0 and 20"),
    ({"prompt": "ab", "guidance": "3"}, 400, "guidance must be a number"),
    ({"prompt": "ab", "style": "sign"}, 400, "model 'micro16' has no scene controls"),  # a grey model
    ({"prompt": "ab", "text_color": "red", "style": None}, 400, "has no scene controls (style, text_color, background_color)"),
    ({"prompt": "ab", "background_color": "#ffffff"}, 400, "leave out background_color"),
    (b'{"prompt": "' + b"a" * 20000 + b'"}', 413, "larger than 16384 bytes"),
]


@pytest.mark.parametrize("body, status, reason", BAD_REQUESTS, ids=range(len(BAD_REQUESTS)))
def test_bad_input_is_refused_with_a_reason(client, body, status, reason):
    response = post(client, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert reason in response.json()["error"] and "\n" not in response.json()["error"]
    assert client.app.state.worker.served == 0  # refused before anything was queued


def test_a_grey_model_takes_null_scene_controls(client):
    answer = post(client, {"prompt": "ab", "steps": 1, "style": None, "text_color": None, "background_color": None}).json()
    assert (answer["settings"]["style"], answer["settings"]["text_color"], answer["settings"]["background_color"]) == (None, None, None)


# -- a colour scene model: style, text_color, background_color ------------------------------------


def test_a_colour_model_takes_scene_controls_and_the_answer_records_them(scene_client):
    model = scene_client.get("/api/model").json()
    assert model["scene_kinds"] == list(SCENE_KINDS) and model["channels"] == 3
    body = {"prompt": "ab", "seed": 3, "steps": STEPS, "style": "sign", "text_color": "white", "background_color": "#C81E1E"}
    answer = post(scene_client, body).json()
    image = decode_png(answer)
    assert image.mode == "RGB" and image.size == (16, 16)
    settings = answer["settings"]
    assert (settings["style"], settings["text_color"], settings["background_color"]) == ("sign", "white", "#C81E1E")
    assert post(scene_client, body).json()["image_png_base64"] == answer["image_png_base64"]  # same request: same image
    other = post(scene_client, {**body, "style": "paper"}).json()
    assert other["settings"]["style"] == "paper" and other["image_png_base64"] != answer["image_png_base64"]
    free = post(scene_client, {"prompt": "ab", "seed": 3, "steps": STEPS, "text_color": " #00ff00\n"}).json()  # kind drawn at random
    assert (free["settings"]["style"], free["settings"]["text_color"], free["settings"]["background_color"]) == (None, "#00ff00", None)


def test_the_colour_answer_is_the_image_glyphfuse_sample_writes(scene_client, scene_checkpoint, tmp_path):
    from typer.testing import CliRunner

    answer = post(scene_client, {"prompt": "ab", "seed": 4, "steps": STEPS, "style": "caption", "background_color": "navy"}).json()
    out = tmp_path / "x.png"
    result = CliRunner().invoke(cli.app, ["sample", "ab", "-o", str(out), "-c", str(scene_checkpoint), "--seed", "4", "--steps", str(STEPS),
                                          "--style", "caption", "--background-color", "navy", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert decode_png(answer).tobytes() == Image.open(out).convert("RGB").tobytes()


BAD_SCENE_REQUESTS = [
    ({"style": "poster"}, 'unknown style "poster"; choose one of: plain, gradient, sign, caption, paper, screen'),
    ({"style": ""}, 'unknown style ""'),
    ({"style": "x" * 5000}, "unknown style \"" + "x" * 32 + '"...;'),  # not echoed whole
    ({"style": 3}, "style must be a string or null, got 3"),
    ({"text_color": "reddish"}, 'text_color "reddish" is neither #RRGGBB nor a colour name (beige, black, '),
    ({"text_color": "#12345"}, 'text_color "#12345" is neither #RRGGBB'),
    ({"background_color": "#gg0000"}, 'background_color "#gg0000" is neither #RRGGBB'),
    ({"background_color": ["#ff0000"]}, 'background_color must be a string or null, got ["#ff0000"]'),
    ({"text_color": "red\nblue"}, 'text_color "red\\nblue" is neither'),
]


@pytest.mark.parametrize("fields, reason", BAD_SCENE_REQUESTS, ids=range(len(BAD_SCENE_REQUESTS)))
def test_bad_scene_controls_are_refused_with_one_line(scene_client, fields, reason):
    response = post(scene_client, {"prompt": "ab", "steps": 1, **fields})
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert reason in message and "\n" not in message and len(message) < 400
    assert scene_client.app.state.worker.served == 0


def test_a_style_the_model_does_not_draw_is_refused_before_sampling():
    config = scene_config("two-kinds", ("plain", "sign"))
    with pytest.raises(BadRequest, match="unknown style \"paper\"; choose one of: plain, sign "):
        check_sample_request({"prompt": "ab", "style": "paper"}, config, Limits())
    assert check_sample_request({"prompt": "ab", "style": "sign"}, config, Limits()).settings.style == "sign"


def test_not_json_wrong_method_and_unknown_path_answer_json_errors(client):
    response = post(client, {"prompt": "ab"}, content_type="text/plain")
    assert response.status_code == 415 and "application/json" in response.json()["error"]
    assert client.get("/api/sample").status_code == 405 and "error" in client.get("/api/sample").json()
    assert client.get("/etc/passwd").status_code == 404 and "error" in client.get("/etc/passwd").json()
    assert client.get("/api/../../etc/passwd").status_code == 404


def test_the_model_card_and_limits(client):
    model = client.get("/api/model").json()
    assert model["name"] == "micro-card" and model["config_name"] == "micro16"
    assert model["image_size"] == 16 and model["channels"] == 1 and model["super_resolution"] is None
    assert model["domain"]["summary"] == "lowercase letters" and model["card"]["name"] == "micro-card"
    assert model["max_text_tokens"] == 48
    assert model["scene_kinds"] == []  # a grey model: no scene controls
    assert model["limits"]["candidates"] == Limits().candidates and model["limits"]["queue_size"] == 4
    assert model["defaults"]["steps"] == SamplingSettings().steps


def test_the_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    for element in ('id="prompt"', 'id="candidates"', 'id="seed"', 'id="steps"', 'id="guidance"', 'id="result-image"',
                    'id="ocr-text"', 'id="similarity"', 'id="warning"', 'id="history"', 'id="progress"', "image-rendering: pixelated",
                    'id="scene" hidden', 'id="style"', 'id="text-color" type="color"', 'id="text-color-any" type="checkbox" checked',
                    'id="background-color" type="color"', 'id="background-color-any" type="checkbox" checked'):
        assert element in page
    assert "http://" not in page and "https://" not in page  # nothing from the network
    assert "default-src 'none'" in response.headers["content-security-policy"]


# -- the worker ---------------------------------------------------------------------------------


def test_the_worker_runs_one_job_at_a_time_skips_cancelled_ones_and_survives_errors():
    release, started, order = threading.Event(), threading.Event(), []

    def draw(job):
        order.append(job.text)
        if job.text == "block":
            started.set()
            assert release.wait(10)
        if job.text == "boom":
            raise RuntimeError("boom")
        return {"prompt": job.text}

    worker = SamplingWorker(draw, queue_size=2)
    first = worker.submit(Job("block", SamplingSettings()))
    assert started.wait(10)
    gone, failing = worker.submit(Job("gone", SamplingSettings())), worker.submit(Job("boom", SamplingSettings()))
    with pytest.raises(QueueFull, match="busy: 2 requests are waiting"):
        worker.submit(Job("extra", SamplingSettings()))
    assert gone.cancel()  # its client left while it waited
    release.set()
    assert first.result(10) == {"prompt": "block"}
    with pytest.raises(RuntimeError, match="boom"):
        failing.result(10)
    assert worker.submit(Job("after", SamplingSettings())).result(10) == {"prompt": "after"}
    assert order == ["block", "boom", "after"]
    worker.stop()
    with pytest.raises(QueueFull, match="stopping"):
        worker.submit(Job("late", SamplingSettings()))


# -- a real server on a free port ---------------------------------------------------------------


@pytest.fixture
def live(models, checkpoint):
    """(base URL, app) of a uvicorn server in a thread, queue of 1."""
    app = create_app(models, checkpoint, queue_size=1)
    with served_in_thread(app) as url:
        yield url, app


@pytest.fixture
def gate(monkeypatch):
    """Makes every sampling wait for ``gate.release`` (set ``gate.hold``); records the prompts drawn."""
    real = pipeline.sample_many

    class Gate:
        hold, started, release, drawn = True, threading.Event(), threading.Event(), []

    def held(prompts, settings=None, **kwargs):
        Gate.drawn.append(prompts[0])
        if Gate.hold:
            Gate.started.set()
            assert Gate.release.wait(30)
        return real(prompts, settings, **kwargs)

    monkeypatch.setattr(pipeline, "sample_many", held)
    return Gate


def wait_until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_full_queue_answers_503_and_a_client_that_leaves_does_not_hurt(live, gate):
    url, app = live
    body = lambda prompt, seed: {"prompt": prompt, "seed": seed, "steps": 1}  # noqa: E731
    with ThreadPoolExecutor(2) as pool, httpx.Client(base_url=url, timeout=60) as http:
        running = pool.submit(http.post, "/api/sample", json=body("aa", 1))
        assert gate.started.wait(30)
        waiting = pool.submit(http.post, "/api/sample", json=body("bb", 2))
        wait_until(lambda: app.state.worker.waiting == 1)
        full = http.post("/api/sample", json=body("cc", 3))
        assert full.status_code == 503 and "busy" in full.json()["error"] and full.headers["retry-after"] == "1"
        gate.release.set()
        assert running.result(60).json()["seed"] == 1 and waiting.result(60).json()["prompt"] == "bb"

        # a client that sends a request and leaves while it waits: its job is dropped, the server goes on
        gate.release.clear(), gate.started.clear()
        running = pool.submit(http.post, "/api/sample", json=body("dd", 4))
        assert gate.started.wait(30)
        payload = json.dumps(body("ee", 5)).encode()
        with socket.create_connection((httpx.URL(url).host, httpx.URL(url).port)) as leaver:
            leaver.sendall(b"POST /api/sample HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
            wait_until(lambda: app.state.worker.waiting == 1)
        wait_until(lambda: app.state.worker.waiting == 0)  # cancelled while it waited
        gate.release.set()
        assert running.result(60).json()["prompt"] == "dd"
        assert http.post("/api/sample", json=body("ff", 6)).json()["prompt"] == "ff"
        assert gate.drawn == ["aa", "bb", "dd", "ff"]


def test_concurrent_answers_match_their_requests(live, gate):
    url, _ = live
    gate.hold = False
    requests = [{"prompt": f"p{i}", "seed": 100 + i, "steps": 1} for i in range(12)]

    def ask(body):
        with httpx.Client(base_url=url, timeout=120) as http:
            for _ in range(20):
                response = http.post("/api/sample", json=body)
                if response.status_code != 503:
                    return body, response
                time.sleep(0.05)
        return body, response

    with ThreadPoolExecutor(6) as pool:
        for body, response in pool.map(ask, requests):
            assert response.status_code == 200, response.text
            answer = response.json()
            assert (answer["prompt"], answer["seed"], answer["settings"]["seed"]) == (body["prompt"], body["seed"], body["seed"])


# -- the command --------------------------------------------------------------------------------


def test_serve_without_the_extra_is_one_line(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("starlette", "uvicorn") else real(name, *a))
    monkeypatch.setattr(sys, "argv", ["glyphfuse", "serve"])
    with pytest.raises(SystemExit) as done:
        cli.main()
    err = capsys.readouterr().err.strip()
    assert done.value.code == 1
    assert err == f"error: {serve_package.EXTRA_MISSING}"


def test_serve_help_and_the_cli_import_neither_starlette_uvicorn_nor_torch():
    code = ("import sys, glyphfuse.cli; "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_a_port_in_use_is_one_line():
    taken = server.bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(GlyphfuseError, match=f"cannot listen on 127.0.0.1:{port}"):
            server.bind("127.0.0.1", port).close()
    finally:
        taken.close()

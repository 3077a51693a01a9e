"""The ASGI app of ``glyphfuse serve``: the page, ``GET /api/model``, ``POST /api/sample`` and ``POST /api/edit``.

    from glyphfuse.sampling.pipeline import load_models
    from glyphfuse.serve.app import Editor, create_app
    app = create_app(load_models("ckpt/base64"), checkpoint="ckpt/base64")   # run it with uvicorn
    app = create_app(models, "ckpt/base64", editor=Editor.load("ckpt/inpaint128"))   # with editing

``POST /api/sample`` takes ``{prompt, candidates, seed, steps, guidance}`` and, for a colour scene
model (``scene_kinds`` of ``GET /api/model`` not empty), ``{style, text_color, background_color}``
(glyphfuse.serve.checks), and answers ``{image_png_base64, ocr_text, similarity, seed, prompt, settings, warning, seconds, ...}``;
the sampling itself is :func:`glyphfuse.sampling.pipeline.sample_many` with OCR on, run by the one
worker thread (glyphfuse.serve.worker). Every error is JSON ``{"error": "why"}`` with a 4xx status
for the request's fault (400 bad input, 413 too large, 415 not JSON), 503 when the queue is full
and 500 when sampling failed; the server goes on either way.

``POST /api/edit?text=...&box=X,Y,W,H[&candidates&seed&steps&guidance&style&text_color&background_color]``
takes the picture itself as the body (``Content-Type: image/*`` or ``application/octet-stream``;
at most ``Limits.edit_bytes``, refused with 413 while it is read, and ``Limits.edit_pixels``,
from its header) and answers the edited picture as a PNG, whatever the upload's format, with
what OCR reads in the box: :func:`glyphfuse.editing.edit_picture` on the same worker thread, so
an edit and a sampling never run at once. It needs an :class:`Editor` (an inpainting checkpoint,
or a colour base model, which edits training-free); without one it answers 404 and says why.
No request names a file: the picture comes in the body, every other field is checked
(glyphfuse.serve.checks.parse_edit_query).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from glyphfuse.core.checkpoint import read_model_card
from glyphfuse.core.config import ModelConfig
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.imagefolder import encode_png
from glyphfuse.editing.edit import edit_picture, load_edit_model, resolve_method
from glyphfuse.editing.pictures import Picture, encode_picture, open_picture
from glyphfuse.sampling import pipeline
from glyphfuse.sampling.generation import domain_warning
from glyphfuse.sampling.settings import DEFAULT_SAMPLER
from glyphfuse.serve.checks import DEFAULTS, BadRequest, Limits, check_edit_box, parse_edit_query, parse_sample_request
from glyphfuse.serve.worker import Job, QueueFull, SamplingWorker

PAGE = Path(__file__).resolve().parent / "page.html"
# The page fetches nothing but this server: inline script and style, images from data: URLs.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
DISCONNECT_POLL_S = 0.25  # how often a waiting request looks whether its client is still there
EDIT_OFF = ("editing is off on this server: start it with glyphfuse serve --edit-checkpoint DIR (an inpainting checkpoint, "
            "or a colour base model, which edits training-free)")
NO_PNG_MODES = ("CMYK", "YCbCr", "LAB", "HSV")  # modes PNG cannot hold: answered as RGB (the model's own view of them)
NOT_A_PICTURE_TYPE = ("send the picture itself as the request body (Content-Type: image/png, image/jpeg, ... or "
                      "application/octet-stream), with text and box in the query string")


@dataclass(frozen=True)
class Editor:
    """The model that edits pictures: an inpainting checkpoint, or a colour base model (RePaint).

    checkpoint: its folder, for its model card (the name ``GET /api/model`` shows); None = no card."""

    model: torch.nn.Module = field(repr=False)
    config: ModelConfig
    checkpoint: Path | None = None

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "cpu") -> "Editor":
        model, config = load_edit_model(checkpoint, device)
        return cls(model, config, Path(checkpoint))

    @property
    def method(self) -> str:
        """The edit method: "model" (an inpainting model draws into the box) or "repaint" (training-free)."""
        return resolve_method("auto", self.config)

    @property
    def name(self) -> str:
        card = read_model_card(self.checkpoint) if self.checkpoint is not None else None
        return (card or {}).get("name") or self.config.name


@dataclass(frozen=True)
class EditJob:
    """What the worker needs of an edit besides text and settings: the opened picture and the box."""

    picture: Picture
    box: tuple[int, int, int, int]  # (x, y, w, h), checked against the picture


def error(message: str, status: int, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def make_draw(models: dict, checkpoint: Path | None, log: Callable[[str], None] | None = None) -> Callable[[Job], dict]:
    """The worker's ``draw(job)``: the pipeline with OCR on, then the answer of the API."""

    def draw(job: Job) -> dict:
        started = time.perf_counter()
        result = pipeline.sample_many([job.text], job.settings, **models, ocr=True)[0]
        if result.prompt != job.text:  # cannot happen: one job, one prompt; never answer with another
            raise GlyphfuseError("internal error: the pipeline answered for another prompt")
        seconds = time.perf_counter() - started
        answer = {
            "image_png_base64": base64.b64encode(encode_png(result.image)).decode("ascii"),
            "ocr_text": result.ocr_text,
            "similarity": result.similarity,
            "seed": job.settings.seed,
            "image_seed": job.settings.seed + result.chosen_index,  # the chosen candidate's seed
            "chosen_candidate": result.chosen_index,
            "prompt": job.text,
            "settings": job.settings.to_dict(),
            "warning": domain_warning(job.text, checkpoint) if checkpoint is not None else None,
            "seconds": round(seconds, 4),
            "queued_seconds": round(started - job.queued_at, 4),
            "size": list(result.image.size),
        }
        if log is not None:
            scene = "".join(f" {name.replace('_', ' ')} {getattr(job.settings, name)}" for name in ("style", "text_color", "background_color")
                            if getattr(job.settings, name) is not None)
            log(f"sampled {job.text!r} seed {job.settings.seed} x{job.settings.candidates}{scene} in {seconds:.2f} s: OCR {result.ocr_text!r}")
        return answer

    return draw


def make_edit(editor: Editor, log: Callable[[str], None] | None = None) -> Callable[[Job], dict]:
    """The worker's ``draw(job)`` for an edit job: edit_picture with OCR on, then the answer of the API."""

    def edit(job: Job) -> dict:
        started = time.perf_counter()
        picture, box = job.edit.picture, job.edit.box
        result = edit_picture(picture, job.text, box, job.settings, model=editor.model, config=editor.config, read=True)
        chosen = result.candidates[result.best]
        image = result.image.convert("RGB") if result.image.mode in NO_PNG_MODES else result.image
        png = encode_picture(image, "PNG")  # PNG whatever came in: the page shows it, and it keeps every pixel
        seconds = time.perf_counter() - started
        answer = {
            "image_png_base64": base64.b64encode(png).decode("ascii"),
            "ocr_text": chosen.ocr,
            "similarity": chosen.similarity,
            "seed": job.settings.seed,
            "image_seed": chosen.seed,  # the chosen candidate's seed
            "chosen_candidate": result.best,
            "text": job.text,
            "box": list(box),
            "size": list(result.image.size),
            "mode": image.mode,  # the PNG's: the upload's own, but RGB for CMYK, YCbCr, LAB and HSV
            "input_format": picture.format,
            "method": result.method,
            "note": result.note,
            "settings": job.settings.to_dict(),
            "seconds": round(seconds, 4),
            "queued_seconds": round(started - job.queued_at, 4),
        }
        if log is not None:
            width, height = picture.size
            log(f"edited {job.text!r} box {','.join(map(str, box))} of a {width}x{height} {picture.format or 'picture'} seed {job.settings.seed} "
                f"x{job.settings.candidates} in {seconds:.2f} s: OCR {chosen.ocr!r}")
        return answer

    return edit


def edit_summary(editor: Editor | None, limits: Limits) -> dict:
    """The ``edit`` part of ``GET /api/model``: whether this server edits pictures, with what, and the limits."""
    summary = {"available": editor is not None, "max_bytes": limits.edit_bytes, "max_pixels": limits.edit_pixels}
    if editor is None:
        return {**summary, "model": None, "method": None, "reason": EDIT_OFF}
    steps = min(limits.steps, editor.config.diffusion.num_timesteps)
    return {**summary, "model": editor.name, "config_name": editor.config.name, "method": editor.method,
            "image_size": editor.config.image_size, "max_text_tokens": editor.config.text.max_length,
            "scene_kinds": list(editor.config.scene_kinds), "defaults": {"steps": min(DEFAULTS.steps, steps)}, "steps": steps}


def model_summary(models: dict, checkpoint: Path | None, limits: Limits, queue_size: int) -> dict:
    """The answer of ``GET /api/model``: the card (if any), the config in brief, the limits."""
    base, sr = models["base_config"], models.get("sr_config")
    card = read_model_card(checkpoint) if checkpoint is not None else None
    final = sr or base
    return {
        "name": (card or {}).get("name") or base.name,
        "config_name": base.name,
        "image_size": final.image_size,
        "base_image_size": base.image_size,
        "channels": final.channels,
        "super_resolution": sr.name if sr is not None else None,
        "max_text_tokens": base.text.max_length,
        "max_lines": base.text.max_lines,
        "num_timesteps": base.diffusion.num_timesteps,
        "scene_kinds": list(base.scene_kinds),  # a colour scene model's styles; empty: no scene controls
        "domain": (card or {}).get("domain"),
        "card": card,
        "defaults": {"steps": min(DEFAULTS.steps, base.diffusion.num_timesteps), "guidance": DEFAULTS.guidance,
                     "candidates": DEFAULTS.candidates, "sampler": DEFAULT_SAMPLER},
        "limits": {**limits.to_dict(), "steps": min(limits.steps, base.diffusion.num_timesteps), "queue_size": queue_size},
    }


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or BadRequest 413 as soon as it is longer than ``limit`` (never read whole)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the request body is larger than {limit} bytes", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"the request body is larger than {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def wait_for(request: Request, future) -> dict | None:
    """The worker's answer; None (and the job cancelled, if it still waits) when the client left."""
    waiting = asyncio.wrap_future(future)
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=DISCONNECT_POLL_S)
            if done:
                return waiting.result()
            if await request.is_disconnected():
                future.cancel()
                return None
    except asyncio.CancelledError:  # the server cancelled the request (shutdown, client gone)
        future.cancel()
        raise


async def answer_of(request: Request, future, what: str) -> Response:
    """The response to a queued job: its answer as JSON, 500 when ``what`` ("sampling", "editing")
    failed (the server goes on), 499 when the client went away meanwhile."""
    try:
        answer = await wait_for(request, future)
    except GlyphfuseError as exc:
        return error(f"{what} failed: {exc}", 500)
    except Exception as exc:  # noqa: BLE001 - one failed request; the server goes on
        traceback.print_exc()
        return error(f"internal error: {type(exc).__name__}: {exc}", 500)
    if answer is None:
        return Response(status_code=499)  # nobody reads it: the client went away
    return JSONResponse(answer)


def is_picture_type(content_type: str) -> bool:
    """An edit's body is a picture's bytes: ``image/*`` or ``application/octet-stream`` (neither is
    a type a web form may post to another site without asking, as for JSON)."""
    kind = content_type.split(";")[0].strip().lower()
    return kind.startswith("image/") or kind == "application/octet-stream"


def edit_endpoint(editor: Editor | None, worker: SamplingWorker, limits: Limits) -> Callable:
    """The handler of ``POST /api/edit``: every check, then the edit queued on ``worker``; 404 without an editor."""
    decoding = asyncio.Lock()  # one upload decoded at a time (up to edit_pixels each), off the event loop

    async def edit(request: Request) -> Response:
        if editor is None:
            return error(EDIT_OFF, 404)
        try:
            if not is_picture_type(request.headers.get("content-type", "")):
                raise BadRequest(NOT_A_PICTURE_TYPE, 415)
            edit_request = parse_edit_query(request.query_params.multi_items(), editor.config, limits)
            worker.check_room()  # a busy server does not read and decode a large picture only to refuse it
            body = await read_body(request, limits.edit_bytes)
            if not body:
                raise BadRequest("the request body is empty: send the picture's bytes as the body")
            async with decoding:
                picture = await asyncio.to_thread(open_upload, body, limits.edit_pixels)
            check_edit_box(edit_request, picture.size)
            future = worker.submit(Job(edit_request.text, edit_request.settings, edit=EditJob(picture, edit_request.box)))
        except BadRequest as exc:
            return error(str(exc), exc.status)
        except QueueFull as exc:
            return error(str(exc), 503, headers={"Retry-After": "1"})
        return await answer_of(request, future, "editing")

    return edit


def create_app(models: dict, checkpoint: str | Path | None = None, *, queue_size: int = 8, limits: Limits | None = None,
               log: Callable[[str], None] | None = None, editor: Editor | None = None) -> Starlette:
    """The ASGI app for ``models`` (:func:`glyphfuse.sampling.pipeline.load_models`' dict).

    checkpoint: the base model's folder, for its model card (``/api/model``) and the domain
    warning; None = no card. queue_size: requests that may wait while one is drawn or edited (503
    beyond). log: called with one line per drawn request (e.g. ``print``). editor: the model
    of ``POST /api/edit``; None = editing off (404).
    """
    limits = limits or Limits()
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    config = models["base_config"]
    summary = {**model_summary(models, checkpoint, limits, queue_size), "edit": edit_summary(editor, limits)}
    page = PAGE.read_text(encoding="utf-8")
    draw = make_draw(models, checkpoint, log)
    edit_job = make_edit(editor, log) if editor is not None else None
    worker = SamplingWorker(lambda job: edit_job(job) if job.edit is not None else draw(job), queue_size=queue_size)
    edit = edit_endpoint(editor, worker, limits)

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    async def model(request: Request) -> Response:
        return JSONResponse(summary)

    async def sample(request: Request) -> Response:
        try:
            if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
                raise BadRequest("send the request as JSON (Content-Type: application/json)", 415)
            job_request = parse_sample_request(await read_body(request, limits.body_bytes), config, limits)
            future = worker.submit(Job(job_request.text, job_request.settings))
        except BadRequest as exc:
            return error(str(exc), exc.status)
        except QueueFull as exc:
            return error(str(exc), 503, headers={"Retry-After": "1"})
        return await answer_of(request, future, "sampling")

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return error(str(exc.detail), exc.status_code, headers=getattr(exc, "headers", None))

    async def server_error(request: Request, exc: Exception) -> Response:
        return error(f"internal error: {type(exc).__name__}", 500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        worker.start()
        try:
            yield
        finally:
            await asyncio.to_thread(worker.stop)

    routes = [Route("/", index, methods=["GET"]), Route("/api/model", model, methods=["GET"]),
              Route("/api/sample", sample, methods=["POST"]), Route("/api/edit", edit, methods=["POST"])]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error}, lifespan=lifespan)
    app.state.worker, app.state.summary, app.state.limits, app.state.editor = worker, summary, limits, editor
    return app


def open_upload(body: bytes, max_pixels: int) -> Picture:
    """The uploaded picture (glyphfuse.editing.open_picture), or BadRequest 400 with its one line."""
    try:
        return open_picture(body, max_pixels=max_pixels, name="upload")
    except GlyphfuseError as exc:
        raise BadRequest(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a decoder's unexpected error on hostile bytes is still the upload's fault
        raise BadRequest(f"upload: unreadable picture ({type(exc).__name__}: {str(exc)[:120]})") from None

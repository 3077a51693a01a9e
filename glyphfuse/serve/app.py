"""The ASGI app of ``glyphfuse serve``: the page, ``GET /api/model`` and ``POST /api/sample``.

    from glyphfuse.sampling.pipeline import load_models
    from glyphfuse.serve.app import create_app
    app = create_app(load_models("ckpt/base64"), checkpoint="ckpt/base64")   # run it with uvicorn

``POST /api/sample`` takes ``{prompt, candidates, seed, steps, guidance}`` and, for a colour scene
model (``scene_kinds`` of ``GET /api/model`` not empty), ``{style, text_color, background_color}``
(glyphfuse.serve.checks), and answers ``{image_png_base64, ocr_text, similarity, seed, prompt, settings, warning, seconds, ...}``;
the sampling itself is :func:`glyphfuse.sampling.pipeline.sample_many` with OCR on, run by the one
worker thread (glyphfuse.serve.worker). Every error is JSON ``{"error": "why"}`` with a 4xx status
for the request's fault (400 bad input, 413 too large, 415 not JSON), 503 when the queue is full
and 500 when sampling failed; the server goes on either way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import traceback
from pathlib import Path
from typing import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from glyphfuse.core.checkpoint import read_model_card
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.imagefolder import encode_png
from glyphfuse.sampling import pipeline
from glyphfuse.sampling.generation import domain_warning
from glyphfuse.sampling.settings import DEFAULT_SAMPLER
from glyphfuse.serve.checks import DEFAULTS, BadRequest, Limits, parse_sample_request
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


def create_app(models: dict, checkpoint: str | Path | None = None, *, queue_size: int = 8, limits: Limits | None = None,
               log: Callable[[str], None] | None = None) -> Starlette:
    """The ASGI app for ``models`` (:func:`glyphfuse.sampling.pipeline.load_models`' dict).

    checkpoint: the base model's folder, for its model card (``/api/model``) and the domain
    warning; None = no card. queue_size: requests that may wait while one is drawn (503 beyond).
    log: called with one line per drawn request (e.g. ``print``).
    """
    limits = limits or Limits()
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    config = models["base_config"]
    summary = model_summary(models, checkpoint, limits, queue_size)
    page = PAGE.read_text(encoding="utf-8")
    worker = SamplingWorker(make_draw(models, checkpoint, log), queue_size=queue_size)

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
        try:
            answer = await wait_for(request, future)
        except GlyphfuseError as exc:
            return error(f"sampling failed: {exc}", 500)
        except Exception as exc:  # noqa: BLE001 - one failed request; the server goes on
            traceback.print_exc()
            return error(f"internal error: {type(exc).__name__}: {exc}", 500)
        if answer is None:
            return Response(status_code=499)  # nobody reads it: the client went away
        return JSONResponse(answer)

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
              Route("/api/sample", sample, methods=["POST"])]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error}, lifespan=lifespan)
    app.state.worker, app.state.summary, app.state.limits = worker, summary, limits
    return app

"""Run the app: load the model(s) once, bind the socket, print the URL, serve until Ctrl-C.

The socket is bound here, before the model is loaded and uvicorn starts, so a port in use is one
line at once and ``--port 0`` prints the port the system chose (a client that connects before
uvicorn runs waits in the socket's backlog). Ctrl-C (or SIGTERM) stops accepting, lets the running
sampling finish (at most :data:`GRACEFUL_S` seconds), cancels the waiting ones and returns.

Editing (``POST /api/edit``) uses ``--edit-checkpoint``, else the packaged edit model
(:func:`glyphfuse.sampling.generation.packaged_painter_dir`) when there is one, else it is off.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import uvicorn

from glyphfuse.core.device import resolve_device
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.editing.edit import check_edit_model
from glyphfuse.ocr import tesseract
from glyphfuse.sampling import pipeline
from glyphfuse.sampling.generation import colour_checkpoint_dir, default_checkpoint_dir, packaged_painter_dir
from glyphfuse.serve.app import Editor, create_app

GRACEFUL_S = 5


def say(line: str) -> None:
    print(line, flush=True)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (port 0: a free one); GlyphfuseError naming the address."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise GlyphfuseError(f"--host {host!r}: cannot resolve it ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)  # connections made once the URL is printed wait until uvicorn accepts them
    except OSError as exc:
        sock.close()
        raise GlyphfuseError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def warm_up(models: dict) -> None:
    """One 1-step image, so the first request does not pay for torch's lazy start-up."""
    pipeline.sample_many(["a"], steps=1, candidates=1, **models, ocr=False)


def edit_checkpoint_dir(edit_checkpoint: str | Path | None) -> Path | None:
    """The edit model's folder: the one given, else the packaged edit model if installed, else None (editing off)."""
    if edit_checkpoint is not None:
        return Path(edit_checkpoint)
    return packaged_painter_dir()


def load_editor(edit_folder: Path | None, models: dict, base_folder: Path, device: str) -> Editor | None:
    """The :class:`Editor` of ``edit_folder`` (None: editing off); the base model itself when it is the same folder."""
    if edit_folder is None:
        return None
    if edit_folder.resolve() == base_folder.resolve() and models.get("base_model") is not None:
        check_edit_model(models["base_config"], str(edit_folder))
        return Editor(models["base_model"], models["base_config"], edit_folder)
    return Editor.load(edit_folder, str(resolve_device(device)))


def serve(checkpoint: str | Path | None, sr_checkpoint: str | Path | None, *, device: str = "auto", host: str = "127.0.0.1",
          port: int = 7860, queue_size: int = 8, use_sr: bool = True, edit_checkpoint: str | Path | None = None, colour: bool = False) -> None:
    """What ``glyphfuse serve`` does (see the module docstring). Without ``checkpoint`` it serves
    the packaged model, with its packaged SR stage unless ``use_sr`` is False (``colour``: the
    packaged painter); it edits pictures with ``edit_checkpoint`` (default: the packaged edit model,
    if installed)."""
    tesseract.check_tesseract()  # every answer carries what OCR reads
    if colour:
        checkpoint = colour_checkpoint_dir(checkpoint)
    folder = Path(checkpoint) if checkpoint is not None else default_checkpoint_dir()
    edit_folder = edit_checkpoint_dir(edit_checkpoint)
    sock = bind(host, port)  # a port in use fails now, not after loading the model
    try:
        models = pipeline.load_models(checkpoint, sr_checkpoint, device, use_sr=use_sr)
        say(f"glyphfuse serve: loaded {folder}" + (" with its SR stage" if models["sr_model"] is not None else ""))
        editor = load_editor(edit_folder, models, folder, device)
        if editor is not None:
            how = "training-free repaint" if editor.method != "model" else "painter" if editor.config.glyphs else "inpainting model"
            say(f"glyphfuse serve: edits pictures with {edit_folder} ({how})")
        warm_up(models)
        app = create_app(models, folder, queue_size=queue_size, log=say, editor=editor)
    except BaseException:
        sock.close()
        raise
    summary = app.state.summary
    edit = f"edit {summary['edit']['model']}" if editor is not None else "editing off"
    say(f"glyphfuse serve: {url_of(sock)}  (model {summary['name']}, {summary['image_size']}x{summary['image_size']}; {edit}; "
        f"queue {queue_size}; Ctrl-C stops)")
    if sock.getsockname()[0] in ("0.0.0.0", "::"):
        say("glyphfuse serve: listening on every network interface: anyone who can reach this machine can use it")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=GRACEFUL_S)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down cleanly, then re-raised the Ctrl-C
        pass
    finally:
        sock.close()
    say("glyphfuse serve: stopped")
    sys.stdout.flush()

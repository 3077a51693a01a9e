"""``glyphfuse serve``: a local web page and HTTP API that samples from a model loaded once.

    from glyphfuse.serve import serve
    serve(checkpoint=None, host="127.0.0.1", port=7860)   # the packaged model; Ctrl-C stops

* ``checks``: the checks of a ``POST /api/sample`` body and of the query of ``POST /api/edit``
  (types, bounds, unknown fields);
* ``worker``: the one sampling thread and its bounded queue (one sampling or edit at a time);
* ``app``: :func:`~glyphfuse.serve.app.create_app`, the ASGI app (page + ``/api/model`` + ``/api/sample``
  + ``/api/edit``, which takes the picture as the request body);
* ``server``: binds the socket, prints the URL and runs uvicorn;
* ``page.html``: the page (inline CSS and JS, nothing fetched from the network).

Why Starlette + uvicorn (the ``serve`` extra, docs/serve.md): the server is a few JSON endpoints
and one static page, and Starlette is the smallest mature ASGI toolkit that does that (about
2.5 MB installed with its one dependency anyio; FastAPI is this same Starlette plus the pydantic
stack, which an eight-field body does not need); it and uvicorn import in a fraction of a second,
so the start-up stays the model's; its
``TestClient`` (httpx) drives the app in-process, so the API tests need no socket. uvicorn is
the standard small ASGI server (pure Python with h11) with a clean Ctrl-C shutdown. Both are
imported only by ``glyphfuse serve``: the rest of the package does not need them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from glyphfuse.core.errors import GlyphfuseError

EXTRA_MISSING = "glyphfuse serve needs the serve extra: pip install 'glyphfuse[serve]'"


def check_extra() -> None:
    """One-line GlyphfuseError when starlette or uvicorn is not installed."""
    if any(importlib.util.find_spec(name) is None for name in ("starlette", "uvicorn")):
        raise GlyphfuseError(EXTRA_MISSING)


def serve(checkpoint: str | Path | None = None, sr_checkpoint: str | Path | None = None, device: str = "auto",
          host: str = "127.0.0.1", port: int = 7860, queue_size: int = 8, use_sr: bool = True,
          edit_checkpoint: str | Path | None = None, colour: bool = False) -> None:
    """Load the model(s) once, then answer the page and the API at http://HOST:PORT/ until Ctrl-C."""
    check_extra()
    from glyphfuse.serve import server

    server.serve(checkpoint, sr_checkpoint, device=device, host=host, port=port, queue_size=queue_size, use_sr=use_sr,
                 edit_checkpoint=edit_checkpoint, colour=colour)

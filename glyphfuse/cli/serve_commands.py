"""``glyphfuse serve``: a local web page and HTTP API that samples from a model loaded once."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from glyphfuse.cli import options
from glyphfuse.cli.app import app


@app.command("serve")
def serve(
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Checkpoint folder (model.safetensors + config.json). Default: the packaged model, if installed."),
    sr_checkpoint: Optional[Path] = typer.Option(None, "--sr-checkpoint", help="Super-resolution checkpoint: every answer is the SR image of the best candidate (checked against the base model at start)."),
    no_sr: bool = typer.Option(False, "--no-sr", help="Skip the super-resolution stage of a packaged cascade: answer the base model's images."),
    device: str = options.DEVICE,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 opens it to the network (no authentication)."),
    port: int = typer.Option(7860, "--port", min=0, max=65535, help="TCP port (0: any free one; the URL printed says which)."),
    queue_size: int = typer.Option(8, "--queue-size", min=1, max=10_000, help="Requests that may wait while one is drawn; beyond that the API answers 503."),
    colour: bool = typer.Option(False, "--colour", "--color", help="Serve the packaged colour painter (the packaged grey model writes, the painter paints the scene; the page's style and colour controls) instead of the grey cascade."),
    edit_checkpoint: Optional[Path] = typer.Option(None, "--edit-checkpoint", help="Model for editing uploaded pictures (POST /api/edit, the page's Edit panel): a painter, an inpainting checkpoint, or a colour base model (training-free repaint). Default: the packaged painter, if installed; else editing is off."),
) -> None:
    """Serve a local web page and HTTP API that draw images from a model loaded once: each answer takes the sampling time only.

    POST /api/sample takes JSON {prompt, candidates, seed, steps, guidance} and answers the PNG (base64), what OCR reads, the similarity and the seed; GET /api/model describes the model; GET / is the page. Needs the serve extra: pip install 'glyphfuse\\[serve]' (docs/serve.md).

    POST /api/edit?text=...&box=X,Y,W,H takes a picture as the request body (Content-Type image/* or application/octet-stream, up to 20 MB and 40 Mpx) and answers it edited, as PNG (base64), with what OCR reads in the box; it needs --edit-checkpoint or a packaged edit model.

    One sampling or edit runs at a time; up to --queue-size requests wait. Ctrl-C stops.

    [bold]Examples[/]

      glyphfuse serve

      glyphfuse serve -c runs/base64/checkpoint --port 8000

      glyphfuse serve --colour

      curl -s localhost:7860/api/sample -H 'Content-Type: application/json' -d '{"prompt": "hello\\nworld", "seed": 3}'

      glyphfuse serve --edit-checkpoint ckpt/paint128

      curl -s 'localhost:7860/api/edit?text=OPEN&box=40,60,300,80' -H 'Content-Type: image/jpeg' --data-binary @photo.jpg
    """
    from glyphfuse import serve as server

    server.serve(checkpoint, sr_checkpoint, device=device, host=host, port=port, queue_size=queue_size, use_sr=not no_sr,
                 edit_checkpoint=edit_checkpoint, colour=colour)

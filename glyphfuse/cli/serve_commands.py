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
) -> None:
    """Serve a local web page and HTTP API that draw images from a model loaded once: each answer takes the sampling time only.

    POST /api/sample takes JSON {prompt, candidates, seed, steps, guidance} and answers the PNG (base64), what OCR reads, the similarity and the seed; GET /api/model describes the model; GET / is the page. Needs the serve extra: pip install 'glyphfuse\\[serve]' (docs/serve.md).

    One sampling runs at a time; up to --queue-size requests wait. Ctrl-C stops.

    [bold]Examples[/]

      glyphfuse serve

      glyphfuse serve -c runs/base64/checkpoint --port 8000

      curl -s localhost:7860/api/sample -H 'Content-Type: application/json' -d '{"prompt": "hello\\nworld", "seed": 3}'
    """
    from glyphfuse import serve as server

    server.serve(checkpoint, sr_checkpoint, device=device, host=host, port=port, queue_size=queue_size, use_sr=not no_sr)

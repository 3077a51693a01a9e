"""``glyphfuse export``: package a trained checkpoint (fp16, sharded) for shipping or transfer."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from glyphfuse.cli.app import app
from glyphfuse.cli.options import finite

DTYPES = ("fp16", "bf16", "fp32", "float16", "bfloat16", "float32")


@app.command("export")
def export(
    checkpoint: Path = typer.Argument(..., help="Checkpoint folder, or a train-base / train-sr run folder (its checkpoints/latest)."),
    out: Path = typer.Option(..., "--out", "-o", help="New (or empty) folder for the packaged checkpoint; an existing one is never replaced."),
    dtype: str = typer.Option("fp16", "--dtype", help="Storage dtype of the weights: fp16, bf16 or fp32 (loaded back as fp32)."),
    max_shard_mb: Optional[float] = typer.Option(None, "--max-shard-mb", min=0.01, callback=finite, help="Split the weights over files of at most this many MiB each, plus model.safetensors.index.json (default: one model.safetensors)."),
    card: Optional[Path] = typer.Option(None, "--card", help="Model card JSON to store as card.json (default: keep the source's card, if any)."),
) -> None:
    """Write a checkpoint's EMA weights (no optimizer or training state) as a packaged checkpoint.

    Loads and checks the source, stores the weights as --dtype (fp16 halves fp32), optionally split into shards of at most --max-shard-mb MiB each (every glyphfuse command reads sharded checkpoints), and adds a model card. Refuses an OUT that is not empty.

    [bold]Examples[/]

      glyphfuse export runs/base128 --out ckpt/base128 --dtype fp16 --max-shard-mb 15

      glyphfuse export runs/base128/checkpoints/step_4000 --out ckpt/base128-4k --card card.json
    """
    from glyphfuse.core.checkpoint import CONFIG_NAME, export_checkpoint, load_checkpoint_config, parameter_counts
    from glyphfuse.core.errors import GlyphfuseError
    from glyphfuse.training.run_folder import CHECKPOINTS, find_latest_checkpoint

    if dtype not in DTYPES:
        raise GlyphfuseError(f"--dtype must be one of fp16, bf16, fp32, not {dtype!r}")
    source = checkpoint
    if checkpoint.is_dir() and not (checkpoint / CONFIG_NAME).exists() and (checkpoint / CHECKPOINTS).is_dir():
        source = find_latest_checkpoint(checkpoint, repair=False)
        if source is None:
            raise GlyphfuseError(f"{checkpoint}: run folder has no complete checkpoint ({CHECKPOINTS}/latest)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GlyphfuseError(f"{out}: exists and is not an empty folder; export writes a new folder and never replaces one")
    max_bytes = int(max_shard_mb * 2**20) if max_shard_mb is not None else None
    path = export_checkpoint(source, out, dtype=dtype, max_shard_bytes=max_bytes, card=card)
    files = sorted(item for item in path.iterdir() if item.is_file())
    total = sum(item.stat().st_size for item in files)
    largest = max(item.stat().st_size for item in files)
    parameters = parameter_counts(load_checkpoint_config(path))["total"]
    print(
        f"wrote {path} from {source}: {parameters:,} parameters as {dtype}, {len(files)} files, "
        f"{total / 2**20:.1f} MiB in all, largest {largest / 2**20:.2f} MiB"
    )

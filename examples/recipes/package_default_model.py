"""Install a trained checkpoint as glyphfuse's packaged default model, with its model card.

    python examples/recipes/package_default_model.py RUN/checkpoints/step_N examples/recipes/lines64-card.json
    python examples/recipes/package_default_model.py BASE CARD.json --sr SR --dtype float16   # a cascade

`glyphfuse export` (fp32 weights unless --dtype says otherwise), written over
glyphfuse/default_model/: the checkpoint's EMA weights and config (not the optimizer state) and the
card as card.json, which `glyphfuse info` prints. With --sr, the SR checkpoint goes into its sr/
folder, which makes the default model a cascade. The other packaged models in it (the painter,
paint/) are kept. The new folder is put together beside the old one and swapped in only once it
is complete (--sr may name the packaged sr/ itself: it is read before the swap).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from glyphfuse.core.checkpoint import export_checkpoint, read_checkpoint_info
from glyphfuse.sampling.generation import DEFAULT_MODEL_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a step checkpoint of a train-base run, or an export of one")
    parser.add_argument("card", type=Path, help="model card JSON: recipe, training figures, scores")
    parser.add_argument("--sr", type=Path, help="an SR checkpoint that upsamples the base's images (packaged as sr/)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"), help="stored weights (default float32)")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="where to install (default: glyphfuse/default_model)")
    args = parser.parse_args()
    kept = [child for child in args.out.iterdir() if child.is_dir() and child.name not in ("sr", "__pycache__")] if args.out.exists() else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent, prefix=f"{args.out.name}.new-") as scratch:
        staged = Path(scratch) / args.out.name
        export_checkpoint(args.checkpoint, staged, dtype=args.dtype, card=args.card)
        if args.sr is not None:
            export_checkpoint(args.sr, staged / "sr", dtype=args.dtype)
        for child in kept:
            shutil.copytree(child, staged / child.name)
        old = Path(scratch) / "old"
        if args.out.exists():
            os.replace(args.out, old)
        os.replace(staged, args.out)
    step = read_checkpoint_info(args.checkpoint).get("metadata", {}).get("step")
    print(f"installed {args.checkpoint} (step {step}) as {args.out}" + (f", kept {', '.join(c.name for c in kept)}" if kept else ""))
    if args.sr is not None:
        print(f"installed {args.sr} as {args.out / 'sr'}: the default model is a cascade")


if __name__ == "__main__":
    main()

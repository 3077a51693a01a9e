"""Install a trained checkpoint as glyphfuse's packaged default model, with its model card.

    python examples/recipes/package_default_model.py RUN/checkpoints/step_N examples/recipes/lines64-card.json
    python examples/recipes/package_default_model.py BASE CARD.json --sr SR --dtype float16   # a cascade

`glyphfuse export` (fp32 weights unless --dtype says otherwise), written over
glyphfuse/default_model/: the checkpoint's EMA weights and config (not the optimizer state) and the
card as card.json, which `glyphfuse info` prints. With --sr, the SR checkpoint goes into its sr/
folder, which makes the default model a cascade. The folder is replaced atomically, and only once
the new one is complete; the SR model follows it.
"""

from __future__ import annotations

import argparse
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
    export_checkpoint(args.checkpoint, args.out, dtype=args.dtype, card=args.card, overwrite=True)
    step = read_checkpoint_info(args.checkpoint).get("metadata", {}).get("step")
    print(f"installed {args.checkpoint} (step {step}) as {args.out}")
    if args.sr is not None:
        export_checkpoint(args.sr, args.out / "sr", dtype=args.dtype)
        print(f"installed {args.sr} as {args.out / 'sr'}: the default model is a cascade")


if __name__ == "__main__":
    main()

"""Install a trained checkpoint as glyphfuse's packaged default model, with its model card.

    python examples/recipes/package_default_model.py RUN/checkpoints/step_N examples/recipes/lines64-card.json

`glyphfuse export` with fp32 weights, written over glyphfuse/default_model/: the checkpoint's EMA
weights and config (not the optimizer state) and the card as card.json, which `glyphfuse info`
prints. The folder is replaced atomically, and only once the new one is complete.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from glyphfuse.core.checkpoint import export_checkpoint, read_checkpoint_info
from glyphfuse.sampling.generation import DEFAULT_MODEL_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a step checkpoint of a train-base run")
    parser.add_argument("card", type=Path, help="model card JSON: recipe, training figures, scores")
    args = parser.parse_args()
    export_checkpoint(args.checkpoint, DEFAULT_MODEL_DIR, dtype="float32", card=args.card, overwrite=True)
    step = read_checkpoint_info(args.checkpoint).get("metadata", {}).get("step")
    print(f"installed {args.checkpoint} (step {step}) as {DEFAULT_MODEL_DIR}")


if __name__ == "__main__":
    main()

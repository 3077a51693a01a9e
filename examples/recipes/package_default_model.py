"""Install a trained checkpoint as glyphfuse's packaged default model, with its model card.

    python examples/recipes/package_default_model.py RUN/checkpoints/step_N examples/recipes/words32-card.json

Copies the checkpoint's EMA weights and config (not the optimizer state) into
glyphfuse/default_model/ (written atomically by save_checkpoint) and stores the card as card.json,
which `glyphfuse info` prints. Weights stay fp32 (the words32 model is 5.9 MB).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from glyphfuse.core.checkpoint import CARD_NAME, load_checkpoint, read_checkpoint_info, save_checkpoint
from glyphfuse.sampling import DEFAULT_MODEL_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a step checkpoint of a train-base run")
    parser.add_argument("card", type=Path, help="model card JSON: recipe, training figures, scores")
    args = parser.parse_args()
    card = json.loads(args.card.read_text(encoding="utf-8"))
    model, config = load_checkpoint(args.checkpoint)
    step = read_checkpoint_info(args.checkpoint).get("metadata", {}).get("step")
    metadata = {"step": step, "weights": "ema", "recipe": card.get("recipe", "")}
    card_bytes = (json.dumps(card, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    save_checkpoint(DEFAULT_MODEL_DIR, model, config, metadata=metadata, extra_files={CARD_NAME: card_bytes})
    print(f"installed {args.checkpoint} (step {step}) as {DEFAULT_MODEL_DIR}")


if __name__ == "__main__":
    main()

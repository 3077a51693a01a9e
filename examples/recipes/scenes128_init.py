"""The scenes128 route runs: a colour model initialised from the grey lines128 base, in part.

    python examples/recipes/scenes128_init.py GREY_CKPT OUT --copy text|inner|none [--seed 0]

* ``none``:  all weights fresh (RGB from scratch);
* ``text``:  the text encoder and the timestep embedding copied, the U-Net fresh;
* ``inner``: everything copied except the U-Net's pixel ends (input conv and output layers,
  whose shapes change from 16 to 48 values a 4x4 patch) and the tensors of the first level, which
  scenes128 widens from 32 to 64 channels: those start fresh.

The scene-control embedding is always fresh (zero at the start). Every copied tensor must have the
same name in both models (a missing name is an error); the ones whose shape differs are counted
and named. The issue's
finding that a symmetric grey -> RGB inflation cannot learn colour is why nothing here copies the
grey input or output layers.
"""

from __future__ import annotations

import argparse
import sys

import torch

from glyphfuse.core.checkpoint import load_checkpoint, save_checkpoint
from glyphfuse.core.config import get_preset
from glyphfuse.core.model import GlyphModel

PREFIXES = {
    "none": (),
    "text": ("time_embed.", "text_encoder."),
    "inner": ("time_embed.", "text_encoder.", "unet."),
}
FRESH = ("unet.input_conv.", "unet.out.")  # the pixel ends: never copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("grey_checkpoint")
    parser.add_argument("out")
    parser.add_argument("--copy", choices=sorted(PREFIXES), required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    grey, grey_config = load_checkpoint(args.grey_checkpoint)
    config = get_preset("scenes128")
    torch.manual_seed(args.seed)
    model = GlyphModel(config)
    grey_state, state = grey.state_dict(), model.state_dict()
    copied, fresh = 0, []
    for name, tensor in state.items():
        if not name.startswith(PREFIXES[args.copy]) or name.startswith(FRESH):
            continue
        if name not in grey_state:
            sys.exit(f"error: {name} has no tensor of that name in {args.grey_checkpoint}")
        if grey_state[name].shape != tensor.shape:  # the widened first level
            fresh.append(name)
            continue
        tensor.copy_(grey_state[name])
        copied += tensor.numel()
    total = sum(t.numel() for t in state.values())
    save_checkpoint(args.out, model, config, metadata={"colour_init": args.copy, "colour_init_from": grey_config.name})
    print(f"{args.out}: {copied:,} of {total:,} parameters copied from {grey_config.name} ({args.copy}); "
          f"{len(fresh)} tensors of other shapes left fresh (the widened first level: {', '.join(sorted({n.rsplit('.', 2)[0] for n in fresh})[:8])} ...)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Does a colour model draw colour? Its prediction error split into luma and chroma.

    python benchmarks/bench_color.py CKPT [CKPT ...] --data DIR [--n 64] [--t 50 250 500]

For ``n`` images of a colour data folder (synth-fonts --recipe scenes128), each checkpoint
predicts its target (eps or v) from the image noised to timestep t, with the image's text and
scene controls. The error and the target are split into a luma part (the mean of the three
channels) and a chroma part (what differs between the channels); the figure is error / target
(root mean squares): 100 % means the model predicts nothing of that part, 0 % all of it. The same
noise is used for every checkpoint, so the rows compare. "text use" is how much the luma error
shrinks when the model is given the image's text rather than the null text (1 - error with text /
error without): near 0 for a model that does not yet write what it is told, larger the more the
text decides the picture. "corner" is the x0 error of the top-left 4x4 patch at t = 300 over the
mean of the other three corners' (the grey lines128 models draw a dot there: about 7x). A grey -> RGB inflation that cannot learn
colour stays at 100 % chroma (issue "Colour scenes"). "register" is the largest per-position norm of
the features that enter the U-Net's output layers (at t = 300) over their median, and where it is
(row, column in patches): a learned outlier there (the colour models': about 40x at the start of the
first text line) comes out as a coloured speck in every sample. A painter (glyph-guided model) is
given its text typeset as glyphs; its "text use" compares text and glyphs with neither.
"""

from __future__ import annotations

import argparse

import torch

from glyphfuse.core.checkpoint import load_checkpoint
from glyphfuse.core.controls import ControlBatch
from glyphfuse.core.diffusion import GaussianDiffusion
from glyphfuse.core.tokenizer import tokenize
from glyphfuse.data.imagefolder import ImageTextDataset
from glyphfuse.sampling.glyphs import NULL_GLYPH, typeset_glyphs


def split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(luma, chroma) of (B, 3, H, W): the channel mean, and each channel minus it."""
    luma = x.mean(dim=1, keepdim=True)
    return luma, x - luma


def rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


@torch.no_grad()
def error_ratios(checkpoint: str, data: str, n: int, timesteps: list[int], seed: int = 0) -> dict[int, tuple[float, float, float]]:
    """{t: (luma error / luma target, chroma error / chroma target, text use)} of one checkpoint,
    "corner": the top-left patch's x0 error over the other corners', and "register": (the largest
    per-position feature norm before the output layers over the median, its (row, column))."""
    model, config = load_checkpoint(checkpoint)
    model.eval()
    dataset = ImageTextDataset(data, config.image_size, config.channels, log=False)
    items = [dataset[i] for i in range(min(n, len(dataset)))]
    images = torch.stack([image for image, _, _ in items])
    text = tokenize([t for _, t, _ in items], config.text.max_length, max_lines=config.text.max_lines)
    null_text = tokenize([None] * len(items), config.text.max_length, max_lines=config.text.max_lines)
    controls = ControlBatch.build([c for _, _, c in items], config.scene_kinds) if config.scene_kinds else None
    glyphs, no_glyphs = {}, {}
    if config.glyphs:
        glyphs = {"glyphs": typeset_glyphs([t for _, t, _ in items], config.image_size)}
        no_glyphs = {"glyphs": torch.full_like(glyphs["glyphs"], NULL_GLYPH)}
    diffusion = GaussianDiffusion(config.diffusion)
    result = {}
    corner = torch.full((len(items),), 300, dtype=torch.long)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    x_t = diffusion.q_sample(images, corner, noise)
    features = []
    hook = model.unet.out.register_forward_pre_hook(lambda module, inputs: features.append(inputs[0].detach()))
    x0, _ = diffusion.predict_x0_and_eps(model(x_t, diffusion.model_timesteps(corner), text, controls=controls, **glyphs).float(), x_t, corner)
    hook.remove()
    norms = features[0].float().norm(dim=1).mean(dim=0)  # (h, w) per-position feature norm
    where = int(norms.argmax())
    result["register"] = (float(norms.max() / norms.median()), divmod(where, norms.shape[1]))
    error = (x0 - images).abs().mean(dim=(0, 1))  # (H, W)
    p = config.unet.patch_size
    others = (error[:p, -p:].mean() + error[-p:, :p].mean() + error[-p:, -p:].mean()) / 3
    result["corner"] = float(error[:p, :p].mean() / others)
    for t_value in timesteps:
        generator = torch.Generator().manual_seed(seed + t_value)
        noise = torch.randn(images.shape, generator=generator)
        t = torch.full((len(items),), t_value, dtype=torch.long)
        x_t = diffusion.q_sample(images, t, noise)
        output = model(x_t, diffusion.model_timesteps(t), text, controls=controls, **glyphs).float()
        target = diffusion.training_target(images, noise, t)
        blind = model(x_t, diffusion.model_timesteps(t), null_text, controls=controls, **no_glyphs).float()
        (luma_err, chroma_err), (luma_target, chroma_target) = split(output - target), split(target)
        text_use = 1 - rms(luma_err) / rms(split(blind - target)[0])
        result[t_value] = (rms(luma_err) / rms(luma_target), rms(chroma_err) / rms(chroma_target), text_use)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", required=True, help="a colour image folder (held out from training)")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--t", type=int, nargs="+", default=[50, 250, 500])
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"{'checkpoint':50s} " + " ".join(f"luma@{t:<4d} chroma@{t:<4d} text use@{t:<4d}" for t in args.t) + "  corner  register")
    for checkpoint in args.checkpoints:
        ratios = error_ratios(checkpoint, args.data, args.n, args.t)
        corner = ratios.pop("corner")
        register, (row, column) = ratios.pop("register")
        print(f"{checkpoint[-50:]:50s} " + " ".join(f"{100 * l:8.0f}% {100 * c:10.0f}% {100 * u:12.1f}%" for l, c, u in ratios.values())
              + f"  {corner:6.1f}x  {register:5.1f}x at ({row}, {column})")


if __name__ == "__main__":
    main()

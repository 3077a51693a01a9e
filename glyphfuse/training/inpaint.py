"""Training inpainting models: their warm start, their training masks and ``train-inpaint``.

An inpainting model (:func:`glyphfuse.core.config.inpaint_config_for`) is a base model whose U-Net
also sees the masked image and the mask (1 = draw here). It starts as a copy of a trained base
model: every tensor is copied, and the input conv's new input channels (masked image, mask) start
at zero, so before training it computes exactly what the base model computes (tested in
tests/test_inpaint.py). That is the recipe of Stable Diffusion's inpainting model.

Training masks (:func:`training_masks`), drawn per example from the trainer's CPU generator:

* ``TEXT_SHARE`` of them: the frame where the data recipe writes the example's text
  (:func:`glyphfuse.data.synth.recipe_text_frame`), grown by 1..MAX_GROW px on each side
  independently: the model learns to write a text into a picture, in the place ``glyphfuse edit``
  maps a user's box to;
* ``RECT_SHARE``: a random rectangle of 15..70 % of each side: it learns to fill background;
* the rest: everything, which is the base model's own task (nothing known).

A glyph-guided inpainting model (preset ``paint128``) is also shown the example's glyphs: its text
typeset where the recipe writes it (:func:`glyphfuse.data.synth.recipe_glyphs`, exactly the ink of
the data), with a little noise on half of them (up to :data:`GLYPH_NOISE_MAX`) so that it also
takes the ink that a grey model drew. It is what ``sample`` paints with (a whole picture), so it
sees the whole-picture mask more often (:data:`PAINT_SHARES`). Its loss counts the pixels at and
around the ink 1 + :data:`TEXT_LOSS_WEIGHT` times (:func:`text_loss_weight`): the text is a few
percent of a picture, and without it the painter learnt to use its glyphs very slowly (after 48k
images its error was the same with and without them).

:func:`train_inpaint` runs the shared trainer with the hook :func:`inpaint_model_inputs`; a
glyph-guided model also gets sample grids (the sample prompts typeset, whole pictures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from glyphfuse.core.checkpoint import check_checkpoint_output, load_checkpoint, load_checkpoint_config, save_checkpoint
from glyphfuse.core.config import ModelConfig, inpaint_config_for
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.model import GlyphModel
from glyphfuse.data.synth import FRAME_RECIPE, recipe_text_frame
from glyphfuse.sampling.glyphs import typeset_glyphs
from glyphfuse.training.loop import LOSS_WEIGHT, ModelInputs, TrainResult, config_for_run, prompt_grid_preview, train
from glyphfuse.training.run_folder import find_latest_checkpoint
from glyphfuse.training.sr import init_from_checkpoint
from glyphfuse.training.warm_start import resolve_base_checkpoint

TEXT_SHARE = 0.6  # masks over the text frame
RECT_SHARE = 0.3  # random rectangles; the rest mask everything
PAINT_SHARES = (0.4, 0.2)  # a glyph-guided model's (text frame, rectangle) shares: 40 % whole pictures
GLYPH_NOISE_MAX = 0.2  # largest std of the noise added to half of the training glyphs ([-1, 1] units)
TEXT_LOSS_WEIGHT = 4.0  # a painter's loss counts the pixels at and around the ink (1 px) 1 + this times
MAX_GROW = 12  # px (at 128 px) a text mask grows past the text frame on each side, at most

Frame = tuple[int, int, int, int]  # (left, top, right, bottom) in px


# ---------------------------------------------------------------------------------------------
# Warm start
# ---------------------------------------------------------------------------------------------


def inpaint_warm_start(base_model: torch.nn.Module, base_config: ModelConfig, *, name: str | None = None,
                       glyphs: bool = False) -> tuple[GlyphModel, ModelConfig]:
    """(inpainting GlyphModel, its config) holding a copy of every tensor of ``base_model``; the
    input conv's weights for the masked image, the mask (and the glyphs) are zero."""
    config = inpaint_config_for(base_config, name=name, glyphs=glyphs)
    model = GlyphModel(config)
    base_state = {key: value.detach().cpu() for key, value in base_model.state_dict().items()}
    state = model.state_dict()
    if set(base_state) != set(state):
        raise GlyphfuseError(f"model {base_config.name!r}: its tensors do not match its inpainting model's")
    with torch.no_grad():
        for key, value in base_state.items():
            if key == "unet.input_conv.weight":  # (out, in * p * p, 3, 3): the noisy image's channels come first
                state[key].zero_()
                state[key][:, : value.shape[1]].copy_(value)
            else:
                state[key].copy_(value)
    return model, config


def warm_start_inpaint_checkpoint(base_checkpoint: str | Path, out: str | Path, *, name: str | None = None, overwrite: bool = False,
                                  glyphs: bool = False) -> Path:
    """Build the inpainting model (``glyphs``: glyph-guided) of the base checkpoint (or run folder)
    ``base_checkpoint`` and save it as a checkpoint folder at ``out`` (new or empty; ``overwrite``
    replaces one, never the input)."""
    base_path = resolve_base_checkpoint(base_checkpoint)
    check_checkpoint_output(out, overwrite=overwrite, inputs=(base_checkpoint, base_path))
    base_model, base_config = load_checkpoint(base_path)
    if base_config.is_super_resolution or base_config.inpaint:
        raise GlyphfuseError(f"{base_path}: {base_config.name!r} is not a base model; an inpainting model starts from a base model checkpoint")
    model, config = inpaint_warm_start(base_model, base_config, name=name, glyphs=glyphs)
    kind = "paint" if glyphs else "inpaint"
    return Path(save_checkpoint(out, model, config, metadata={"warm_start_from": base_path.name, "warm_start_kind": kind}))


# ---------------------------------------------------------------------------------------------
# Training masks
# ---------------------------------------------------------------------------------------------


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def training_masks(texts: Sequence[str], size: int, frame_of: Callable[[str], Frame], generator: torch.Generator,
                   shares: tuple[float, float] = (TEXT_SHARE, RECT_SHARE)) -> torch.Tensor:
    """Masks (B, 1, size, size), 1 = draw here, one per text (see the module docstring); ``shares``
    are the text-frame and rectangle shares, the rest masks everything (and so does a text-frame
    mask of a text dropped for guidance, None). All draws come from the CPU ``generator``, a fixed
    number per example, so a run resumes exactly."""
    text_share, rect_share = shares
    masks = torch.zeros(len(texts), 1, size, size)
    for i, text in enumerate(texts):
        kind, grow = float(torch.rand((), generator=generator)), torch.randint(1, MAX_GROW + 1, (4,), generator=generator).tolist()
        corner, extent = torch.rand(2, generator=generator).tolist(), [_uniform(generator, 0.15, 0.7) for _ in range(2)]
        if kind < text_share and text is None:
            left, top, right, bottom = 0, 0, size, size
        elif kind < text_share:
            left, top, right, bottom = frame_of(text)
            left, top, right, bottom = max(0, left - grow[0]), max(0, top - grow[1]), min(size, right + grow[2]), min(size, bottom + grow[3])
        elif kind < text_share + rect_share:
            width, height = round(extent[0] * size), round(extent[1] * size)
            left, top = round(corner[0] * (size - width)), round(corner[1] * (size - height))
            right, bottom = left + width, top + height
        else:
            left, top, right, bottom = 0, 0, size, size
        masks[i, :, top:bottom, left:right] = 1.0
    return masks


def training_glyphs(texts: Sequence[str | None], size: int, recipe: str, generator: torch.Generator) -> torch.Tensor:
    """(B, 1, size, size) glyph inputs: each text typeset as the recipe writes it, half of them
    with Gaussian noise of a random std up to GLYPH_NOISE_MAX (a fixed number of draws per example);
    none (-1) for a text dropped for guidance (None): the null input has no glyphs either."""
    glyphs = typeset_glyphs(texts, size, recipe)
    noisy = (torch.rand(len(texts), generator=generator) < 0.5) & torch.tensor([text is not None for text in texts])
    scale = torch.rand(len(texts), generator=generator) * GLYPH_NOISE_MAX * noisy
    noise = torch.randn(glyphs.shape, generator=generator)
    return (glyphs + scale[:, None, None, None] * noise).clamp(-1.0, 1.0)


def text_loss_weight(glyphs: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) loss weights: 1 + TEXT_LOSS_WEIGHT at the ink of ``glyphs`` grown by 1 px, else 1."""
    near_ink = torch.nn.functional.max_pool2d((glyphs > -0.8).float(), kernel_size=3, stride=1, padding=1)
    return 1.0 + TEXT_LOSS_WEIGHT * near_ink


def inpaint_model_inputs(model_config: ModelConfig, recipe: str = FRAME_RECIPE) -> ModelInputs:
    """The trainer's ``model_inputs`` hook for an inpainting model: each micro-batch's masks and
    masked images (and, glyph-guided, its glyphs)."""
    size = model_config.image_size
    frame_of = recipe_text_frame(recipe, size)
    shares = PAINT_SHARES if model_config.glyphs else (TEXT_SHARE, RECT_SHARE)

    def model_inputs(images: torch.Tensor, texts: Sequence[str], generator: torch.Generator) -> dict[str, torch.Tensor]:
        mask = training_masks(texts, size, frame_of, generator, shares).to(images.device)
        inputs = {"masked_image": images * (1.0 - mask), "mask": mask}
        if model_config.glyphs:  # a text dropped for guidance (None) has no glyphs and no text weight
            inputs["glyphs"] = training_glyphs(texts, size, recipe, generator).to(images.device)
            inputs[LOSS_WEIGHT] = text_loss_weight(typeset_glyphs(texts, size, recipe)).to(images.device)
        return inputs

    return model_inputs



# ---------------------------------------------------------------------------------------------
# train-inpaint
# ---------------------------------------------------------------------------------------------


def train_inpaint(data, out, *, init=None, recipe: str = FRAME_RECIPE, config_file=None, overrides: dict | None = None, resume: bool | None = None,
                  **train_kwargs) -> TrainResult:
    """Train an inpainting model on the image folder ``data`` (made with the data recipe
    ``recipe``, whose text frame the text masks use) into the run folder ``out``.

    init: the inpainting checkpoint to start from (``glyphfuse warm-start --inpaint``); its config is
    the model. A run folder that already has a checkpoint resumes it; ``init`` is then not loaded again.
    """
    overrides = dict(overrides or {})
    init_model = None
    resuming = resume is not False and find_latest_checkpoint(out) is not None
    if init is not None:
        init_config = load_checkpoint_config(init)
        if not init_config.inpaint:
            raise GlyphfuseError(f"{init}: {init_config.name!r} is not an inpainting checkpoint; make one with glyphfuse warm-start BASE_CKPT --inpaint --out CKPT")
        overrides["model"] = init_config.to_dict()
        init_model = init_from_checkpoint(init)
    elif not resuming:
        raise GlyphfuseError(f"{out}: a new inpainting run needs --init CKPT (from glyphfuse warm-start --inpaint)")
    train_config = config_for_run(data, out, config_file=config_file, overrides=overrides, resume=resume)
    model_config = train_config.model_config()
    if not model_config.inpaint:
        raise GlyphfuseError(f"model {model_config.name!r} is not an inpainting model; train-inpaint needs one")
    preview = None
    if model_config.glyphs and train_config.sample_every:  # sample grids: the prompts typeset, whole pictures
        preview = prompt_grid_preview(train_config, model_config, lambda prompts: {"glyphs": typeset_glyphs(prompts, model_config.image_size, recipe)})
    return train(train_config, out, resume=resume, init_model=init_model, model_inputs=inpaint_model_inputs(model_config, recipe),
                 preview=preview, **train_kwargs)

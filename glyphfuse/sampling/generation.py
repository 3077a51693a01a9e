"""Sampling: turn prompts into images with a trained model.

    from glyphfuse.sampling.generation import load_model, generate, save_images
    model, config = load_model("runs/base64/checkpoint")
    images = generate(model, config, ["hello\\nworld"], steps=50, guidance=3.0, seed=0)  # (1, C, H, W)
    save_images(images, "hello.png")

:func:`generate` takes a :class:`~glyphfuse.sampling.settings.SamplingSettings` (``settings=``) or its fields
as keyword arguments, as above. Every prompt gets its own noise generator seeded ``seed + index``,
so the same seed gives the same image and a prompt's image does not depend on the other prompts in
its batch. With classifier-free guidance (scale != 1) the conditional and the null
("unconditional") inputs go through the network in one batched forward pass.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image

from glyphfuse.core.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_checkpoint, read_model_card
from glyphfuse.core.shards import INDEX_NAME
from glyphfuse.core.config import ModelConfig
from glyphfuse.core.controls import ControlBatch, SceneControls
from glyphfuse.core.device import autocast_dtype, resolve_device
from glyphfuse.core.diffusion import GaussianDiffusion
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.files import check_writable, write_bytes_atomic
from glyphfuse.core.images import make_grid, tensor_to_pil
from glyphfuse.core.tokenizer import TextBatch, tokenize
from glyphfuse.core.progress import ProgressBar
from glyphfuse.data.prompts import parse_prompt  # noqa: F401 (part of the sampling API)
from glyphfuse.sampling.glyphs import NULL_GLYPH, ink_anchor
from glyphfuse.sampling.inputs import check_glyphs, check_known, checked_prompts
from glyphfuse.sampling.settings import SamplingSettings, resolve_settings

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "default_model"
NO_DEFAULT_MODEL = "no default model is installed yet; pass --checkpoint DIR (train one with glyphfuse train-base)"


def _holds_checkpoint(folder: Path) -> bool:
    """A config and weights (one file, or shards and their index) are in ``folder``."""
    weights = (folder / WEIGHTS_NAME, folder / INDEX_NAME)
    return (folder / CONFIG_NAME).is_file() and any(path.is_file() for path in weights)


def default_checkpoint_dir() -> Path:
    """The checkpoint shipped with the package (glyphfuse/default_model/), if there is one."""
    if _holds_checkpoint(DEFAULT_MODEL_DIR):
        return DEFAULT_MODEL_DIR
    raise GlyphfuseError(NO_DEFAULT_MODEL)


def packaged_sr_dir() -> Path | None:
    """The super-resolution checkpoint packaged with the default model (glyphfuse/default_model/sr/),
    or None: with it, the default model is a cascade and ``sample`` upsamples by default."""
    folder = DEFAULT_MODEL_DIR / "sr"
    return folder if _holds_checkpoint(folder) else None


def packaged_painter_dir() -> Path | None:
    """The colour painter packaged with glyphfuse (glyphfuse/default_model/paint/: a glyph-guided
    inpainting model, paint128), or None when none is installed. It paints ``sample --colour``'s
    pictures around the default model's writing, and it is the model of ``glyphfuse edit`` and of the
    serve page's edit panel."""
    folder = DEFAULT_MODEL_DIR / "paint"
    return folder if _holds_checkpoint(folder) else None


def colour_checkpoint_dir(checkpoint: str | Path | None = None) -> Path:
    """What ``--colour`` loads: the packaged painter; GlyphfuseError when a checkpoint is also given
    (it decides alone) or no painter is installed."""
    if checkpoint is not None:
        raise GlyphfuseError("--colour picks the packaged colour painter; with --checkpoint, the checkpoint decides (drop one of them)")
    folder = packaged_painter_dir()
    if folder is None:
        raise GlyphfuseError("no colour painter is installed (glyphfuse/default_model/paint/); pass --checkpoint with a colour model")
    return folder


def load_model(checkpoint_dir: str | Path | None = None, device: str | torch.device = "auto"):
    """(model in eval mode on ``device``, ModelConfig) from a checkpoint folder; ``None`` means
    the packaged default model."""
    path = Path(checkpoint_dir) if checkpoint_dir is not None else default_checkpoint_dir()
    return load_checkpoint(path, device=resolve_device(device))


def domain_warning(prompt: str, checkpoint_dir: str | Path | None = None) -> str | None:
    """One line when ``prompt`` lies outside the domain that the checkpoint's model card states
    (characters, lines, characters a line), else None. The model still samples; it has simply
    never learned to write such text. A checkpoint without a card has no stated domain."""
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else default_checkpoint_dir()
    domain = (read_model_card(folder) or {}).get("domain")
    if not isinstance(domain, dict):
        return None
    lines = prompt.split("\n")
    problems = []
    alphabet = domain.get("characters")
    if isinstance(alphabet, str):
        outside = sorted(set(prompt) - set(alphabet) - {"\n"})
        if outside:
            problems.append("characters " + " ".join(repr(char) for char in outside[:8]) + (" ..." if len(outside) > 8 else ""))
    if isinstance(domain.get("max_lines"), int) and len(lines) > domain["max_lines"]:
        problems.append(f"{len(lines)} lines (at most {domain['max_lines']})")
    most = domain.get("max_chars_per_line")
    if isinstance(most, int) and max(map(len, lines)) > most:
        problems.append(f"a line of {max(map(len, lines))} characters (at most {most})")
    if not problems:
        return None
    # short enough for one terminal line: the card's full summary is one `glyphfuse info` away
    return f"the prompt is outside what this model was trained to write ({'; '.join(problems)}); its domain: glyphfuse info. Sampling anyway."


def apply_guidance(cond_out: torch.Tensor, uncond_out: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: uncond + scale * (cond - uncond). scale 1 = conditional output."""
    if scale == 1.0:
        return cond_out
    return uncond_out + scale * (cond_out - uncond_out)


def make_model_fn(model: torch.nn.Module, text, guidance: float, null_text=None, inputs: dict[str, torch.Tensor] | None = None,
                  autocast: torch.dtype | None = None, controls: ControlBatch | None = None, null_controls: ControlBatch | None = None,
                  null_inputs: dict[str, torch.Tensor] | None = None) -> Callable:
    """Wrap ``model`` as the diffusion's ``model_fn(x_t, t)`` for fixed prompts.

    text: TextBatch for the B prompts; null_text: TextBatch of B null inputs (needed when
    guidance != 1); inputs: the model's extra image inputs, B rows each, the same for the null
    rows (SR: ``low_res``; inpainting: ``masked_image`` and ``mask``) unless ``null_inputs`` gives
    theirs (a painter's ``glyphs``: none); controls / null_controls: a
    colour model's scene controls and their null inputs (None for other models). The guided output
    is uncond + guidance * (cond - uncond), computed from one forward pass over the 2B-row batch
    [cond; uncond].
    """
    guided = guidance != 1.0
    inputs = dict(inputs or {})
    if guided:
        if null_text is None:
            raise ValueError("guidance != 1 needs null_text")
        both_text = TextBatch.cat([text, null_text])
        null_inputs = {**inputs, **(null_inputs or {})}
        both_inputs = {name: torch.cat([tensor, null_inputs[name]]) for name, tensor in inputs.items()}
        both_controls = ControlBatch.cat([controls, null_controls]) if controls is not None else None

    def run(x, t, txt, extra, ctl):
        extra = extra if ctl is None else {**extra, "controls": ctl}
        if autocast is not None:
            with torch.autocast(x.device.type, dtype=autocast):
                return model(x, t, txt, **extra).float()
        return model(x, t, txt, **extra).float()

    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not guided:
            return run(x_t, t, text, inputs, controls)
        out = run(torch.cat([x_t, x_t]), torch.cat([t, t]), both_text, both_inputs, both_controls)  # (2B, C, H, W)
        cond, uncond = out.chunk(2)
        return apply_guidance(cond, uncond, guidance)

    return model_fn


# ---------------------------------------------------------------------------------------------
# generate: check the inputs, then one diffusion chain per chunk of batch_size prompts
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    config: ModelConfig,
    prompts: Sequence[str],
    settings: SamplingSettings | None = None,
    *,
    low_res: torch.Tensor | None = None,
    start_images: torch.Tensor | None = None,
    start_fraction: float = 1.0,
    controls: SceneControls | Sequence[SceneControls | None] | None = None,
    known: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    resample: int = 1,
    glyphs: torch.Tensor | None = None,
    draw_kind: bool = True,
    device: str | torch.device | None = None,
    show_progress: bool = False,
    **overrides,
) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1] for ``prompts`` (newline = line break).

    settings: the :class:`~glyphfuse.sampling.settings.SamplingSettings` (default: the defaults); keyword
    arguments named like its fields override it (``steps=20, seed=3``). Used here: steps,
    sampler, guidance, eta, dynamic_threshold, seed, batch_size and (painters) anchor_ink.
    Prompt i draws all its noise from a generator seeded ``seed + i``; prompts are run in chunks
    of ``batch_size`` (each chunk runs 2x that through the network when guidance != 1).
    Samplers: "ddim" (``eta`` 0: deterministic), "ddpm" (ancestral) or "dpmpp-2m"
    (DPM-Solver++(2M), deterministic, second order, meant for fewer steps); each step is one
    network call.
    low_res: (B, C, h, w) in [-1, 1], required by super-resolution models.
    start_images: (B, C, H, W) in [-1, 1] to refine instead of drawing from pure noise: each chain
    covers the first ``start_fraction`` of the timesteps and starts from its image noised there
    (see GaussianDiffusion.sample); the SR stage passes the bicubic upsample.
    controls: a colour model's scene controls, one for all prompts or one per prompt (default:
    those of ``settings``: style, text_color, background_color) (:func:`resolve_controls`: a kind not given is drawn at random from ``seed + i``
    unless ``draw_kind`` is False, colours not given are left to the model); other models refuse them.
    known (B, C, H, W) in [-1, 1], mask (B, 1, H, W), 1 = draw here: inpainting. An inpainting model
    sees the masked picture and the mask; any other base model runs training-free (RePaint: the
    known pixels, noised, replace its own after every step, ``resample`` rounds a step; ddim or ddpm).
    glyphs (B, 1, H, W) in [-1, 1]: a glyph-guided model's text ink (:mod:`glyphfuse.sampling.glyphs`);
    required by such models, refused by others.
    device: move the model there first (default: where the model already is).
    show_progress: a progress bar on stderr.
    """
    settings = resolve_settings(settings, **overrides)
    prompts = checked_prompts(prompts, config, low_res)
    check_known(known, mask, config, len(prompts))
    check_glyphs(glyphs, config, len(prompts))
    chosen = resolve_controls(controls if controls is not None else settings.controls(), config, len(prompts), settings.seed, draw_kind=draw_kind)
    if device is not None:
        model.to(resolve_device(device))
    device = next(model.parameters()).device
    diffusion = GaussianDiffusion(config.diffusion)
    size = settings.batch_size
    chunks = [range(start, min(start + size, len(prompts))) for start in range(0, len(prompts), size)]
    if start_images is not None and tuple(start_images.shape) != (len(prompts), config.channels, config.image_size, config.image_size):
        raise GlyphfuseError(f"start images have shape {tuple(start_images.shape)}, expected {(len(prompts), config.channels, config.image_size, config.image_size)}")
    up_to = diffusion.timesteps_up_to(start_fraction) if start_images is not None else diffusion.num_steps
    steps_per_chunk = min(settings.steps, up_to)
    was_training = model.training
    model.eval()  # restored at the end: the trainer calls this for its preview samples
    try:
        with ProgressBar("sampling", len(chunks) * steps_per_chunk, unit="steps", shown=show_progress) as bar:
            outputs = [_sample_chunk(model, config, diffusion, prompts, chunk, low_res, settings, device, bar, start_images, start_fraction, chosen,
                                     known, mask, resample, glyphs)
                       for chunk in chunks]
    finally:
        model.train(was_training)
    return torch.cat(outputs)


def resolve_controls(controls: SceneControls | Sequence[SceneControls | None] | None, config: ModelConfig, count: int,
                     seed: int, *, draw_kind: bool = True) -> list[SceneControls] | None:
    """The scene controls of each of ``count`` prompts (None for a model without them). A kind
    not given is drawn uniformly from the model's kinds by a generator seeded ``seed + i``, so
    different seeds give different kinds of picture (``draw_kind`` False: it stays not given, the
    model's "any kind", as edit wants); colours not given stay None (the model picks them). GlyphfuseError for controls given to a grey model or a wrong count."""
    items = list(controls) if isinstance(controls, (list, tuple)) else [controls] * count
    if len(items) != count:
        raise GlyphfuseError(f"got {len(items)} scene controls for {count} prompts")
    if not config.scene_kinds:
        if any(item is not None and not item.empty for item in items):
            raise GlyphfuseError(f"model {config.name!r} has no scene controls (--style, --text-color, --background-color): it is not a colour scene model")
        return None
    chosen = []
    for i, item in enumerate(items):
        item = item or SceneControls()
        if item.kind is not None and item.kind not in config.scene_kinds:
            raise GlyphfuseError(f"model {config.name!r} does not draw style {item.kind!r}; its styles: {', '.join(config.scene_kinds)}")
        if item.kind is None and draw_kind:
            draw = torch.randint(len(config.scene_kinds), (1,), generator=torch.Generator().manual_seed(seed + i + 0x5CE7E)).item()
            item = SceneControls(config.scene_kinds[draw], item.text_color, item.background_color)
        chosen.append(item)
    return chosen


def _sample_chunk(model: torch.nn.Module, config: ModelConfig, diffusion: GaussianDiffusion, prompts: list[str], chunk: range,
                  low_res: torch.Tensor | None, settings: SamplingSettings, device: torch.device, bar: ProgressBar,
                  start_images: torch.Tensor | None = None, start_fraction: float = 1.0,
                  controls: list[SceneControls] | None = None, known: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                  resample: int = 1, glyphs: torch.Tensor | None = None) -> torch.Tensor:
    """Images (len(chunk), C, H, W) on the CPU for the prompts at indices ``chunk``: one chain."""
    rows = slice(chunk.start, chunk.stop)
    text = tokenize([prompts[i] for i in chunk], config.text.max_length, max_lines=config.text.max_lines).to(device)
    null_text = None
    if settings.guidance != 1.0:
        null_text = tokenize([None] * len(chunk), config.text.max_length, max_lines=config.text.max_lines).to(device)
    inputs, chunk_known, chunk_mask = {}, None, None
    if low_res is not None:
        inputs["low_res"] = low_res[rows].to(device=device, dtype=torch.float32)
    if known is not None:
        chunk_known, chunk_mask = known[rows].to(device=device, dtype=torch.float32), mask[rows].to(device=device, dtype=torch.float32)
        if config.inpaint:  # the model sees what is known; otherwise the sampler pastes it (RePaint)
            inputs.update(masked_image=chunk_known * (1.0 - chunk_mask), mask=chunk_mask)
            chunk_known = chunk_mask = None
    null_inputs, project = {}, None
    if glyphs is not None:  # the null input of guidance has no glyphs, as in training
        inputs["glyphs"] = glyphs[rows].to(device=device, dtype=torch.float32)
        null_inputs["glyphs"] = torch.full_like(inputs["glyphs"], NULL_GLYPH)
        project = ink_anchor(inputs["glyphs"]) if settings.anchor_ink else None
    chunk_controls = null_controls = None
    if controls is not None:
        chunk_controls = ControlBatch.build([controls[i] for i in chunk], config.scene_kinds).to(device)
        null_controls = ControlBatch.build([None] * len(chunk), config.scene_kinds).to(device)
    model_fn = make_model_fn(model, text, settings.guidance, null_text, inputs, autocast_dtype(device), chunk_controls, null_controls,
                             null_inputs)
    guard = _FiniteGuard(model_fn, settings.steps, on_step=bar.advance)
    generators = [torch.Generator().manual_seed(settings.seed + i) for i in chunk]  # prompt i: seed + i
    images = diffusion.sample(
        guard, (len(chunk), config.channels, config.image_size, config.image_size), steps=settings.steps,
        sampler=settings.sampler, eta=settings.eta, generator=generators, dynamic_threshold=settings.dynamic_threshold,
        progress=guard.progress, device=device,
        start_image=start_images[rows] if start_images is not None else None, start_fraction=start_fraction,
        known=chunk_known, mask=chunk_mask, resample=resample, project=project,
    )
    guard.check(images, "in the final image")
    return images.float().cpu()


class _FiniteGuard:
    """Wraps a diffusion ``model_fn`` (and takes its progress calls, to know the step): sampling
    stops with a one-line GlyphfuseError naming the step as soon as the network output, guidance
    applied, holds NaN or infinity; otherwise it would end as an all-black or garbage image.
    ``on_step()`` is called after every step (a progress bar's advance)."""

    def __init__(self, model_fn: Callable, steps: int, on_step: Callable[[], None] | None = None):
        self.model_fn, self.on_step = model_fn, on_step
        self.done, self.total = 0, steps

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.on_step is not None:
            self.on_step()

    def check(self, tensor: torch.Tensor, where: str) -> None:
        if not torch.isfinite(tensor).all():
            raise GlyphfuseError(
                f"sampling became non-finite (NaN or infinity) {where}; nothing was written. "
                "The checkpoint's weights or the guidance scale are broken"
            )

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.model_fn(x_t, t)
        self.check(out, f"at step {self.done + 1} of {self.total}")
        return out


# ---------------------------------------------------------------------------------------------
# Writing images
# ---------------------------------------------------------------------------------------------


def output_paths(out: str | Path, count: int) -> list[Path]:
    """out.png, out_1.png, out_2.png, ... for ``count`` images."""
    out = Path(out)
    return [out if i == 0 else out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(count)]


def _image_format(path: Path) -> str:
    """PIL's format name for the file extension of ``path``; GlyphfuseError when unknown."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise GlyphfuseError(f"{path}: unknown image file extension {path.suffix!r}; use e.g. .png")
    return fmt


def check_output(out: str | Path) -> None:
    """Check BEFORE sampling that :func:`save_images` can write ``out`` (and ``out_1`` ... beside
    it, with the same extension): a known image extension and a folder where files can be
    created (created if missing). GlyphfuseError naming the path otherwise."""
    check_writable(out)
    _image_format(Path(out))


def _save_image_atomic(image: Image.Image, path: Path) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format=_image_format(path))
    write_bytes_atomic(path, buffer.getvalue())


def save_images(images: torch.Tensor, out: str | Path, grid: bool = False, columns: int | None = None) -> list[Path]:
    """Write images (B, C, H, W) in [-1, 1]: one file (``out``), ``out``, ``out_1``, ... or, with
    ``grid``, one grid picture at ``out``. Returns the paths written."""
    pictures = [tensor_to_pil(image) for image in images]
    if grid:
        paths = [Path(out)]
        _save_image_atomic(make_grid(pictures, columns=columns), paths[0])
        return paths
    paths = output_paths(out, len(pictures))
    for picture, path in zip(pictures, paths):
        _save_image_atomic(picture, path)
    return paths

"""``glyphfuse edit``: write a text into a box of the user's own picture.

    from glyphfuse.editing import edit_picture, open_picture, load_edit_model
    from glyphfuse.sampling.generation import packaged_painter_dir
    model, config = load_edit_model(packaged_painter_dir())   # or an inpainting checkpoint
    result = edit_picture(open_picture("photo.jpg"), "OPEN\\n24 h", (40, 60, 300, 120), model=model, config=config, candidates=4)
    result.image.save("out.png")           # the photo, changed only inside the box
    result.candidates[result.best].ocr     # what OCR read in the box

One edit (see :mod:`glyphfuse.editing.geometry` for the mapping):

1. the box is checked against the picture and the text, and mapped onto the model's canvas so that
   the text's frame sits in the middle of the box;
2. the square of the picture the canvas shows is cut out and scaled to the model's size (edge
   pixels repeated where it reaches past the picture);
3. a painter (glyph-guided inpainting model) needs the text's ink: the grey cascade writes it once
   per candidate (candidate i: seed + i), or the font renderer typesets it, at twice the painter's
   size where a grey SR model fits (the packaged one does);
4. the model draws inside the box's place and keeps the rest: an inpainting model sees the masked
   square and the mask; a plain colour base model runs training-free (RePaint: its known pixels
   are pasted back, noised, after every step) (``method``); a painter also sees the ink, at its
   own size;
5. each candidate's drawing becomes the box's pixels (``compose``, :mod:`glyphfuse.editing.compose`):
   by default the painter's letters are taken out of its drawing, the rest is scaled back and
   moved seamlessly onto the picture, and the sharp ink is laid on in the painter's ink colour,
   made legible; ``canvas`` scales the drawing back as it is. Either is blended in feathered
   inside the box, in the picture's own mode: every pixel outside the box is the input's;
6. with several candidates, OCR reads each box and the closest to the text wins.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from glyphfuse.core.checkpoint import load_checkpoint, load_checkpoint_config
from glyphfuse.core.config import ModelConfig
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.images import pil_to_tensor
from glyphfuse.data.synth import FRAME_RECIPE, recipe_text_frame
from glyphfuse.editing.compose import DEFAULT_PANEL, HALO_PX, background_layer, compose_layers, compose_size, painted_ink, ring_picture
from glyphfuse.editing.geometry import Box, EditPlan, check_box, feather_weights, plan_edit
from glyphfuse.editing.pictures import Picture
from glyphfuse.ocr import reader
from glyphfuse.ocr.ranking import score_candidates
from glyphfuse.sampling.generation import default_checkpoint_dir, generate, load_model, packaged_sr_dir
from glyphfuse.sampling.inputs import check_prompt_lengths
from glyphfuse.sampling.glyphs import coverage_to_glyphs, glyphs_to_coverage
from glyphfuse.sampling.pipeline import glyphs_for_prompts, select_best
from glyphfuse.sampling.sr import check_sr_compatible
from glyphfuse.sampling.settings import SamplingSettings, resolve_settings

METHODS = ("auto", "model", "repaint")  # auto: the model's own inpainting if it has it, else repaint
COMPOSITIONS = ("layers", "canvas")  # glyphfuse.editing.compose; canvas: the drawing as it is, feathered in
TYPESET_INK_SCALE = 2  # typeset ink is drawn at this multiple of the painter's size
MIN_READ_HEIGHT = 32  # px: a box is scaled up to at least this height before OCR reads it


@dataclass
class EditCandidate:
    seed: int
    image: Image.Image  # the whole edited picture, in the input's mode
    ocr: str | None = None
    similarity: float | None = None


@dataclass
class EditResult:
    image: Image.Image  # the chosen edited picture
    best: int  # its index in candidates
    candidates: list[EditCandidate]
    plan: EditPlan
    method: str  # "model" or "repaint"
    seconds: float
    note: str | None = None  # e.g. a box wider than the canvas covers
    canvas: torch.Tensor | None = field(repr=False, default=None)  # (N, C, S, S) the model's drawings, for inspection


def load_edit_model(checkpoint: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, ModelConfig]:
    """A checkpoint that can edit: an inpainting model or a colour base model (RePaint)."""
    model, config = load_checkpoint(checkpoint, device=device)
    check_edit_model(config, str(checkpoint))
    return model, config


def check_edit_model(config: ModelConfig, where: str = "model") -> None:
    if config.is_super_resolution:
        raise GlyphfuseError(f"{where}: {config.name!r} is a super-resolution model; edit needs an inpainting or colour base model")
    if config.channels != 3:
        raise GlyphfuseError(f"{where}: {config.name!r} draws greyscale pictures; edit needs a colour model (an inpainting model, or scenes128)")


def resolve_method(method: str, config: ModelConfig) -> str:
    if method not in METHODS:
        raise GlyphfuseError(f"unknown edit method {method!r}; choose one of: {', '.join(METHODS)}")
    if method == "auto":
        return "model" if config.inpaint else "repaint"
    if method == "model" and not config.inpaint:
        raise GlyphfuseError(f"model {config.name!r} is not an inpainting model; use --method repaint (training-free) or an inpainting checkpoint")
    return method


def canvas_of(picture: Picture, plan: EditPlan) -> Image.Image:
    """The plan's square of the picture at the model's size, RGB; where the square reaches past the
    picture, its edge pixels are repeated."""
    left, top, side = plan.crop
    scale, size = plan.scale, plan.size
    width, height = picture.size
    # the canvas pixels that lie on the picture, and the picture area they show (float, exact)
    x0, y0 = max(0, int(np.ceil(-left * scale))), max(0, int(np.ceil(-top * scale)))
    x1, y1 = min(size, int(np.floor((width - left) * scale))), min(size, int(np.floor((height - top) * scale)))
    if x1 <= x0 or y1 <= y0:
        raise GlyphfuseError("the box is too small to map onto the model's canvas")  # cannot happen for a box inside the picture
    source = (left + x0 / scale, top + y0 / scale, left + x1 / scale, top + y1 / scale)
    shown = picture.rgb.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS, box=source, reducing_gap=3.0)
    array = np.pad(np.asarray(shown), ((y0, size - y1), (x0, size - x1), (0, 0)), mode="edge")
    return Image.fromarray(array, "RGB")


def scale_to_box(canvas: np.ndarray, plan: EditPlan, size: tuple[int, int] | None = None) -> np.ndarray:
    """A canvas (S, S) or (S, S, C) of the plan's canvas or any multiple of its size, scaled back
    onto the box: (h, w) or (h, w, C) float32 (bicubic, channel by channel); ``size`` (width,
    height): at that size instead of the box's own."""
    left, top, right, bottom = plan.box
    crop_left, crop_top, side = plan.crop
    planes = canvas.astype(np.float32)[..., None] if canvas.ndim == 2 else canvas.astype(np.float32)
    canvas_px = planes.shape[0]
    scale = canvas_px / side  # canvas px per picture px
    source = ((left - crop_left) * scale, (top - crop_top) * scale, (right - crop_left) * scale, (bottom - crop_top) * scale)
    # a box reaching past the canvas: pad it with its edge (those pixels get weight 0, box_weights)
    pad = int(np.ceil(max(0.0, -source[0], -source[1], source[2] - canvas_px, source[3] - canvas_px)))
    if pad:
        planes = np.pad(planes, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        source = tuple(value + pad for value in source)
    size = size or (right - left, bottom - top)
    scaled = [np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c]), "F").resize(size, Image.Resampling.BICUBIC, box=source))
              for c in range(planes.shape[2])]
    out = np.stack(scaled, axis=2)
    return out[..., 0] if canvas.ndim == 2 else out


def box_weights(plan: EditPlan) -> np.ndarray:
    """The blend weights (h, w) of the box: feathered inside the part of the box that the canvas
    mask covers, 0 elsewhere (a box wider than the canvas keeps its ends)."""
    left, top, right, bottom = plan.box
    crop_left, crop_top, _ = plan.crop
    mask_left, mask_top, mask_right, mask_bottom = plan.mask
    xs = (np.arange(left, right) + 0.5 - crop_left) * plan.scale
    ys = (np.arange(top, bottom) + 0.5 - crop_top) * plan.scale
    cols = np.flatnonzero((xs >= mask_left) & (xs < mask_right))
    rows = np.flatnonzero((ys >= mask_top) & (ys < mask_bottom))
    weight = np.zeros((bottom - top, right - left), dtype=np.float32)
    if len(cols) and len(rows):
        weight[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = feather_weights(len(cols), len(rows))
    return weight


def to_pixels(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W, C) float in 0..255."""
    return ((image.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) * 127.5).permute(1, 2, 0).numpy()


@functools.lru_cache(maxsize=2)
def packaged_sr_model(device: str = "cpu") -> tuple[torch.nn.Module, ModelConfig]:
    """The packaged grey SR model, loaded once per device: it sharpens the ink an edit lays on."""
    return load_model(packaged_sr_dir(), device)


def ink_sharpener(source: str, glyph_config: ModelConfig | None, sr_model: torch.nn.Module | None, sr_config: ModelConfig | None,
                  device) -> dict:
    """Keyword arguments of glyphs_for_prompts for the sharp ink layer: the grey SR model that fits
    the grey model (given, or the packaged one), a size for typeset ink, or nothing (ink at the
    painter's size) when no SR model fits."""
    if source == "typeset":
        return {"typeset_scale": TYPESET_INK_SCALE}
    if sr_config is None:
        folder = packaged_sr_dir()
        sr_config = None if folder is None else load_checkpoint_config(folder)
    grey_config = glyph_config if glyph_config is not None else load_checkpoint_config(default_checkpoint_dir())
    if sr_config is None:
        return {}
    try:
        check_sr_compatible(grey_config, sr_config)
    except GlyphfuseError:
        return {}  # e.g. a grey model of another size: its ink stays at the painter's size
    if sr_model is None:
        sr_model, sr_config = packaged_sr_model(str(device))
    return {"sr_model": sr_model, "sr_config": sr_config}


def read_box(image: Image.Image, box: Box) -> Image.Image:
    """The box of an edited picture as OCR should see it: RGB, scaled up when it is small."""
    region = image.crop(box)
    colour = ("RGB", "RGBA", "CMYK", "P", "YCbCr", "LAB", "HSV")  # read in colour (PIL cannot turn LAB into L at all)
    region = region.convert("RGB") if region.mode in colour else region.convert("L")
    if region.height < MIN_READ_HEIGHT:
        factor = MIN_READ_HEIGHT / region.height
        region = region.resize((max(1, round(region.width * factor)), MIN_READ_HEIGHT), Image.Resampling.BICUBIC)
    return region


def edit_picture(
    picture: Picture,
    text: str,
    box: tuple[int, int, int, int],
    settings: SamplingSettings | None = None,
    *,
    model: torch.nn.Module,
    config: ModelConfig,
    method: str = "auto",
    resample: int = 1,
    read: bool | None = None,
    glyph_source: str = "model",
    glyph_model: torch.nn.Module | None = None,
    glyph_config: ModelConfig | None = None,
    compose: str = "layers",
    panel: float = DEFAULT_PANEL,
    ink_sr_model: torch.nn.Module | None = None,
    ink_sr_config: ModelConfig | None = None,
    show_progress: bool = False,
    **overrides,
) -> EditResult:
    """Write ``text`` (newline = line break) into ``box`` (x, y, w, h in picture px) of ``picture``.

    settings / overrides: the sampling settings, as for ``generate`` (steps, guidance, seed,
    candidates, style, text_color, background_color ...). Candidate i uses seed + i.
    method: "model" (an inpainting model), "repaint" (training-free, any colour base model; ``resample``
    rounds a step) or "auto". read: OCR the box of every candidate (default: when there are several).
    glyph_source, glyph_model, glyph_config: a painter's glyphs (glyphfuse.sampling.pipeline): ``model``
    (default: the packaged grey model writes the text, once per candidate: candidate i paints
    around its sample with seed + i) or ``typeset``.
    compose: how a drawing becomes the box's pixels (:mod:`glyphfuse.editing.compose`): ``layers``
    (default: the drawing blended in seamlessly; a painter's letters taken out of it and laid on
    again sharp, from the grey SR model or typeset at twice the size) or ``canvas`` (the drawing
    as it is, feathered in). panel (layers, 0..1): how much of the painter's own backing shows (0,
    the default: none, the text goes onto the picture; 1: the panel or board it paints).
    ink_sr_model, ink_sr_config: the grey SR model of the sharp ink (default: the packaged one,
    when it fits the grey model).
    """
    started = time.perf_counter()
    settings = resolve_settings(settings, **overrides)
    check_edit_model(config)
    method = resolve_method(method, config)
    if compose not in COMPOSITIONS:
        raise GlyphfuseError(f"unknown composition {compose!r}; choose one of: {', '.join(COMPOSITIONS)}")
    if not 0.0 <= panel <= 1.0:
        raise GlyphfuseError(f"--panel {panel} is not between 0 (no backing: the text goes onto the picture) and 1 (the painter's backing)")
    if not text.strip():
        raise GlyphfuseError("the text to write is empty")
    check_prompt_lengths([text], config)
    pixel_box = check_box(box, picture.size, text)
    plan = plan_edit(pixel_box, recipe_text_frame(FRAME_RECIPE, config.image_size)(text), config.image_size)

    count = settings.candidates
    device = next(model.parameters()).device
    known = pil_to_tensor(canvas_of(picture, plan), channels=3)[None].expand(count, -1, -1, -1)  # (N, 3, S, S)
    mask = torch.zeros(count, 1, config.image_size, config.image_size)
    mask[:, :, plan.mask[1] : plan.mask[3], plan.mask[0] : plan.mask[2]] = 1.0
    glyphs = ink = None
    if config.glyphs:  # the canvas's text frame is where the grey model and the typesetter write
        sharp = ink_sharpener(glyph_source, glyph_config, ink_sr_model, ink_sr_config, device) if compose == "layers" else {}
        # candidate i gets its own ink: the grey model's sample with seed + i (the box's OCR picks among them)
        one_each = dataclasses.replace(settings, candidates=1)
        ink, _ = glyphs_for_prompts([text] * count, one_each, config, glyph_source, glyph_model, glyph_config, device=device,
                                        show_progress=show_progress, ocr=False, **sharp)  # (N, 1, kS, kS), k = 1 or 2
        factor = ink.shape[-1] // config.image_size
        glyphs = coverage_to_glyphs(F.avg_pool2d(glyphs_to_coverage(ink), factor)) if factor > 1 else ink
    drawings = generate(model, config, [text] * count, settings, known=known, mask=mask, resample=resample, draw_kind=False,
                        glyphs=glyphs, show_progress=show_progress)  # prompt i: seed + i

    weight = box_weights(plan)
    candidates = [EditCandidate(settings.seed + i, picture.with_region(region, weight, pixel_box))
                  for i, region in enumerate(box_regions(picture, plan, drawings, ink, glyphs, compose, panel))]
    if read if read is not None else count > 1:
        texts = reader.read_images([read_box(candidate.image, pixel_box) for candidate in candidates])
        for candidate, ocr, score in zip(candidates, texts, score_candidates(texts, text)):
            candidate.ocr, candidate.similarity = ocr, score
    best = select_best([candidate.similarity for candidate in candidates])
    return EditResult(candidates[best].image, best, candidates, plan, method, time.perf_counter() - started, coverage_note(plan), drawings)


def box_regions(picture: Picture, plan: EditPlan, drawings: torch.Tensor, ink: torch.Tensor | None, glyphs: torch.Tensor | None,
                compose: str, panel: float) -> list[np.ndarray]:
    """Each candidate's box pixels (h, w, 3) uint8 (:mod:`glyphfuse.editing.compose`): from its
    drawing (N, 3, S, S), its ink (N, 1, kS, kS) and glyphs (N, 1, S, S) when the model has them."""
    pixel_box = plan.box
    size = compose_size(pixel_box)  # (width, height): the box's own, or less for a huge box
    box_size = (pixel_box[2] - pixel_box[0], pixel_box[3] - pixel_box[1])
    rgb = np.asarray(picture.rgb)
    surroundings, work_box = (rgb, pixel_box) if size == box_size else ring_picture(rgb, pixel_box, size)
    ring_px = round(HALO_PX / plan.scale * size[0] / box_size[0])  # the legibility ring, in composed px
    regions = []
    for i, drawing in enumerate(drawings):
        if compose == "canvas":
            region = scale_to_box(to_pixels(drawing), plan, size)
        elif ink is None:  # no ink layer: the drawing, moved seamlessly onto the picture
            region = compose_layers(scale_to_box(to_pixels(drawing), plan, size), None, None, surroundings, work_box, 0, panel=1.0)
        else:
            coverage = glyphs_to_coverage(glyphs[i])[0]  # (S, S) at the painter's size
            background = scale_to_box(to_pixels(background_layer(drawing, coverage)), plan, size) if panel > 0 else None
            alpha = scale_to_box(glyphs_to_coverage(ink[i])[0].numpy(), plan, size)  # (h, w) 0..1
            region = compose_layers(background, alpha, painted_ink(drawing, coverage), surroundings, work_box, ring_px, panel)
        pixels = np.empty((box_size[1], box_size[0], 3), dtype=np.uint8)
        for c in range(3):  # scaled up to the box channel by channel (a huge box: 3 x 4 bytes a pixel at most)
            plane = region[..., c] if size == box_size else np.asarray(
                Image.fromarray(region[..., c].astype(np.float32), "F").resize(box_size, Image.Resampling.BICUBIC))
            pixels[..., c] = np.clip(np.rint(plane), 0, 255)
        regions.append(pixels)
    return regions


def coverage_note(plan: EditPlan) -> str | None:
    """A line for the user when the canvas does not cover the whole box (None when it does)."""
    if plan.covered >= 0.98:
        return None
    reach_w = int((plan.mask[2] - plan.mask[0]) / plan.scale)
    reach_h = int((plan.mask[3] - plan.mask[1]) / plan.scale)
    return (f"the box is much larger than this text needs: only a {reach_w}x{reach_h} px part of it was redrawn and the rest keeps "
            f"the picture; a box about that size (or more text) fills it")

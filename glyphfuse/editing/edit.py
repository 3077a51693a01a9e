"""``glyphfuse edit``: write a text into a box of the user's own picture.

    from glyphfuse.editing import edit_picture, open_picture, load_edit_model
    model, config = load_edit_model("exports/inpaint128")
    result = edit_picture(open_picture("photo.jpg"), "OPEN\\n24 h", (40, 60, 300, 120), model=model, config=config, candidates=4)
    result.image.save("out.png")           # the photo, changed only inside the box
    result.candidates[result.best].ocr     # what OCR read in the box

One edit (see :mod:`glyphfuse.editing.geometry` for the mapping):

1. the box is checked against the picture and the text, and mapped onto the model's canvas so that
   the text's frame sits in the middle of the box;
2. the square of the picture the canvas shows is cut out and scaled to the model's size (edge
   pixels repeated where it reaches past the picture);
3. the model draws inside the box's place and keeps the rest: an inpainting model sees the masked
   square and the mask; a plain colour base model runs training-free (RePaint: its known pixels
   are pasted back, noised, after every step) (``method``); a painter (glyph-guided inpainting
   model) also sees the text's glyphs in the frame, written by the grey model or typeset;
4. each candidate's drawing is scaled back into the box and blended in, feathered inside the box,
   in the picture's own mode: every pixel outside the box is the input's;
5. with several candidates, OCR reads each box and the closest to the text wins.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from glyphfuse.core.checkpoint import load_checkpoint
from glyphfuse.core.config import ModelConfig
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.images import pil_to_tensor, tensor_to_pil
from glyphfuse.data.synth import FRAME_RECIPE, recipe_text_frame
from glyphfuse.editing.geometry import Box, EditPlan, check_box, feather_weights, plan_edit
from glyphfuse.editing.pictures import Picture
from glyphfuse.ocr import reader
from glyphfuse.ocr.ranking import score_candidates
from glyphfuse.sampling.generation import generate
from glyphfuse.sampling.inputs import check_prompt_lengths
from glyphfuse.sampling.pipeline import glyphs_for_prompts, select_best
from glyphfuse.sampling.settings import SamplingSettings, resolve_settings

METHODS = ("auto", "model", "repaint")  # auto: the model's own inpainting if it has it, else repaint
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


def drawn_region(canvas: Image.Image, plan: EditPlan) -> tuple[np.ndarray, np.ndarray]:
    """(the canvas drawing scaled back onto the box: (h, w, 3) uint8, the blend weights (h, w)):
    feathered inside the part of the box that the canvas mask covers, 0 elsewhere."""
    left, top, right, bottom = plan.box
    crop_left, crop_top, _ = plan.crop
    scale = plan.scale
    source = ((left - crop_left) * scale, (top - crop_top) * scale, (right - crop_left) * scale, (bottom - crop_top) * scale)
    # a box reaching past the canvas: pad it with its edge (those pixels get weight 0 below)
    pad = int(np.ceil(max(0.0, -source[0], -source[1], source[2] - plan.size, source[3] - plan.size)))
    if pad:
        canvas = Image.fromarray(np.pad(np.asarray(canvas), ((pad, pad), (pad, pad), (0, 0)), mode="edge"), canvas.mode)
        source = tuple(value + pad for value in source)
    region = np.asarray(canvas.resize((right - left, bottom - top), Image.Resampling.BICUBIC, box=source))
    # the box pixels whose centres the mask covers (a box wider than the canvas keeps its ends)
    mask_left, mask_top, mask_right, mask_bottom = plan.mask
    xs = (np.arange(left, right) + 0.5 - crop_left) * scale
    ys = (np.arange(top, bottom) + 0.5 - crop_top) * scale
    cols = np.flatnonzero((xs >= mask_left) & (xs < mask_right))
    rows = np.flatnonzero((ys >= mask_top) & (ys < mask_bottom))
    weight = np.zeros((bottom - top, right - left), dtype=np.float32)
    if len(cols) and len(rows):
        weight[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = feather_weights(len(cols), len(rows))
    return region, weight


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
    show_progress: bool = False,
    **overrides,
) -> EditResult:
    """Write ``text`` (newline = line break) into ``box`` (x, y, w, h in picture px) of ``picture``.

    settings / overrides: the sampling settings, as for ``generate`` (steps, guidance, seed,
    candidates, style, text_color, background_color ...). Candidate i uses seed + i.
    method: "model" (an inpainting model), "repaint" (training-free, any colour base model; ``resample``
    rounds a step) or "auto". read: OCR the box of every candidate (default: when there are several).
    glyph_source, glyph_model, glyph_config: a painter's glyphs (glyphfuse.sampling.pipeline): ``model``
    (default: the packaged grey model writes the text, best of the candidates by OCR, and every
    candidate paints around that ink) or ``typeset``.
    """
    started = time.perf_counter()
    settings = resolve_settings(settings, **overrides)
    check_edit_model(config)
    method = resolve_method(method, config)
    if not text.strip():
        raise GlyphfuseError("the text to write is empty")
    check_prompt_lengths([text], config)
    pixel_box = check_box(box, picture.size, text)
    plan = plan_edit(pixel_box, recipe_text_frame(FRAME_RECIPE, config.image_size)(text), config.image_size)

    count = settings.candidates
    known = pil_to_tensor(canvas_of(picture, plan), channels=3)[None].expand(count, -1, -1, -1)  # (N, 3, S, S)
    mask = torch.zeros(count, 1, config.image_size, config.image_size)
    mask[:, :, plan.mask[1] : plan.mask[3], plan.mask[0] : plan.mask[2]] = 1.0
    glyphs = None
    if config.glyphs:  # the canvas's text frame is where the grey model and the typesetter write
        job_glyphs, _grey = glyphs_for_prompts([text], settings, config, glyph_source, glyph_model, glyph_config,
                                               device=next(model.parameters()).device, show_progress=show_progress)
        glyphs = job_glyphs.expand(count, -1, -1, -1)
    drawings = generate(model, config, [text] * count, settings, known=known, mask=mask, resample=resample, draw_kind=False,
                        glyphs=glyphs, show_progress=show_progress)  # prompt i: seed + i

    candidates = []
    for i, drawing in enumerate(drawings):
        region, weight = drawn_region(tensor_to_pil(drawing), plan)
        candidates.append(EditCandidate(settings.seed + i, picture.with_region(region, weight, pixel_box)))
    if read if read is not None else count > 1:
        texts = reader.read_images([read_box(candidate.image, pixel_box) for candidate in candidates])
        for candidate, ocr, score in zip(candidates, texts, score_candidates(texts, text)):
            candidate.ocr, candidate.similarity = ocr, score
    best = select_best([candidate.similarity for candidate in candidates])
    return EditResult(candidates[best].image, best, candidates, plan, method, time.perf_counter() - started, coverage_note(plan), drawings)


def coverage_note(plan: EditPlan) -> str | None:
    """A line for the user when the canvas does not cover the whole box (None when it does)."""
    if plan.covered >= 0.98:
        return None
    reach_w = int((plan.mask[2] - plan.mask[0]) / plan.scale)
    reach_h = int((plan.mask[3] - plan.mask[1]) / plan.scale)
    return (f"the box is much larger than this text needs: only a {reach_w}x{reach_h} px part of it was redrawn and the rest keeps "
            f"the picture; a box about that size (or more text) fills it")

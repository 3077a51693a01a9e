"""Where an edit happens: the user's box, mapped onto the model's own text frame and back.

The models write a text at a fixed place of their square canvas (the data recipe's text frame,
:func:`glyphfuse.data.render.fixed_text_frame`: left-aligned lines from the left margin, line k at a
fixed height). An edit therefore works in the model's frame, not the picture's:

1. the frame of the new text, grown by :data:`FRAME_PAD` model px, is what must fit in the box;
2. the scale ``s`` (model px per picture px) is the smallest at which it fits in both directions;
3. the box, scaled by ``s``, is placed on the canvas with its left edge just left of the frame
   (the models write left-aligned lines) and the text centred vertically;
4. the model's canvas, mapped back, is a square ``crop`` of the picture around the box (it may
   reach past the picture's edges; :mod:`glyphfuse.editing.edit` fills that by replicating the edge);
5. the model draws inside the box's mapped rectangle (the mask) and keeps the rest of the crop;
6. the drawing is scaled back to picture px and blended into the box, feathered *inside* it, so
   every pixel outside the box is the input's own.

A box much wider than its text needs (more than the canvas holds at that scale) keeps the input's
pixels where it reaches past the canvas (:attr:`EditPlan.covered`, the edit's ``note`` says so). A box in which a line of text would be under :data:`MIN_LINE_PX` picture px
high, or a character under :data:`MIN_CHAR_PX` wide, is refused: no one could read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from glyphfuse.core.errors import GlyphfuseError

FRAME_PAD = 4  # model px of room around the text frame inside the box
MIN_LINE_PX = 8  # a line of text needs at least this many picture px of box height
MIN_CHAR_PX = 4  # and each character this many picture px of box width
FEATHER_SHARE = 0.06  # the blend ramps up over this share of the box's shorter side (at least 1 px)

Box = tuple[int, int, int, int]  # (left, top, right, bottom), right and bottom exclusive


def parse_box(text: str, name: str = "--box") -> tuple[int, int, int, int]:
    """'X,Y,W,H' (whole numbers of picture px, W and H >= 1) -> (x, y, w, h); a one-line
    GlyphfuseError naming ``name`` (the option or field) for anything else."""
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) != 4 or not all(part.isascii() and part.isdigit() and len(part) <= 9 for part in parts):
        shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
        raise GlyphfuseError(f"{name} {shown} is not X,Y,W,H: give four whole numbers of pixels, e.g. {name} 40,60,300,80")
    x, y, w, h = (int(part) for part in parts)
    if w < 1 or h < 1:
        raise GlyphfuseError(f"{name} {x},{y},{w},{h}: its width and height must be at least 1 px")
    return x, y, w, h


def check_box(box: tuple[int, int, int, int], picture_size: tuple[int, int], text: str) -> Box:
    """The (x, y, w, h) box as (left, top, right, bottom), or a one-line GlyphfuseError when it is
    not inside the picture or is too small to hold ``text``."""
    x, y, w, h = box
    width, height = picture_size
    if x + w > width or y + h > height:
        raise GlyphfuseError(f"box {x},{y},{w},{h} reaches outside the {width}x{height} picture (it ends at {x + w},{y + h})")
    lines = text.split("\n")
    longest = max(len(line) for line in lines)
    if h < MIN_LINE_PX * len(lines) or w < MIN_CHAR_PX * longest:
        raise GlyphfuseError(
            f"box {x},{y},{w},{h} is too small for {len(lines)} line(s) of up to {longest} characters: it needs at least "
            f"{MIN_CHAR_PX * longest}x{MIN_LINE_PX * len(lines)} px ({MIN_CHAR_PX} px a character, {MIN_LINE_PX} px a line)"
        )
    return x, y, x + w, y + h


@dataclass(frozen=True)
class EditPlan:
    """How one box maps onto the model's canvas (``size`` px square)."""

    box: Box  # in picture px
    crop: tuple[float, float, float]  # (left, top, side) of the picture square the canvas shows
    mask: Box  # the box on the canvas (model px), clipped to it
    size: int

    @property
    def scale(self) -> float:
        """Model px per picture px."""
        return self.size / self.crop[2]

    @property
    def covered(self) -> float:
        """The share of the box's area that the canvas covers (1.0: all of it)."""
        box_w, box_h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        mask_w, mask_h = self.mask[2] - self.mask[0], self.mask[3] - self.mask[1]
        return min(1.0, (mask_w * mask_h) / (box_w * box_h * self.scale**2))


def plan_edit(box: Box, frame: Box, size: int) -> EditPlan:
    """The plan for drawing a text whose frame on the model canvas is ``frame`` into ``box``: the
    smallest scale at which the padded frame fits the box; the box's left edge FRAME_PAD model px
    left of the frame (the models write left-aligned lines), the text centred vertically."""
    left, top, right, bottom = box
    box_w, box_h = right - left, bottom - top
    frame_w, frame_h = frame[2] - frame[0] + 2 * FRAME_PAD, frame[3] - frame[1] + 2 * FRAME_PAD
    scale = max(frame_w / box_w, frame_h / box_h)  # model px per picture px: the padded frame fits the box
    mapped_left = max(0.0, frame[0] - FRAME_PAD)  # the box on the canvas
    mapped_top = (frame[1] + frame[3]) / 2 - box_h * scale / 2
    mapped_top = min(max(mapped_top, 0.0), max(0.0, size - box_h * scale))  # inside the canvas where it fits
    crop = (left - mapped_left / scale, top - mapped_top / scale, size / scale)
    mask = (max(0, math.floor(mapped_left)), max(0, math.floor(mapped_top)),
            min(size, math.ceil(mapped_left + box_w * scale)), min(size, math.ceil(mapped_top + box_h * scale)))
    return EditPlan(box, crop, mask, size)


def feather_weights(width: int, height: int, feather: float | None = None) -> np.ndarray:
    """(height, width) blend weights in [0, 1]: 1 in the middle of the box, ramping to 0 at its
    border over ``feather`` px (default FEATHER_SHARE of the shorter side), the border pixels
    themselves included in the ramp."""
    feather = max(1.0, FEATHER_SHARE * min(width, height)) if feather is None else feather
    xs = np.minimum(np.arange(width) + 1, width - np.arange(width)).astype(np.float32)  # 1 at the border columns
    ys = np.minimum(np.arange(height) + 1, height - np.arange(height)).astype(np.float32)
    distance = np.minimum(xs[None, :], ys[:, None])
    return np.clip(distance / (feather + 1.0), 0.0, 1.0)

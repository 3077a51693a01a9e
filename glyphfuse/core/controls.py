"""Scene controls: what kind of picture to draw and in which colours, beside the text.

A colour model (``ModelConfig.scene_kinds`` not empty) is conditioned on three optional controls,
each learned as an embedding added to the timestep embedding (glyphfuse.core.model):

* ``kind``: one of :data:`SCENE_KINDS` (a plain colour, a gradient, a sign panel on a photo, a
  caption over a photo, text on paper or fabric, a screen panel);
* ``text_color``: the colour of the text's ink, RGB 0..255;
* ``background_color``: the colour right behind the text (the panel, the paper, the flat colour).

Any of them may be missing (``None``): training drops each at random, so the model learns to
choose it itself, and classifier-free guidance drops all of them with the text. Synthetic data
records them in its ``metadata.jsonl`` rows (``kind``, ``text_color``, ``background_color`` as
``#rrggbb``); the sampler takes them from ``--style``/``--text-color``/``--background-color``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from glyphfuse.core.config import SCENE_KINDS  # noqa: F401 (re-exported: the controls' home)
from glyphfuse.core.errors import GlyphfuseError

if TYPE_CHECKING:
    import torch

# torch is imported inside the tensor functions only: the sampling settings (and with them every
# command's --help) read the controls, and must not pay torch's start-up.

RGB = tuple[int, int, int]

# Colour names a user may type (CSS names of the common colours); anything else is #RRGGBB.
NAMED_COLORS: dict[str, RGB] = {
    "black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128), "grey": (128, 128, 128),
    "silver": (192, 192, 192), "red": (220, 20, 20), "darkred": (139, 0, 0), "maroon": (128, 0, 0),
    "orange": (255, 140, 0), "gold": (255, 215, 0), "yellow": (255, 235, 0), "lime": (50, 205, 50),
    "green": (0, 128, 0), "darkgreen": (0, 90, 0), "olive": (128, 128, 0), "teal": (0, 128, 128),
    "cyan": (0, 200, 220), "skyblue": (135, 206, 235), "blue": (30, 60, 220), "navy": (0, 0, 128),
    "purple": (128, 0, 128), "violet": (180, 90, 220), "magenta": (220, 0, 180), "pink": (255, 160, 190),
    "brown": (120, 70, 30), "beige": (240, 230, 200), "cream": (255, 250, 220),
}
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


def parse_color(value: str, what: str = "colour") -> RGB:
    """A colour name (:data:`NAMED_COLORS`) or ``#RRGGBB`` as (r, g, b) 0..255; a one-line
    GlyphfuseError naming ``what`` otherwise."""
    text = value.strip().lower()
    if text in NAMED_COLORS:
        return NAMED_COLORS[text]
    match = _HEX.fullmatch(text)
    if match is None:
        raise GlyphfuseError(f"{what} {value!r} is neither #RRGGBB nor a colour name ({', '.join(sorted(NAMED_COLORS))})")
    digits = match.group(1)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def color_hex(color: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in color))


def check_kind(kind: str) -> str:
    if kind not in SCENE_KINDS:
        raise GlyphfuseError(f"unknown style {kind!r}; choose one of: {', '.join(SCENE_KINDS)}")
    return kind


@dataclass(frozen=True)
class SceneControls:
    """The controls of one image; ``None`` = not given (the model chooses)."""

    kind: str | None = None
    text_color: RGB | None = None
    background_color: RGB | None = None

    def to_row(self) -> dict[str, str]:
        """The metadata.jsonl fields of the controls that are set."""
        row = {}
        if self.kind is not None:
            row["kind"] = self.kind
        if self.text_color is not None:
            row["text_color"] = color_hex(self.text_color)
        if self.background_color is not None:
            row["background_color"] = color_hex(self.background_color)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any], where: str) -> "SceneControls | None":
        """The controls of a metadata row (None when it has none); GlyphfuseError for a bad value."""
        if not any(key in row for key in ("kind", "text_color", "background_color")):
            return None
        kind = row.get("kind")
        if kind is not None and (not isinstance(kind, str) or kind not in SCENE_KINDS):
            raise GlyphfuseError(f"{where}: unknown kind {kind!r}")
        colors = []
        for key in ("text_color", "background_color"):
            value = row.get(key)
            if value is not None and not isinstance(value, str):
                raise GlyphfuseError(f"{where}: {key} must be a string like #rrggbb")
            colors.append(None if value is None else parse_color(value, f"{where}: {key}"))
        return cls(kind, colors[0], colors[1])

    @classmethod
    def from_options(cls, style: str | None = None, text_color: str | None = None, background_color: str | None = None) -> "SceneControls":
        """From the command line's ``--style``, ``--text-color``, ``--background-color``."""
        return cls(
            None if style is None else check_kind(style),
            None if text_color is None else parse_color(text_color, "--text-color"),
            None if background_color is None else parse_color(background_color, "--background-color"),
        )

    @property
    def empty(self) -> bool:
        return self.kind is None and self.text_color is None and self.background_color is None


NO_CONTROLS = SceneControls()


@dataclass
class ControlBatch:
    """The controls of a batch as tensors.

    kind_ids: (B,) long, 0 = no kind, k + 1 = ``kinds[k]``
    colors:   (B, 6) float, text RGB then background RGB in [-1, 1] (0 where not given)
    given:    (B, 2) float, 1 where the text / background colour is given
    """

    kind_ids: torch.Tensor
    colors: torch.Tensor
    given: torch.Tensor

    @classmethod
    def build(cls, controls: Sequence[SceneControls | None], kinds: Sequence[str]) -> "ControlBatch":
        import torch

        kind_ids, colors, given = [], [], []
        for item in controls:
            item = item or NO_CONTROLS
            kind_ids.append(0 if item.kind is None or item.kind not in kinds else kinds.index(item.kind) + 1)
            row, flags = [], []
            for color in (item.text_color, item.background_color):
                row.extend([c / 127.5 - 1.0 for c in color] if color is not None else [0.0, 0.0, 0.0])
                flags.append(0.0 if color is None else 1.0)
            colors.append(row)
            given.append(flags)
        return cls(torch.tensor(kind_ids, dtype=torch.long), torch.tensor(colors).reshape(-1, 6), torch.tensor(given).reshape(-1, 2))

    def __len__(self) -> int:
        return self.kind_ids.shape[0]

    def to(self, device: torch.device | str) -> "ControlBatch":
        return ControlBatch(self.kind_ids.to(device), self.colors.to(device), self.given.to(device))

    @staticmethod
    def cat(batches: Sequence["ControlBatch"]) -> "ControlBatch":
        import torch

        return ControlBatch(*(torch.cat([getattr(b, name) for b in batches]) for name in ("kind_ids", "colors", "given")))


def training_controls(controls: Sequence[SceneControls | None], drop_all: Sequence[bool], generator: torch.Generator, each: float,
                      kinds: Sequence[str]) -> ControlBatch:
    """The ControlBatch a training step feeds the model: :func:`drop_controls`, then built."""
    return ControlBatch.build(drop_controls(controls, drop_all, generator, each), kinds)


def drop_controls(controls: Sequence[SceneControls | None], drop_all: Sequence[bool], generator: torch.Generator,
                  each: float) -> list[SceneControls | None]:
    """Training's control dropout: a row whose text is dropped loses all controls (the guidance
    null input); every other row loses each control with probability ``each`` (so the model
    learns to choose a control that is not given). Draws 3 numbers a row from ``generator``."""
    import torch

    draws = torch.rand(len(controls), 3, generator=generator).tolist()
    kept = []
    for item, dropped, (u_kind, u_text, u_back) in zip(controls, drop_all, draws):
        if item is None or dropped:
            kept.append(None)
            continue
        kept.append(SceneControls(
            None if u_kind < each else item.kind,
            None if u_text < each else item.text_color,
            None if u_back < each else item.background_color,
        ))
    return kept

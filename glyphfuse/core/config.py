"""Model configuration: dataclasses that round-trip through JSON, and presets by name.

A :class:`ModelConfig` holds everything needed to rebuild a model and its diffusion process;
it is what a checkpoint's ``config.json`` contains. Presets:

* ``tiny``    – a few hundred thousand parameters at 32 px, for tests and CPU smoke runs
* ``words32`` – 1.5M parameters at 32 px: short words, trainable on a 2-core CPU in an hour
* ``lines64`` – 2M parameters at 64 px: one or two short lines of lowercase letters
* ``lines128`` – lines64's U-Net on 4x4 patches at 128 px: up to 5 lines of 16 printable characters
* ``lines256`` – the 128 -> 256 px super-resolution model of ``lines128`` (one outer level)
* ``scenes128`` – ``lines128`` in RGB with scene controls (kind, text and background colour)
* ``scenes256`` – the 128 -> 256 px super-resolution model of ``scenes128``
* ``inpaint128`` – ``scenes128`` that also sees a masked image and its mask: ``glyphfuse edit``
* ``paint128`` – ``inpaint128`` that also sees the text's glyphs: it paints a colour scene around the
  ink that a grey model wrote (or the font renderer typeset), whole or into a box of a picture
* ``base64``  – the 64 px base model
* ``base128`` – the 128 px base model
* ``sr256``   – the 128 -> 256 px super-resolution model (``base128`` plus one outer level)
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.json_config import JsonConfig, check_type

SCHEDULES = ("linear", "cosine")  # noise schedules (glyphfuse.core.diffusion.make_betas)
PREDICTIONS = ("eps", "v")  # what the network predicts (glyphfuse.core.diffusion)
SAMPLERS = ("ddim", "ddpm", "dpmpp-2m")  # GaussianDiffusion.sample's samplers
# the kinds of picture a colour scene model draws (glyphfuse.core.controls, glyphfuse.data.scenes)
SCENE_KINDS = ("plain", "gradient", "sign", "caption", "paper", "screen")


def check_sampler(name: str) -> None:
    """GlyphfuseError naming the choices unless ``name`` is a known sampler."""
    if name not in SAMPLERS:
        raise GlyphfuseError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")


@dataclass
class TextEncoderConfig:
    width: int = 256
    depth: int = 4
    head_dim: int = 64
    ff_mult: int = 2  # hidden width of the GLU feed-forward = ff_mult * width
    max_length: int = 128  # tokens, counting the begin-of-text token
    num_buckets: int = 32  # T5 relative position buckets (both directions together)
    max_distance: int = 128  # beyond this distance all offsets share the last bucket
    max_lines: int = 32  # line embedding table size; line_ids are clamped to max_lines - 1
    # add a learned embedding of each token's column within its line (0 = the BOS or newline
    # token that starts it), so that a character's place in a left-aligned line is one lookup
    column_embedding: bool = False


@dataclass
class UNetConfig:
    in_channels: int = 1  # channels the network sees (SR: image + upsampled low-res = 2x)
    out_channels: int = 1
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 3, 4)  # one entry per resolution level
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16, 8)  # feature-map sizes with self-attention
    weave_resolutions: tuple[int, ...] = (32, 16, 8)  # up-path sizes with weave attention
    head_channels: int = 32  # channels per attention head in the U-Net
    dropout: float = 0.0
    # > 1: the U-Net works on patch_size x patch_size pixel patches (pixel-unshuffle in, pixel-
    # shuffle out), so its outermost level runs at image_size / patch_size; feature-map sizes
    # (attention_resolutions, weave_resolutions) count in patches. 2 halves a 64 px model's cost.
    patch_size: int = 1


@dataclass
class DiffusionConfig:
    num_timesteps: int = 1000
    schedule: str = "cosine"  # "linear" | "cosine"
    prediction: str = "v"  # "eps" | "v"


@dataclass
class ModelConfig(JsonConfig):
    name: str = "base64"
    image_size: int = 64
    channels: int = 1  # 1 = grayscale, 3 = RGB
    # colour scene models: the scene kinds the model is conditioned on, with the text and background
    # colours (glyphfuse.core.controls); () = no scene controls
    scene_kinds: tuple[str, ...] = ()
    low_res_size: int | None = None  # set for super-resolution models: the conditioning size
    low_res_noise_max: float = 0.0  # SR only: max noise-augmentation level of the low-res input
    # inpainting models: the U-Net also sees the masked image and the mask (1 = draw here), so it
    # redraws only the masked part of a picture (glyphfuse.training.inpaint, glyphfuse edit)
    inpaint: bool = False
    # glyph-guided models: the U-Net also sees the glyph image, the text's ink where the data recipe
    # writes it (1 channel, -1 = no ink .. 1 = full ink): from the font renderer (typeset) or from a
    # grey model's sample (glyphfuse.sampling.glyphs). The model paints the scene around that ink.
    glyphs: bool = False
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    @property
    def is_super_resolution(self) -> bool:
        return self.low_res_size is not None

    @property
    def input_channels(self) -> int:
        """Channels the U-Net sees: the noisy image, plus the upsampled low-res image (SR) or the
        masked image and the mask (inpainting), plus the glyph image (glyph-guided)."""
        if self.is_super_resolution:
            return 2 * self.channels
        return self.channels + (self.channels + 1 if self.inpaint else 0) + (1 if self.glyphs else 0)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> "ModelConfig":
        """Build and validate a config from its JSON dict; a wrong type or an insane value is a
        one-line GlyphfuseError naming the field (``where`` prefixes it, e.g. the file)."""
        config = _from_dict(cls, data, where=where)
        validate_model_config(config, where)
        return config



def _from_dict(cls, data: dict[str, Any], where: str):
    """Build dataclass ``cls`` from a JSON dict, converting lists back to tuples and nested dicts
    back to dataclasses; every value must have its field's type. Unknown keys are an error (they
    usually mean a typo or a newer file)."""
    if not isinstance(data, dict):
        raise GlyphfuseError(f"{where}: expected a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise GlyphfuseError(f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        expected = hints[name]
        if dataclasses.is_dataclass(expected):
            value = _from_dict(expected, value, where=f"{where}.{name}")
        else:
            value = check_type(value, expected, f"{where}.{name}")
        kwargs[name] = value
    return cls(**kwargs)


MAX_SEED = 2**63 - 1  # seeds are 0 .. MAX_SEED (torch generators take 64-bit seeds; image i adds i)

# Sane ranges (inclusive) of the numeric fields. They keep a mistyped or hostile config.json from
# asking for absurd amounts of memory (every preset lies well inside them); a model that is still
# too large to build is refused by the trainer from its parameter count.
LIMITS: dict[str, tuple[float, float]] = {
    "image_size": (1, 2048),
    "low_res_size": (1, 2048),
    "low_res_noise_max": (0.0, 1.0),
    "text.width": (1, 4096),
    "text.depth": (0, 64),
    "text.head_dim": (1, 4096),
    "text.ff_mult": (1, 16),
    "text.max_length": (2, 4096),
    "text.num_buckets": (1, 1024),
    "text.max_distance": (1, 4096),
    "text.max_lines": (1, 1024),
    "unet.in_channels": (1, 8),
    "unet.out_channels": (1, 3),
    "unet.base_channels": (1, 1024),
    "unet.channel_mult": (1, 16),
    "unet.num_res_blocks": (1, 16),
    "unet.attention_resolutions": (1, 2048),
    "unet.weave_resolutions": (1, 2048),
    "unet.head_channels": (1, 4096),
    "unet.dropout": (0.0, 0.99),
    "unet.patch_size": (1, 64),
    "diffusion.num_timesteps": (1, 100_000),
}
MAX_LEVELS = 8  # entries of unet.channel_mult
MAX_LEVEL_CHANNELS = 4096  # unet.base_channels * any channel_mult entry


def validate_model_config(config: "ModelConfig", where: str = "config") -> None:
    """GlyphfuseError naming the first field whose value is outside :data:`LIMITS` or inconsistent
    (channels, low-res size, level count and width)."""
    for key, (low, high) in LIMITS.items():
        owner = config
        for part in key.split(".")[:-1]:
            owner = getattr(owner, part)
        value = getattr(owner, key.split(".")[-1])
        for item in value if isinstance(value, tuple) else (value,):
            if item is not None and not low <= item <= high:
                raise GlyphfuseError(f"{where}.{key}: {item} is outside the sane range {low}..{high}")
    if config.channels not in (1, 3):
        raise GlyphfuseError(f"{where}.channels: must be 1 (grayscale) or 3 (RGB), got {config.channels}")
    unknown_kinds = sorted(set(config.scene_kinds) - set(SCENE_KINDS))
    if unknown_kinds:
        raise GlyphfuseError(f"{where}.scene_kinds: unknown kind(s) {', '.join(unknown_kinds)}; known: {', '.join(SCENE_KINDS)}")
    mults = config.unet.channel_mult
    if not 1 <= len(mults) <= MAX_LEVELS:
        raise GlyphfuseError(f"{where}.unet.channel_mult: needs 1 to {MAX_LEVELS} levels, got {len(mults)}")
    if config.unet.base_channels * max(mults) > MAX_LEVEL_CHANNELS:
        raise GlyphfuseError(
            f"{where}.unet: base_channels {config.unet.base_channels} x channel_mult {max(mults)} is more than {MAX_LEVEL_CHANNELS} channels"
        )
    if config.low_res_size is not None and config.low_res_size >= config.image_size:
        raise GlyphfuseError(f"{where}.low_res_size: {config.low_res_size} must be smaller than image_size {config.image_size}")
    if config.inpaint and config.is_super_resolution:
        raise GlyphfuseError(f"{where}.inpaint: a super-resolution model cannot also be an inpainting model")
    if config.glyphs and config.is_super_resolution:
        raise GlyphfuseError(f"{where}.glyphs: a super-resolution model cannot also be glyph-guided")
    if config.unet.patch_size > config.image_size:
        raise GlyphfuseError(f"{where}.unet.patch_size: {config.unet.patch_size} is larger than image_size {config.image_size}")

    for key, value, known in (("schedule", config.diffusion.schedule, SCHEDULES), ("prediction", config.diffusion.prediction, PREDICTIONS)):
        if value not in known:
            raise GlyphfuseError(f"{where}.diffusion.{key}: unknown value {value!r}; choose one of: {', '.join(known)}")


def _tiny() -> ModelConfig:
    return ModelConfig(
        name="tiny",
        image_size=32,
        channels=1,
        text=TextEncoderConfig(width=32, depth=1, head_dim=16, max_length=48, max_distance=32),
        unet=UNetConfig(
            base_channels=16,
            channel_mult=(1, 2, 2),
            num_res_blocks=1,
            attention_resolutions=(8,),
            weave_resolutions=(16, 8),
            head_channels=16,
        ),
    )


def _words32() -> ModelConfig:
    # about 1.5M parameters: U-Net 24-48-72 channels at 32/16/8 px, text encoder 2 layers x 64
    return ModelConfig(
        name="words32",
        image_size=32,
        channels=1,
        text=TextEncoderConfig(width=64, depth=2, head_dim=32, max_length=24, max_distance=16),
        unet=UNetConfig(
            base_channels=24,
            channel_mult=(1, 2, 3),
            num_res_blocks=1,
            attention_resolutions=(8,),
            weave_resolutions=(16, 8),
            head_channels=24,
        ),
    )


def _lines64() -> ModelConfig:
    # about 2.3M parameters: 2x2 pixel patches, U-Net 32-64-96 channels at 32/16/8 patches
    # (64/32/16 px), weave at 32 and 16 patches, text encoder 2 layers x 64 with column-in-line
    # positions. Trains at ~34 images/s on a 2-core CPU, 2.3x the same U-Net without patches.
    return ModelConfig(
        name="lines64",
        image_size=64,
        channels=1,
        text=TextEncoderConfig(width=64, depth=2, head_dim=32, max_length=32, max_distance=32, max_lines=4, column_embedding=True),
        unet=UNetConfig(
            base_channels=32,
            channel_mult=(1, 2, 3),
            num_res_blocks=1,
            attention_resolutions=(8,),
            weave_resolutions=(32, 16),
            head_channels=32,
            patch_size=2,
        ),
    )


def _lines128() -> ModelConfig:
    # about 2.3M parameters: lines64's U-Net on 4x4 pixel patches, so a 128 px image is again 32x32
    # patches; its text encoder with room for 5 lines of 16 characters (and 8 line embeddings).
    # The packaged cascade's base model.
    lines64 = _lines64()
    return ModelConfig(
        name="lines128",
        image_size=128,
        channels=1,
        text=dataclasses.replace(lines64.text, max_length=112, max_distance=64, max_lines=8),
        unet=dataclasses.replace(lines64.unet, patch_size=4),
    )


def _scenes128() -> ModelConfig:
    # lines128 in colour, conditioned on the scene kind and the text and background colours: RGB on
    # the same 4x4 patches, so a patch is 48 values. The first level is widened from 32 to 64
    # channels (channel_mult 2-2-3): at 32 it cannot carry a patch's 48 noise values, and the model
    # denoised at best ~60 % of the noise at small t and sampled coloured static (issue "Colour
    # scenes"). The deeper levels keep lines128's widths, so they warm-start from the grey model.
    lines128 = _lines128()
    return dataclasses.replace(lines128, name="scenes128", channels=3, scene_kinds=SCENE_KINDS,
                               unet=dataclasses.replace(lines128.unet, in_channels=3, out_channels=3, channel_mult=(2, 2, 3)))


def _base64() -> ModelConfig:
    # about 23M parameters: U-Net 64-128-128-192 channels at 64/32/16/8 px, text encoder 2.8M
    return ModelConfig(name="base64", image_size=64, unet=UNetConfig(channel_mult=(1, 2, 2, 3)))


def _base128() -> ModelConfig:
    return ModelConfig(
        name="base128",
        image_size=128,
        # base64's levels plus one outer 128 px level (about 24M parameters)
        unet=UNetConfig(channel_mult=(1, 1, 2, 2, 3)),
    )


def sr_config_for(base: ModelConfig, sr_size: int, *, name: str | None = None, low_res_noise_max: float = 0.2) -> ModelConfig:
    """The super-resolution config that upsamples ``base``'s images to ``sr_size`` px.

    The SR U-Net is the base U-Net plus ``log2(sr_size / base.image_size)`` new OUTERMOST levels
    (channel_mult prefixed by that many copies of channel_mult[0]), so every deeper level, the
    middle and the position tables line up with the base model's (see glyphfuse/training/warm_start.py).
    It sees the noisy image and the upsampled low-res image (in_channels = 2 * channels) and keeps
    the base's text encoder and diffusion settings. Feature-map sizes (attention and weave
    resolutions) are kept, so the new outer levels get neither.
    """
    if base.is_super_resolution:
        raise GlyphfuseError(f"model config {base.name!r} is already a super-resolution model; give a base model config")
    ratio = sr_size / base.image_size
    new_levels = int(round(math.log2(ratio))) if ratio > 1 else 0
    if sr_size <= base.image_size or 2**new_levels * base.image_size != sr_size:
        raise GlyphfuseError(
            f"SR size {sr_size} px does not line up with base model {base.name!r} ({base.image_size} px): "
            f"it must be the base size times a power of two (e.g. {2 * base.image_size} or {4 * base.image_size})"
        )
    mults = tuple(base.unet.channel_mult)
    return ModelConfig(
        name=name or f"{base.name}-sr{sr_size}",
        image_size=sr_size,
        channels=base.channels,
        low_res_size=base.image_size,
        low_res_noise_max=low_res_noise_max,
        text=dataclasses.replace(base.text),
        unet=dataclasses.replace(base.unet, in_channels=2 * base.channels, channel_mult=(mults[0],) * new_levels + mults),
        diffusion=dataclasses.replace(base.diffusion),
    )


def inpaint_config_for(base: ModelConfig, *, name: str | None = None, glyphs: bool = False) -> ModelConfig:
    """The inpainting config of ``base``: the same network, whose U-Net also sees the masked image
    and the mask (and, ``glyphs``, the glyph image), so that every weight of ``base`` warm-starts it
    (glyphfuse.training.inpaint.inpaint_warm_start)."""
    if base.is_super_resolution or base.inpaint or base.glyphs:
        raise GlyphfuseError(f"model config {base.name!r} is a super-resolution, inpainting or glyph-guided model; give a base model config")
    config = dataclasses.replace(base, name=name or f"{base.name}-{'paint' if glyphs else 'inpaint'}", inpaint=True, glyphs=glyphs)
    return dataclasses.replace(config, unet=dataclasses.replace(base.unet, in_channels=config.input_channels))


def _sr256() -> ModelConfig:
    return sr_config_for(_base128(), 256, name="sr256", low_res_noise_max=0.2)


def _lines256() -> ModelConfig:
    return sr_config_for(_lines128(), 256, name="lines256", low_res_noise_max=0.2)


def _scenes256() -> ModelConfig:
    return sr_config_for(_scenes128(), 256, name="scenes256", low_res_noise_max=0.2)


def _inpaint128() -> ModelConfig:
    return inpaint_config_for(_scenes128(), name="inpaint128")


def _paint128() -> ModelConfig:
    return inpaint_config_for(_scenes128(), name="paint128", glyphs=True)


PRESETS = {"tiny": _tiny, "words32": _words32, "lines64": _lines64, "lines128": _lines128, "lines256": _lines256,
           "scenes128": _scenes128, "scenes256": _scenes256, "inpaint128": _inpaint128, "paint128": _paint128,
           "base64": _base64, "base128": _base128, "sr256": _sr256}


def get_preset(name: str) -> ModelConfig:
    """A fresh copy of the named preset."""
    if name not in PRESETS:
        raise GlyphfuseError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()


def load_model_config(name_or_path: str | Path) -> ModelConfig:
    """A preset name, or the path of a JSON file holding a ModelConfig."""
    if str(name_or_path) in PRESETS:
        return get_preset(str(name_or_path))
    path = Path(name_or_path)
    if not path.is_file():
        raise GlyphfuseError(f"{path}: no such config file, and not a preset name ({', '.join(PRESETS)})")
    try:
        return ModelConfig.from_json(path.read_text(encoding="utf-8"), where=str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GlyphfuseError(f"{path}: not valid JSON ({exc})") from None

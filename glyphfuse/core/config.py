"""Model configuration: dataclasses that round-trip through JSON, and presets by name.

A :class:`ModelConfig` holds everything needed to rebuild a model and its diffusion process;
it is what a checkpoint's ``config.json`` contains. Presets:

* ``tiny``    – a few hundred thousand parameters at 32 px, for tests and CPU smoke runs
* ``words32`` – 1.5M parameters at 32 px: short words, trainable on a 2-core CPU in an hour
* ``base64``  – the 64 px base model
* ``base128`` – the 128 px base model
* ``sr256``   – the 128 -> 256 px super-resolution model (``base128`` plus one outer level)
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glyphfuse.core.errors import GlyphfuseError


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


@dataclass
class DiffusionConfig:
    num_timesteps: int = 1000
    schedule: str = "cosine"  # "linear" | "cosine"
    prediction: str = "v"  # "eps" | "v"


@dataclass
class ModelConfig:
    name: str = "base64"
    image_size: int = 64
    channels: int = 1  # 1 = grayscale, 3 = RGB
    low_res_size: int | None = None  # set for super-resolution models: the conditioning size
    low_res_noise_max: float = 0.0  # SR only: max noise-augmentation level of the low-res input
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    @property
    def is_super_resolution(self) -> bool:
        return self.low_res_size is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, data, where="config")

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))


def _from_dict(cls, data: dict[str, Any], where: str):
    """Build dataclass ``cls`` from a JSON dict, converting lists back to tuples and nested dicts
    back to dataclasses. Unknown keys are an error (they usually mean a typo or a newer file)."""
    if not isinstance(data, dict):
        raise GlyphfuseError(f"{where}: expected a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise GlyphfuseError(f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name) if _has_default(fields[name]) else None
        if dataclasses.is_dataclass(default):
            value = _from_dict(type(default), value, where=f"{where}.{name}")
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


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
    middle and the position tables line up with the base model's (see glyphfuse/warm_start.py).
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


def _sr256() -> ModelConfig:
    return sr_config_for(_base128(), 256, name="sr256", low_res_noise_max=0.2)


PRESETS = {"tiny": _tiny, "words32": _words32, "base64": _base64, "base128": _base128, "sr256": _sr256}


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
        return ModelConfig.from_json(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GlyphfuseError(f"{path}: not valid JSON ({exc})") from None

"""Warm start: initialise a super-resolution model from a trained base model.

The SR U-Net is the base U-Net plus ``k = log2(sr_size / base_size)`` new OUTERMOST levels
(:func:`glyphfuse.core.config.sr_config_for`). Everything at base resolution and below has the
same shapes in both models, only the input-path indices move::

    base                               SR (k new levels, n = num_res_blocks)
    time_embed.*                   ->  time_embed.*
    text_encoder.*                 ->  text_encoder.*
    unet.input_blocks[i].*         ->  unet.input_blocks[i + k * (n + 1)].*   (each new level adds
                                                                               n ResBlocks + 1 downsample)
    unet.middle.*                  ->  unet.middle.*
    unet.output_blocks[j].*        ->  unet.output_blocks[j].*                (deepest level first, so the
                                                                               new levels come last)
    unet.position_tables["<s>"].*  ->  unet.position_tables["<s>"].*          (keyed by feature-map size)
    unet.input_conv.*                  not copied: the SR input is noisy image + upsampled low-res
    unet.out.*                         not copied: the final layers sit after the new outer level(s)

Fresh in the SR model: the input conv, the new outer level(s), the upsampling conv that now
leads from base resolution into the new levels, the final output layers and the low-res
noise-level embedding. The last layer of that embedding is zero-initialised here, so a
warm-started model's timestep embedding (and with it the text encoder's input) starts exactly
equal to the base model's: the copied blocks then compute exactly what they computed in the
base model whenever they receive the same input (tested in tests/test_warm_start.py).

Nothing is matched by shape alone: every tensor goes through :func:`sr_name_for`, and a mapped
tensor whose shape does not match is reported as skipped, never silently dropped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from glyphfuse.core.checkpoint import check_checkpoint_output, load_checkpoint, save_checkpoint
from glyphfuse.core.config import ModelConfig, sr_config_for, validate_model_config
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.model import GlyphModel
from glyphfuse.training.run_folder import CHECKPOINTS, find_latest_checkpoint
from glyphfuse.sampling.sr import check_sr_compatible

COPIED, NEW, SKIPPED = "copied", "new", "skipped"


@dataclass(frozen=True)
class LevelLayout:
    """How the SR U-Net's levels relate to the base U-Net's."""

    base_size: int  # base image size = the size of the SR model's first copied level
    sr_size: int
    base_levels: int  # len(base channel_mult)
    new_levels: int  # outer levels the SR model adds
    num_res_blocks: int

    @property
    def input_shift(self) -> int:
        """Base input_blocks[i] is SR input_blocks[i + input_shift]: every new level adds
        num_res_blocks ResBlocks and one downsample block to the input path."""
        return self.new_levels * (self.num_res_blocks + 1)

    @property
    def base_output_blocks(self) -> int:
        """Output blocks at base resolution and below (the same indices in both models)."""
        return self.base_levels * (self.num_res_blocks + 1)

    def input_block_size(self, index: int) -> int:
        """Feature-map size an SR input block works at (outermost level first)."""
        return self.sr_size >> (index // (self.num_res_blocks + 1))

    def output_block_size(self, index: int) -> int:
        """Feature-map size of an SR output block's ResBlock (deepest level first)."""
        deepest = self.base_levels + self.new_levels - 1
        return self.sr_size >> (deepest - index // (self.num_res_blocks + 1))


def level_layout(base: ModelConfig, sr: ModelConfig) -> LevelLayout:
    """The layout relating ``sr`` to ``base``; GlyphfuseError when ``sr`` is not ``base`` plus
    new outer levels (different widths, block counts, text encoder ...)."""
    check_sr_compatible(base, sr)
    new_levels = len(sr.unet.channel_mult) - len(base.unet.channel_mult)
    expected = sr_config_for(base, sr.image_size)
    same = ("base_channels", "num_res_blocks", "attention_resolutions", "weave_resolutions", "head_channels", "out_channels")
    for key in same:
        if getattr(sr.unet, key) != getattr(base.unet, key):
            raise GlyphfuseError(
                f"SR model {sr.name!r}: unet.{key} is {getattr(sr.unet, key)}, the base model {base.name!r} has "
                f"{getattr(base.unet, key)}; warm start needs the same U-Net plus new outer levels"
            )
    if new_levels < 1 or tuple(sr.unet.channel_mult[new_levels:]) != tuple(base.unet.channel_mult) or sr.unet.channel_mult != expected.unet.channel_mult:
        raise GlyphfuseError(
            f"SR model {sr.name!r}: channel_mult {tuple(sr.unet.channel_mult)} is not the base's {tuple(base.unet.channel_mult)} "
            f"with {int(math.log2(sr.image_size / base.image_size))} outer level(s) in front (expected {tuple(expected.unet.channel_mult)})"
        )
    return LevelLayout(base.image_size, sr.image_size, len(base.unet.channel_mult), new_levels, base.unet.num_res_blocks)


# ---------------------------------------------------------------------------------------------
# The mapping: one base tensor name -> its SR tensor name
# ---------------------------------------------------------------------------------------------

_INPUT_BLOCK = re.compile(r"^unet\.input_blocks\.(\d+)\.(.+)$")
_OUTPUT_BLOCK = re.compile(r"^unet\.output_blocks\.(\d+)\.(.+)$")
_SAME_NAME_PREFIXES = ("time_embed.", "text_encoder.", "unet.middle.", "unet.position_tables.")


def sr_name_for(base_name: str, layout: LevelLayout) -> tuple[str | None, str]:
    """(SR tensor name, why) for a base tensor; (None, why) when it deliberately has no place."""
    if base_name.startswith(_SAME_NAME_PREFIXES):
        return base_name, "same place"
    match = _INPUT_BLOCK.match(base_name)
    if match:
        index, rest = int(match.group(1)), match.group(2)
        return f"unet.input_blocks.{index + layout.input_shift}.{rest}", f"index + {layout.input_shift} (input path)"
    match = _OUTPUT_BLOCK.match(base_name)
    if match:
        return base_name, "same place"
    if base_name.startswith("unet.input_conv."):
        return None, f"input conv: SR input is image + upsampled low-res at {layout.sr_size} px"
    if base_name.startswith("unet.out."):
        return None, "final output layers (they follow the new outer level)"
    return None, "no rule maps this tensor into the SR model"


def new_reason(sr_name: str, layout: LevelLayout) -> str:
    """Why an SR tensor starts fresh (it received no base tensor)."""
    if sr_name.startswith("unet.input_conv."):
        return "input conv (image + upsampled low-res)"
    if sr_name.startswith("unet.out."):
        return "final output layers"
    if sr_name.startswith("low_res_noise_embed."):
        return "low-res noise embedding (last layer zeroed)"
    match = _INPUT_BLOCK.match(sr_name)
    if match and int(match.group(1)) < layout.input_shift:
        return f"new outer level ({layout.input_block_size(int(match.group(1)))} px)"
    match = _OUTPUT_BLOCK.match(sr_name)
    if match:
        index = int(match.group(1))
        if index >= layout.base_output_blocks:
            return f"new outer level ({layout.output_block_size(index)} px)"
        if match.group(2).startswith("up."):
            return f"upsampling {layout.base_size} px -> new outer level"
    if sr_name.startswith("unet.position_tables."):
        return "position table of a size the base lacks"
    return "no base tensor maps here"


# ---------------------------------------------------------------------------------------------
# Planning and applying
# ---------------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One tensor's fate. copied: base_name -> sr_name; skipped: a base tensor not copied;
    new: an SR tensor left at its fresh initialisation."""

    status: str
    base_name: str | None
    sr_name: str | None
    shape: tuple[int, ...]
    numel: int
    reason: str


@dataclass
class WarmStartReport:
    layout: LevelLayout
    entries: list[Entry] = field(default_factory=list)

    def of(self, status: str) -> list[Entry]:
        return [e for e in self.entries if e.status == status]

    def tensors(self, status: str) -> int:
        return len(self.of(status))

    def parameters(self, status: str) -> int:
        return sum(e.numel for e in self.of(status))

    @property
    def mapping(self) -> dict[str, str]:
        """base name -> SR name of every copied tensor."""
        return {e.base_name: e.sr_name for e in self.of(COPIED)}

    def summary(self) -> dict[str, int]:
        """{"copied_tensors": .., "copied_parameters": .., "new_tensors": .., ... "skipped_parameters": ..}"""
        counts = {}
        for status in (COPIED, NEW, SKIPPED):
            counts[f"{status}_tensors"] = self.tensors(status)
            counts[f"{status}_parameters"] = self.parameters(status)
        return counts


def plan_warm_start(base_state: dict[str, torch.Tensor], sr_state: dict[str, torch.Tensor], layout: LevelLayout) -> WarmStartReport:
    """Decide, for every base and SR tensor, whether it is copied, new or skipped (and why)."""
    report = WarmStartReport(layout)
    filled: dict[str, str] = {}  # SR name -> base name
    refused: dict[str, str] = {}  # SR name -> why its base tensor was not copied
    for base_name, tensor in base_state.items():
        shape = tuple(tensor.shape)
        sr_name, why = sr_name_for(base_name, layout)
        if sr_name is None:
            report.entries.append(Entry(SKIPPED, base_name, None, shape, tensor.numel(), why))
        elif sr_name not in sr_state:
            report.entries.append(Entry(SKIPPED, base_name, sr_name, shape, tensor.numel(), f"maps to {sr_name}, which the SR model does not have"))
        elif tuple(sr_state[sr_name].shape) != shape:
            why = f"shape mismatch: base {shape} vs SR {tuple(sr_state[sr_name].shape)}"
            report.entries.append(Entry(SKIPPED, base_name, sr_name, shape, tensor.numel(), why))
            refused[sr_name] = f"base {base_name} skipped ({why})"
        elif sr_name in filled:
            raise GlyphfuseError(f"warm start mapping sends both {filled[sr_name]} and {base_name} to {sr_name}")
        else:
            filled[sr_name] = base_name
            report.entries.append(Entry(COPIED, base_name, sr_name, shape, tensor.numel(), why))
    for sr_name, tensor in sr_state.items():
        if sr_name not in filled:
            why = refused.get(sr_name) or new_reason(sr_name, layout)
            report.entries.append(Entry(NEW, None, sr_name, tuple(tensor.shape), tensor.numel(), why))
    return report


def warm_start_model(base_model: torch.nn.Module, base_config: ModelConfig, sr_config: ModelConfig, *, seed: int = 0):
    """(SR GlyphModel, WarmStartReport): a freshly initialised SR model (seeded) holding copies
    of every base tensor that has a place in it."""
    layout = level_layout(base_config, sr_config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sr_model = GlyphModel(sr_config)
    if sr_model.low_res_noise_embed is not None:
        last = sr_model.low_res_noise_embed[-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
    base_state = {k: v.detach().cpu() for k, v in base_model.state_dict().items()}
    sr_state = sr_model.state_dict()
    report = plan_warm_start(base_state, sr_state, layout)
    with torch.no_grad():
        for entry in report.of(COPIED):
            sr_state[entry.sr_name].copy_(base_state[entry.base_name])
    return sr_model, report


def resolve_base_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or a training run folder (its checkpoints/latest)."""
    path = Path(path)
    if path.is_dir() and not (path / "config.json").exists() and (path / CHECKPOINTS).is_dir():
        latest = find_latest_checkpoint(path)
        if latest is None:
            raise GlyphfuseError(f"{path}: run folder has no complete checkpoint (checkpoints/latest)")
        return latest
    return path


def warm_start_checkpoint(
    base_checkpoint: str | Path, out: str | Path, *, sr_size: int | None = None, seed: int = 0, low_res_noise_max: float = 0.2,
    name: str | None = None, overwrite: bool = False,
) -> tuple[Path, WarmStartReport]:
    """Build the SR model for ``base_checkpoint`` (default sr_size: 2x the base size), warm-start
    it and save it as a checkpoint folder at ``out``. Returns (out, report).

    ``out`` must be new or empty; ``overwrite`` allows replacing a checkpoint there. It is never
    the input itself (or a folder holding it), nor a training checkpoint (checked before any work)."""
    base_path = resolve_base_checkpoint(base_checkpoint)
    check_checkpoint_output(out, overwrite=overwrite, inputs=(base_checkpoint, base_path))
    base_model, base_config = load_checkpoint(base_path)
    if base_config.is_super_resolution:
        raise GlyphfuseError(f"{base_path}: {base_config.name!r} is already a super-resolution model; warm-start needs a base model checkpoint")
    sr_size = sr_size or 2 * base_config.image_size
    sr_config = sr_config_for(base_config, sr_size, name=name, low_res_noise_max=low_res_noise_max)
    validate_model_config(sr_config, where=f"SR model {sr_config.name!r}")  # e.g. an absurd --sr-size
    sr_model, report = warm_start_model(base_model, base_config, sr_config, seed=seed)
    metadata = {"warm_start_from": str(base_path.resolve()), "warm_start_seed": seed, **{f"warm_start_{k}": v for k, v in report.summary().items()}}
    out = save_checkpoint(out, sr_model, sr_config, metadata=metadata)
    return Path(out), report


# ---------------------------------------------------------------------------------------------
# The report as rows (the CLI draws them as a table)
# ---------------------------------------------------------------------------------------------


def _block_of(name: str | None) -> tuple[str, int | str | None]:
    """(component, block index or table size) of a tensor, e.g. ("unet.input_blocks", 3)."""
    if name is None:
        return "-", None
    parts = name.split(".")
    if parts[0] == "unet" and len(parts) > 2 and parts[1] in ("input_blocks", "output_blocks", "position_tables"):
        return f"unet.{parts[1]}", int(parts[2]) if parts[2].isdigit() else parts[2]
    if parts[0] == "unet":
        return ".".join(parts[:2]), None
    return parts[0], None


def _show_blocks(component: str, indices: set) -> str:
    """unet.input_blocks[0-4], unet.position_tables[8,16], text_encoder."""
    numbers = sorted(int(i) for i in indices if i is not None)
    if not numbers:
        return component
    runs: list[list[int]] = []  # [first, last] of consecutive indices
    for n in numbers:
        if runs and runs[-1][1] + 1 == n:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return f"{component}[{','.join(str(a) if a == b else f'{a}-{b}' for a, b in runs)}]"


def report_rows(report: WarmStartReport) -> list[tuple[str, str, str, int, int, str]]:
    """(status, base blocks, SR blocks, tensors, parameters, reason): entries grouped by status,
    component and reason (block indices shown as ranges). A skipped tensor that HAD a place in
    the SR model (a real problem, e.g. a shape mismatch) gets a row of its own, by full name."""
    groups: dict[tuple, dict] = {}
    for entry in report.entries:
        if entry.status == SKIPPED and entry.sr_name is not None:
            key = (entry.status, entry.base_name, entry.sr_name, entry.reason, True)
            blocks = (None, None)
        else:
            (base_component, base_block), (sr_component, sr_block) = _block_of(entry.base_name), _block_of(entry.sr_name)
            key = (entry.status, base_component, sr_component, entry.reason, False)
            blocks = (base_block, sr_block)
        group = groups.setdefault(key, {"base": set(), "sr": set(), "tensors": 0, "parameters": 0})
        group["base"].add(blocks[0])
        group["sr"].add(blocks[1])
        group["tensors"] += 1
        group["parameters"] += entry.numel
    order = {COPIED: 0, NEW: 1, SKIPPED: 2}
    rows = []
    for (status, base, sr, why, single), group in sorted(groups.items(), key=lambda item: order[item[0][0]]):
        if not single:
            base, sr = _show_blocks(base, group["base"]), _show_blocks(sr, group["sr"])
        rows.append((status, base, sr, group["tensors"], group["parameters"], why))
    return rows

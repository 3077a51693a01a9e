"""Warm start: SR model = base model + new outer level(s), base tensors copied bit for bit.

Tiny models: a 16 px base (the ``tiny`` preset at 16 px: levels 16/8/4) and its 2x / 4x SR models.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from glyphfuse import cli
from glyphfuse.cli.train_commands import report_table
from glyphfuse.core.checkpoint import WEIGHTS_NAME, load_checkpoint, save_checkpoint
from glyphfuse.core.config import get_preset, sr_config_for
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.model import GlyphModel
from glyphfuse.core.tokenizer import tokenize
from glyphfuse.training.warm_start import (
    COPIED,
    NEW,
    SKIPPED,
    level_layout,
    plan_warm_start,
    report_rows,
    sr_name_for,
    warm_start_checkpoint,
    warm_start_model,
)


def tiny_base_config():
    return dataclasses.replace(get_preset("tiny"), name="tiny16", image_size=16)


def randomised_base(seed: int = 1) -> GlyphModel:
    """A base model whose every tensor is random (no zero-initialised layers): a copy of a zero
    tensor would prove nothing."""
    torch.manual_seed(seed)
    model = GlyphModel(tiny_base_config())
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.copy_(torch.randn_like(tensor) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "ckpt"
    save_checkpoint(path, randomised_base(), tiny_base_config())
    return path


@pytest.fixture(scope="module")
def warm_checkpoint(base_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("sr") / "sr32"
    path, report = warm_start_checkpoint(base_checkpoint, out, sr_size=32)
    return path, report


def test_sr_config_for_adds_outer_levels():
    base = tiny_base_config()
    sr = sr_config_for(base, 64)
    assert sr.unet.channel_mult == (1, 1, 1, 2, 2)  # two new outer levels, each channel_mult[0]
    assert sr.unet.in_channels == 2 * base.channels
    assert (sr.image_size, sr.low_res_size) == (64, 16)
    assert sr.text == base.text and sr.diffusion == base.diffusion
    assert get_preset("sr256") == sr_config_for(get_preset("base128"), 256, name="sr256")
    with pytest.raises(GlyphfuseError, match="power of two"):
        sr_config_for(base, 48)
    with pytest.raises(GlyphfuseError, match="already a super-resolution"):
        sr_config_for(sr, 128)


def test_name_mapping_is_explicit():
    layout = level_layout(tiny_base_config(), sr_config_for(tiny_base_config(), 32))
    assert layout.input_shift == 2  # one new level: 1 ResBlock + 1 downsample
    assert sr_name_for("unet.input_blocks.0.res.in_layers.2.weight", layout)[0] == "unet.input_blocks.2.res.in_layers.2.weight"
    assert sr_name_for("unet.output_blocks.5.res.skip.weight", layout)[0] == "unet.output_blocks.5.res.skip.weight"
    assert sr_name_for("unet.position_tables.8.rows", layout)[0] == "unet.position_tables.8.rows"
    assert sr_name_for("text_encoder.blocks.0.qkv.weight", layout)[0] == "text_encoder.blocks.0.qkv.weight"
    assert sr_name_for("unet.input_conv.weight", layout)[0] is None
    assert sr_name_for("unet.out.2.weight", layout)[0] is None
    four = level_layout(tiny_base_config(), sr_config_for(tiny_base_config(), 64))
    assert sr_name_for("unet.input_blocks.3.down.conv.weight", four)[0] == "unet.input_blocks.7.down.conv.weight"


def test_copied_tensors_are_bit_identical(base_checkpoint, warm_checkpoint):
    path, report = warm_checkpoint
    base = load_file(str(base_checkpoint / WEIGHTS_NAME))
    sr = load_file(str(path / WEIGHTS_NAME))
    assert len(report.mapping) == report.tensors(COPIED) > 0
    for base_name, sr_name in report.mapping.items():
        assert torch.equal(sr[sr_name], base[base_name]), (base_name, sr_name)
    # and the checkpoint loads as the SR model it claims to be
    model, config = load_checkpoint(path)
    assert config.image_size == 32 and config.low_res_size == 16
    info = json.loads((path / "config.json").read_text())["glyphfuse"]["metadata"]
    assert info["warm_start_from"] == str(base_checkpoint.resolve())
    assert info["warm_start_copied_parameters"] == report.parameters(COPIED)


def test_copied_count_is_the_shared_structure(warm_checkpoint):
    _, report = warm_checkpoint
    base = randomised_base()
    sr_config = sr_config_for(tiny_base_config(), 32)
    sr = GlyphModel(sr_config)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    # shared structure, computed independently: the whole base model except the input conv and
    # the final output layers (the only base parts the mapping deliberately leaves out)
    shared = count(base) - count(base.unet.input_conv) - count(base.unet.out)
    assert report.parameters(COPIED) == shared
    assert report.parameters(SKIPPED) == count(base.unet.input_conv) + count(base.unet.out)
    assert report.parameters(NEW) == count(sr) - shared
    # what is new, independently: input conv, the new 32 px level (input blocks 0-1, output
    # blocks 6-7), the up conv of output block 5, the output layers, the low-res noise embedding
    n_new = (
        count(sr.unet.input_conv) + count(sr.unet.input_blocks[0]) + count(sr.unet.input_blocks[1])
        + count(sr.unet.output_blocks[5].up) + count(sr.unet.output_blocks[6]) + count(sr.unet.output_blocks[7])
        + count(sr.unet.out) + count(sr.low_res_noise_embed)
    )
    assert report.parameters(NEW) == n_new
    # every tensor not copied is listed with a reason, and the table shows them
    assert all(e.reason for e in report.entries if e.status != COPIED)
    console = Console(record=True, width=200)
    console.print(report_table(report_rows(report), report.summary()))
    text = console.export_text()
    for phrase in ("new outer level (32 px)", "input conv", "final output layers", "low-res noise embedding", "upsampling 16 px"):
        assert phrase in text
    assert sum(row[4] for row in report_rows(report)) == report.parameters(COPIED) + report.parameters(NEW) + report.parameters(SKIPPED)


def test_shape_mismatch_is_reported_not_ignored():
    base_config, sr_config = tiny_base_config(), sr_config_for(tiny_base_config(), 32)
    layout = level_layout(base_config, sr_config)
    base_state = dict(randomised_base().state_dict())
    base_state["unet.middle.res1.in_layers.2.bias"] = torch.zeros(7)  # wrong shape
    report = plan_warm_start(base_state, GlyphModel(sr_config).state_dict(), layout)
    skipped = [e for e in report.of(SKIPPED) if e.base_name == "unet.middle.res1.in_layers.2.bias"]
    assert len(skipped) == 1 and "shape mismatch" in skipped[0].reason
    new = [e for e in report.of(NEW) if e.sr_name == "unet.middle.res1.in_layers.2.bias"]
    assert len(new) == 1 and "shape mismatch" in new[0].reason
    rows = report_rows(report)
    assert any(row[1] == "unet.middle.res1.in_layers.2.bias" and "shape mismatch" in row[5] for row in rows)


def test_warm_started_blocks_reproduce_base_features():
    """The exact check: feed the SR model, at the place where its copied structure begins, the
    very activation the base model has there, and compare every copied block's output.

    * base: h0 = input_conv(x) enters input_blocks[0]; we record every output block's output.
    * SR: a forward hook replaces the output of input_blocks[shift - 1] (the new level's
      downsample) by h0, so input_blocks[shift:] see what base input_blocks[:] saw, and the skip
      that base output_blocks[-1] read from input_conv now also is h0.
    * With the same timesteps and prompts the timestep embedding and text states are identical
      (time_embed and text_encoder are copied; the low-res noise embedding starts at zero), so
      every SR output block at base resolution and below must reproduce the base output block
      bit for bit. The last of them additionally upsamples into the new level, so it is
      compared before its `up` conv.
    """
    base = randomised_base()
    base_config = tiny_base_config()
    sr_config = sr_config_for(base_config, 32)
    sr, report = warm_start_model(base, base_config, sr_config)
    sr.eval()
    layout = report.layout
    torch.manual_seed(0)
    x_base = torch.randn(2, 1, 16, 16)
    t = torch.tensor([10.0, 700.0])
    text = tokenize(["hi", "a\nb"], base_config.text.max_length)

    base_h0, base_outputs, sr_outputs = {}, {}, {}
    base.unet.input_conv.register_forward_hook(lambda m, i, o: base_h0.setdefault("h0", o))
    for j, block in enumerate(base.unet.output_blocks):
        block.register_forward_hook(lambda m, i, o, j=j: base_outputs.__setitem__(j, o[0]))
    with torch.no_grad():
        base(x_base, t, text)

    sr.unet.input_blocks[layout.input_shift - 1].register_forward_hook(lambda m, i, o: (base_h0["h0"], o[1]))
    last = layout.base_output_blocks - 1
    for j in range(last):
        sr.unet.output_blocks[j].register_forward_hook(lambda m, i, o, j=j: sr_outputs.__setitem__(j, o[0]))
    sr.unet.output_blocks[last].up.register_forward_pre_hook(lambda m, i: sr_outputs.__setitem__(last, i[0]))
    with torch.no_grad():
        sr(torch.randn(2, 1, 32, 32), t, text, low_res=torch.randn(2, 1, 16, 16))

    assert sorted(sr_outputs) == list(range(layout.base_output_blocks))
    for j in range(layout.base_output_blocks):
        assert torch.equal(sr_outputs[j], base_outputs[j]), f"output block {j}"
    assert base_outputs[last].abs().sum() > 0


def test_four_times_upscaling_lines_up():
    base_config = tiny_base_config()
    base = randomised_base()
    sr, report = warm_start_model(base, base_config, sr_config_for(base_config, 64))
    assert report.layout.new_levels == 2 and report.layout.input_shift == 4
    assert report.tensors(SKIPPED) == 6  # input conv + output layers, as for 2x
    sr_state, base_state = sr.state_dict(), base.state_dict()
    for base_name, sr_name in report.mapping.items():
        assert torch.equal(sr_state[sr_name], base_state[base_name])


def test_incompatible_sr_is_refused(base_checkpoint, warm_checkpoint, tmp_path):
    base_config = tiny_base_config()
    other_text = sr_config_for(base_config, 32)
    other_text.text = dataclasses.replace(other_text.text, width=64)
    with pytest.raises(GlyphfuseError, match="text encoder"):
        warm_start_model(randomised_base(), base_config, other_text)
    wider = sr_config_for(base_config, 32)
    wider.unet = dataclasses.replace(wider.unet, base_channels=32)
    with pytest.raises(GlyphfuseError, match="base_channels"):
        level_layout(base_config, wider)
    with pytest.raises(GlyphfuseError, match="already a super-resolution"):
        warm_start_checkpoint(warm_checkpoint[0], tmp_path / "x")
    with pytest.raises(GlyphfuseError, match="power of two"):
        warm_start_checkpoint(base_checkpoint, tmp_path / "y", sr_size=24)


def test_cli_warm_start(base_checkpoint, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sr"
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", ["glyphfuse", "warm-start", str(base_checkpoint), "--out", str(out), "--sr-size", "32"])
    with pytest.raises(SystemExit) as done:
        cli.main()
    captured = capsys.readouterr()
    assert done.value.code in (0, None), captured.err
    assert "copied" in captured.out and "new outer level (32 px)" in captured.out
    assert (out / WEIGHTS_NAME).is_file()
    monkeypatch.setattr(sys, "argv", ["glyphfuse", "warm-start", str(base_checkpoint), "--out", str(tmp_path / "bad"), "--sr-size", "40"])
    with pytest.raises(SystemExit) as failed:
        cli.main()
    captured = capsys.readouterr()
    assert failed.value.code == 1 and "power of two" in captured.err and "Traceback" not in captured.err
    assert not (tmp_path / "bad").exists()

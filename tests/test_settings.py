"""SamplingSettings: one home for the sampling options, their defaults and their checks."""

import json

import pytest
from typer.testing import CliRunner

from glyphfuse.cli import app
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.sampling.settings import DEFAULT_SAMPLER, DEFAULT_STEPS, SamplingSettings, resolve_settings
from glyphfuse.training.config import TrainConfig


def test_round_trip_through_json_and_a_file(tmp_path):
    settings = SamplingSettings(steps=15, sampler="dpmpp-2m", guidance=2.5, candidates=4, sr_steps=10, seed=7)
    assert SamplingSettings.from_json(settings.to_json()) == settings
    path = tmp_path / "s.json"
    path.write_text(settings.to_json())
    assert SamplingSettings.load(path) == settings
    assert SamplingSettings.from_dict({}) == SamplingSettings()  # missing keys: the defaults
    assert (SamplingSettings().steps, SamplingSettings().sampler) == (DEFAULT_STEPS, DEFAULT_SAMPLER)


@pytest.mark.parametrize("changes, message", [
    ({"sampler": "euler"}, "unknown sampler 'euler'"),
    ({"steps": 0}, "steps must be >= 1"),
    ({"eta": 0.5, "sampler": "dpmpp-2m"}, "eta is a ddim setting"),
    ({"delete_under": 1.5}, "delete_under must be a similarity in [0, 1]"),
    ({"guidance": float("nan")}, "guidance must be a finite number"),
    ({"sr_low_res_noise": 1.0}, "sr_low_res_noise must be in [0, 1)"),
])
def test_bad_values_are_one_line_errors_naming_the_field(changes, message):
    with pytest.raises(GlyphfuseError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        SamplingSettings(**changes).validate()
    with pytest.raises(GlyphfuseError, match="s.json: "):
        SamplingSettings.from_dict(SamplingSettings(**changes).to_dict(), where="s.json")


def test_loading_refuses_unknown_keys_wrong_types_and_bad_json(tmp_path):
    with pytest.raises(GlyphfuseError, match="unknown key"):
        SamplingSettings.from_dict({"stepz": 3})
    with pytest.raises(GlyphfuseError, match="steps"):
        SamplingSettings.from_dict({"steps": "many"})
    with pytest.raises(GlyphfuseError, match="not valid JSON"):
        SamplingSettings.from_json("{steps: 3")
    with pytest.raises(GlyphfuseError, match="no such sampling settings file"):
        SamplingSettings.load(tmp_path / "missing.json")


def test_keyword_overrides_build_checked_settings():
    assert resolve_settings(steps=20, seed=3) == SamplingSettings(steps=20, seed=3)
    base = SamplingSettings(candidates=4)
    assert resolve_settings(base, guidance=1.0) == SamplingSettings(candidates=4, guidance=1.0)
    with pytest.raises(TypeError, match="stepz"):
        resolve_settings(stepz=3)
    with pytest.raises(GlyphfuseError):
        resolve_settings(steps=0)


def test_the_cli_defaults_are_the_dataclass_defaults():
    runner = CliRunner()
    for command in ("sample", "eval"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"}, terminal_width=250)
        assert result.exit_code == 0
        steps_line = next(line for line in result.output.splitlines() if line.lstrip("│ ").startswith("--steps "))
        assert f"[default: {DEFAULT_STEPS}]" in steps_line


def test_train_and_sampling_configs_share_the_json_round_trip(tmp_path):
    config = TrainConfig(model="tiny", data="somewhere", max_steps=7)
    path = tmp_path / "train.json"
    path.write_text(config.to_json())
    assert TrainConfig.load(path) == config
    assert json.loads(config.to_json())["max_steps"] == 7
    with pytest.raises(GlyphfuseError, match="unknown key.*TrainConfig"):
        TrainConfig.from_dict({"max_stepz": 3})

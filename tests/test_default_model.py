"""The packaged default model: it ships, loads, samples without --checkpoint, and carries its card."""

from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from glyphfuse.sampling import generation as sampling
from glyphfuse.cli import app
from glyphfuse.core.checkpoint import load_checkpoint, read_model_card

REPO = Path(__file__).resolve().parents[1]


def test_default_model_ships_with_recipe_and_scores():
    path = sampling.default_checkpoint_dir()
    assert (path / "model.safetensors").stat().st_size < 16 * 2**20  # no file over 16 MB in the package
    card = read_model_card(path)
    assert card is not None
    assert (REPO / card["recipe"]).is_file()  # the exact commands that produced it
    assert {"prompts", "n", "candidates", "cer", "exact"} <= set(card["scores"][0])
    model, config = load_checkpoint(path)
    assert config.name == card["preset"] and not config.is_super_resolution
    assert all(np.isfinite(p.detach().numpy()).all() for p in model.parameters())


def test_sample_without_checkpoint_uses_the_default_model(tmp_path):
    out = tmp_path / "fox.png"
    result = CliRunner().invoke(app, ["sample", "fox", "-o", str(out), "--steps", "4", "--seed", "3", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    sr_dir = sampling.packaged_sr_dir()  # a packaged cascade writes its SR model's size
    size = load_checkpoint(sr_dir if sr_dir is not None else sampling.default_checkpoint_dir())[1].image_size
    image = Image.open(out)
    assert image.size == (size, size)
    again = tmp_path / "again.png"
    CliRunner().invoke(app, ["sample", "fox", "-o", str(again), "--steps", "4", "--seed", "3", "--device", "cpu"])
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(again)))  # same seed, same image


def test_info_names_the_default_model_and_its_recipe():
    result = CliRunner().invoke(app, ["info"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    card = read_model_card(sampling.default_checkpoint_dir())
    assert "default model" in result.output and card["recipe"] in result.output
    assert "measured scores" in result.output


def test_card_states_the_domain_and_sample_warns_outside_it(tmp_path):
    card = read_model_card(sampling.default_checkpoint_dir())
    domain = card["domain"]
    assert {"characters", "max_lines", "max_chars_per_line", "canvas", "summary"} <= set(domain)
    inside = "ab\ncd"
    assert sampling.domain_warning(inside) is None
    too_long = "x" * (domain["max_chars_per_line"] + 1)
    assert f"a line of {len(too_long)} characters" in sampling.domain_warning(too_long)
    assert "lines" in sampling.domain_warning("\n".join(["a"] * (domain["max_lines"] + 1)))
    outside = next(char for char in "%~\u00e9" if char not in domain["characters"])
    assert repr(outside) in sampling.domain_warning(f"50{outside}")
    result = CliRunner().invoke(app, ["sample", f"50{outside}", "-o", str(tmp_path / "x.png"), "--steps", "2", "--device", "cpu"])
    assert result.exit_code == 0 and (tmp_path / "x.png").is_file()  # still samples
    assert "outside what this model was trained to write" in result.output


def test_domain_warning_needs_a_card(tmp_path):
    from glyphfuse.core.checkpoint import save_checkpoint
    from helpers import micro_config, random_model

    config = micro_config()
    save_checkpoint(tmp_path / "ckpt", random_model(config), config)
    assert sampling.domain_warning("anything at all, 100% outside", tmp_path / "ckpt") is None

"""The packaged default model: it ships, loads, samples without --checkpoint, and carries its card."""

import json
import subprocess
import sys
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
    if sampling.packaged_sr_dir() is not None:  # a packaged cascade names its SR stage
        assert "its SR stage" in result.output and "--no-sr" in result.output


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


def test_lines128_card_copies_every_score_from_the_eval_reports(tmp_path):
    # the recipe's card script on made-up reports: each figure lands in the card, none is typed in
    def report(image_size, exact, n=1, candidates=1):
        settings = {"n": n, "candidates": candidates, "sampler": "ddim", "steps": 8, "image_size": image_size, "sr_start": 0.05}
        return {"settings": settings, "model": {"summary": {"cer": 1 - exact, "exact": exact, "exact_ci": exact}}}

    for number, name in enumerate(("cased", "signs", "alnum", "readme", "original")):
        (tmp_path / f"eval_{name}.json").write_text(json.dumps(report(128, 0.10 + number / 100)))
        (tmp_path / f"eval_{name}_sr.json").write_text(json.dumps(report(256, 0.50 + number / 100)))
        ceiling = {"ground_truth": {"summary": {"n": 200, "cer": 0.0, "exact": 0.9, "exact_ci": 0.95}}}
        (tmp_path / f"ceiling256_{name}.json").write_text(json.dumps(ceiling))
    (tmp_path / "eval_original_c8_sr.json").write_text(json.dumps(report(256, 0.75, n=4, candidates=8)))
    bench = {"cased": {"n": 126, "base": {"exact": 0.9, "cer": 0.0, "sharpness": 0.5},
                       "bicubic": {"exact": 0.9, "cer": 0.0, "sharpness": 0.59}, "sr@0.05": {"exact": 0.92, "cer": 0.0, "sharpness": 0.62}}}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    card_path = tmp_path / "card.json"
    done = subprocess.run([sys.executable, str(REPO / "examples/recipes/lines128_card.py"), str(tmp_path), str(card_path),
                           "--base-images", "b", "--sr-images", "s", "--status", "st", "--bench-sr", str(tmp_path / "bench.json")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    card = json.loads(card_path.read_text())
    rows = {(row["prompts"].split(":")[0], row["stage"]): row for row in card["scores"]}
    assert rows[("signs", "cascade, 256 px")]["exact"] == 0.51 and rows[("signs", "base alone, 128 px (--no-sr)")]["exact"] == 0.11
    assert "SR from 0.05" in rows[("signs", "cascade, 256 px")]["steps"]
    assert rows[("original, best of 8 candidates by OCR", "cascade, 256 px")]["candidates"] == 8
    assert card["status"] == "st" and card["training"] == ["base: b", "SR: s"]
    assert card["sr_effect"] == ["cased (126 prompts), exact / edge sharpness: bicubic 0.900 / 0.590, sr@0.05 0.920 / 0.620"]


def test_the_colour_painter_ships_with_its_card():
    path = sampling.packaged_painter_dir()
    assert path is not None and (path / "model.safetensors").stat().st_size < 16 * 2**20
    card = read_model_card(path)
    assert card is not None and (REPO / card["recipe"]).is_file() and card["preset"] == "paint128"
    assert {"prompts", "candidates", "cer", "exact", "exact_by_kind"} <= set(card["scores"][0])
    model, config = load_checkpoint(path)
    assert config.glyphs and config.inpaint and config.channels == 3 and config.scene_kinds
    assert all(np.isfinite(p.detach().numpy()).all() for p in model.parameters())

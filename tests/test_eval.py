"""`glyphfuse eval`: prompt sets, the report (metrics, settings, determinism), the OCR ceiling.

OCR really runs here (tesseract): on the random micro model's 16 px images it reads garbage, but
the same garbage every time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from glyphfuse import evaluate
from glyphfuse.cli import app
from glyphfuse.cli.score_commands import report_tables
from glyphfuse.core.checkpoint import save_checkpoint
from glyphfuse.core.errors import GlyphfuseError
from helpers import micro_config, one_torch_thread, random_model  # noqa: F401 (one_torch_thread: autouse fixture)

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    config = micro_config()
    model = random_model(config)
    path = tmp_path_factory.mktemp("eval") / "ckpt"
    save_checkpoint(path, model, config)
    return path


def test_packaged_prompt_sets_match_examples_and_are_held_out():
    from glyphfuse.data.synth import COMMON_WORDS, load_words

    training_words = {w.lower() for w in load_words()} | {w.lower() for w in COMMON_WORDS}
    original_test_prompt = "the\nwhat string\ncommit\nString evolved\nLEGGED"
    for name in evaluate.PROMPT_SETS:
        assert (REPO / "examples" / "prompts" / f"{name}.txt").read_text(encoding="utf-8") == evaluate.prompt_set_text(name)
        prompts, source = evaluate.load_prompts(name)
        not_held_out = name in ("original", "readme")  # kept verbatim on purpose: ordinary training words
        assert source == f"glyphfuse:{name}" and len(prompts) >= (1 if not_held_out else 5)
        for prompt in prompts:
            if not_held_out:
                continue
            words = [w.strip(".,!?").lower() for w in prompt.split()]
            assert not [w for w in words if w in training_words], prompt
    words, _ = evaluate.load_prompts(None)  # default: the words set
    assert all(w.isalpha() and w.islower() and 3 <= len(w) <= 8 for w in words)
    assert evaluate.load_prompts("original")[0] == [original_test_prompt]
    assert evaluate.load_prompts("readme")[0] == ["the\nwhat string"]
    strings, _ = evaluate.load_prompts("strings")
    assert all(s.isalpha() and s.islower() and 3 <= len(s) <= 7 for s in strings)
    two_lines, _ = evaluate.load_prompts("lines2")
    assert all(len(p.split("\n")) == 2 and max(map(len, p.split("\n"))) <= 9 for p in two_lines)
    short, _ = evaluate.load_prompts("short")
    assert set(short) <= set(words) and all(3 <= len(w) <= 5 for w in short)


def test_prompt_file_format(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("# comment\n\nhello\nthe\\nwhat string\n  # indented comment\n", encoding="utf-8")
    assert evaluate.load_prompts(path) == (["hello", "the\nwhat string"], str(path))
    with pytest.raises(GlyphfuseError, match="no such prompt file"):
        evaluate.load_prompts(tmp_path / "missing.txt")


def test_eval_report_is_complete_and_reproducible(checkpoint, tmp_path, monkeypatch):
    from glyphfuse.ocr import tesseract as ocr

    calls = []
    real_read = ocr.read_images
    monkeypatch.setattr(ocr, "read_images", lambda images, **kw: calls.append(len(images)) or real_read(images, **kw))
    prompts = tmp_path / "two.txt"
    prompts.write_text("ab\ncd\\nef\n", encoding="utf-8")
    args = ["eval", "-c", str(checkpoint), "--prompts", str(prompts), "-n", "2", "--steps", "2", "--seed", "5", "--device", "cpu"]
    first = runner.invoke(app, args + ["--json", str(tmp_path / "a.json")])
    assert first.exit_code == 0, first.output
    assert calls == [4]  # all images of the eval in one batched OCR call
    second = runner.invoke(app, args + ["--json", str(tmp_path / "b.json")])
    assert second.exit_code == 0, second.output
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()  # same seed -> same report
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["settings"]["seed"] == 5 and report["settings"]["n"] == 2 and report["settings"]["steps"] == 2
    assert set(report["model"]["summary"]) >= {"n", "cer", "exact", "exact_ci", "similarity"}
    assert report["model"]["summary"]["n"] == 4
    rows = report["model"]["prompts"]
    assert [row["prompt"] for row in rows] == ["ab", "cd\nef"]
    for row in rows:
        assert {"cer", "exact", "exact_ci", "samples"} <= set(row) and len(row["samples"]) == 2
    assert [[s["seed"] for s in row["samples"]] for row in rows] == [[5, 6], [7, 8]]
    assert report["ground_truth"] is None
    assert "eval summary" in first.stdout and "exact_ci" in first.stdout

    third = runner.invoke(app, args[:-4] + ["--seed", "6", "--device", "cpu", "--json", str(tmp_path / "c.json")])
    assert third.exit_code == 0, third.output
    assert json.loads((tmp_path / "c.json").read_text())["settings"]["seed"] == 6


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory):
    from glyphfuse.data.synth import synthesize

    path = tmp_path_factory.mktemp("gt") / "synth128"
    synthesize(path, 8, size=128, seed=1, progress=False)
    return path


def test_ground_truth_ceiling(ground_truth, tmp_path):
    report = evaluate.run_eval(ground_truth=ground_truth, ocr_processes=2)
    assert report["model"] is None
    summary = report["ground_truth"]["summary"]
    assert summary["n"] == 8 and summary["errors"] == 0
    assert summary["cer"] < 0.2  # rendered text reads nearly perfectly
    result = runner.invoke(app, ["eval", "--ground-truth", str(ground_truth), "--json", str(tmp_path / "gt.json")])
    assert result.exit_code == 0, result.output
    assert "OCR ceiling" in result.stdout
    assert json.loads((tmp_path / "gt.json").read_text())["ground_truth"]["summary"]["n"] == 8


def test_model_and_ground_truth_side_by_side(checkpoint, ground_truth, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("quartz\nfjord\n", encoding="utf-8")
    report = evaluate.run_eval(checkpoint, prompts=prompts, ground_truth=ground_truth, n=2, candidates=2, steps=1, device="cpu")
    assert report["model"]["summary"]["n"] == 4 and report["settings"]["candidates"] == 2
    assert [s["seed"] for s in report["model"]["prompts"][1]["samples"]] == [4, 6]  # job j's candidates: 2j, 2j+1
    assert report["ground_truth"]["summary"]["cer"] < report["model"]["summary"]["cer"]  # random model vs real text
    titles = [table.title for table in report_tables(report)]
    assert titles[-1] == "eval summary" and len(titles) == 2

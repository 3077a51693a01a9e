"""The sampling pipeline: OCR rejection sampling, pruning, SR stage, --keep-all, `sample --candidates`.

Micro 16 px base (and 32 px SR) models with random weights, a few steps on the CPU. OCR is
replaced by a fake reader that returns controlled texts, so every candidate's score is known.
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from glyphfuse.ocr import tesseract as ocr
from glyphfuse.sampling import pipeline
from glyphfuse.sampling import generation as sampling
from glyphfuse.cli import app
from glyphfuse.core.checkpoint import save_checkpoint
from glyphfuse.core.config import sr_config_for
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.ocr.metrics import trigram_similarity
from glyphfuse.ocr.ranking import prune_candidates
from helpers import micro_config, one_torch_thread, random_model  # noqa: F401 (one_torch_thread: autouse fixture)

STEPS = 2


@pytest.fixture(scope="module")
def models():
    base_config = micro_config("micro16")
    sr_config = sr_config_for(base_config, 32)
    return {"base_model": random_model(base_config), "base_config": base_config,
            "sr_model": random_model(sr_config, 1), "sr_config": sr_config}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, models):
    root = tmp_path_factory.mktemp("pipeline")
    save_checkpoint(root / "base", models["base_model"], models["base_config"])
    save_checkpoint(root / "sr", models["sr_model"], models["sr_config"])
    return root / "base", root / "sr"


class FakeReader:
    """Stands in for ocr.read_images: hands out the queued texts in order, records each call."""

    def __init__(self, *batches):
        self.batches = list(batches)
        self.calls = []

    def __call__(self, images, processes=None, **kwargs):
        self.calls.append(list(images))
        texts = self.batches.pop(0)
        texts = texts(len(images)) if callable(texts) else texts
        assert len(texts) == len(images)
        return list(texts)


@pytest.fixture
def fake_ocr(monkeypatch):
    def install(*batches):
        reader = FakeReader(*batches)
        monkeypatch.setattr(ocr, "read_images", reader)
        monkeypatch.setattr(ocr, "check_tesseract", lambda: "/fake/tesseract")
        return reader
    return install


def only_base(models):
    return {"base_model": models["base_model"], "base_config": models["base_config"]}


def test_select_best_never_picks_a_lower_score_property():
    rng = random.Random(0)
    for _ in range(500):
        scores = [rng.choice([0.0, 0.25, 0.5, 0.8, 1.0, rng.random()]) for _ in range(rng.randint(1, 8))]
        kept = prune_candidates(scores, keep_only_if_above=rng.random(), delete_under=rng.random() * 0.5)
        assert kept  # never all dropped
        best = kept[pipeline.select_best([scores[i] for i in kept])]
        assert scores[best] == max(scores)  # pruning never drops the best, the pick is the best
        assert best == min(i for i, s in enumerate(scores) if s == max(scores))  # ties -> lowest index
    assert pipeline.select_best([None, None]) == 0


def test_rejection_sampling_returns_the_best_candidate(models, fake_ocr):
    prompt = "hello"
    texts = ["xx", "hel", "hello", "hallo", ""]
    reader = fake_ocr(texts)
    result = pipeline.sample_pipeline(prompt, **only_base(models), candidates=5, steps=STEPS, seed=3, keep_only_if_above=0.8, delete_under=0.3)
    scores = [trigram_similarity(prompt, t) for t in texts]
    assert len(reader.calls) == 1 and len(reader.calls[0]) == 5  # one batched OCR call
    assert result.chosen_index == 2 and result.ocr_text == "hello" and result.similarity == 1.0
    assert all(result.similarity >= s for s in scores)
    assert [c.score for c in result.candidates] == pytest.approx(scores)
    assert [c.kept for c in result.candidates] == [False, False, True, False, False]  # only >= 0.8 kept
    # The chosen image is candidate 2, drawn with seed + 2.
    alone = sampling.generate(models["base_model"], models["base_config"], [prompt], steps=STEPS, seed=5)
    torch.testing.assert_close(result.tensor, alone[0], rtol=0, atol=1e-5)


def test_random_reads_never_beat_the_pick(models, fake_ocr):
    rng = random.Random(1)
    prompt = "ab\ncd"
    pool = ["ab cd", "ab\ncd", "a", "abcd", "xy", "", "ab\nc", "b\ncd"]
    for trial in range(3):
        texts = [rng.choice(pool) for _ in range(2 * 4)]
        fake_ocr(texts)
        results = pipeline.sample_many([prompt, prompt], **only_base(models), candidates=4, steps=STEPS, seed=trial)
        for job, result in enumerate(results):
            seen = [c.score for c in result.candidates]
            assert seen == pytest.approx([trigram_similarity(prompt, t) for t in texts[4 * job:4 * job + 4]])
            assert result.similarity == max(seen)
            assert result.chosen_index == seen.index(max(seen))


def test_prune_keeps_at_least_one_and_sr_upsamples_only_survivors(models, fake_ocr):
    prompt = "hello"
    reader = fake_ocr(["zz", "qq", "hel"], ["hell"])
    # base scores: 0, 0, 0.36 -> best < 0.8, drop < 0.3 -> only candidate 2 survives.
    result = pipeline.sample_pipeline(prompt, **models, candidates=3, steps=STEPS, seed=0)
    assert [c.kept for c in result.candidates if c.stage == "base"] == [False, False, True]
    sr = [c for c in result.candidates if c.stage == "sr"]
    assert [c.index for c in sr] == [2] and len(reader.calls[1]) == 1
    assert result.stage == "sr" and result.chosen_index == 2 and result.ocr_text == "hell"
    assert result.image.size == (32, 32) and tuple(result.tensor.shape) == (1, 32, 32)

    fake_ocr(["", "", ""], [""])  # nothing legible at all: the best (first on ties) still goes on
    result = pipeline.sample_pipeline(prompt, **models, candidates=3, steps=STEPS, seed=0, delete_under=0.3)
    assert [c.kept for c in result.candidates if c.stage == "base"] == [True, False, False]
    assert result.chosen_index == 0 and result.stage == "sr" and result.similarity == 0.0


def test_sr_seed_does_not_depend_on_other_survivors(models, fake_ocr):
    prompt = "ab"
    fake_ocr(["ab", "ab", "ab"], ["ab", "ab", "ab"])
    everyone = pipeline.sample_pipeline(prompt, **models, candidates=3, steps=STEPS, seed=4)
    fake_ocr(["x", "x", "ab"], ["ab"])
    last_only = pipeline.sample_pipeline(prompt, **models, candidates=3, steps=STEPS, seed=4)
    sr_everyone = [c for c in everyone.candidates if c.stage == "sr"]
    assert last_only.image.tobytes() == sr_everyone[2].image.tobytes()


def test_one_candidate_without_sr_needs_no_ocr(models, monkeypatch):
    def no_tesseract():
        raise ocr.OcrError("tesseract binary not found on PATH")
    monkeypatch.setattr(ocr, "check_tesseract", no_tesseract)
    monkeypatch.setattr(ocr, "read_images", lambda *a, **k: pytest.fail("OCR must not run"))
    results = pipeline.sample_many(["hi", "hi"], **only_base(models), steps=STEPS, seed=7)
    plain = sampling.generate(models["base_model"], models["base_config"], ["hi", "hi"], steps=STEPS, seed=7)
    assert torch.equal(torch.stack([r.tensor for r in results]), plain)  # plain sampling, same seeds
    assert results[0].ocr_text is None and results[0].similarity is None
    with pytest.raises(ocr.OcrError):  # several candidates need OCR: fail before sampling
        pipeline.sample_many(["hi"], **only_base(models), candidates=2, steps=STEPS)


def test_keep_all_writes_every_candidate_and_a_listing(models, fake_ocr, tmp_path):
    fake_ocr(["a", "hi", "h", "hi!"])
    out = tmp_path / "all"
    result = pipeline.sample_pipeline("hi", **only_base(models), candidates=4, steps=STEPS, keep_all_dir=out)
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 4
    assert "cand01_base_1.000.png" in pngs and "cand00_base_0.000.png" in pngs
    listing = json.loads((out / "candidates.json").read_text())["candidates"]
    assert sorted(row["file"] for row in listing) == pngs
    chosen = [row for row in listing if row["chosen"]]
    assert len(chosen) == 1 and chosen[0]["candidate"] == result.chosen_index == 1 and chosen[0]["ocr"] == "hi"
    assert Image.open(out / "cand01_base_1.000.png").tobytes() == result.image.tobytes()


def test_incompatible_sr_fails_before_sampling(checkpoints, tmp_path, monkeypatch, models):
    monkeypatch.setattr(sampling, "generate", lambda *a, **k: pytest.fail("sampled before the compatibility check"))
    wrong = sr_config_for(dataclasses.replace(micro_config("micro16"), image_size=32), 64)  # upsamples 32 px, base makes 16 px
    save_checkpoint(tmp_path / "wrong_sr", random_model(wrong), wrong)
    with pytest.raises(GlyphfuseError, match=r"wrong_sr: upsamples 32 px images but .*base makes 16 px"):
        pipeline.load_models(checkpoints[0], tmp_path / "wrong_sr", "cpu")
    with pytest.raises(GlyphfuseError, match="upsamples 32 px"):
        pipeline.sample_pipeline("hi", base_model=models["base_model"], base_config=models["base_config"],
                                 sr_model=models["sr_model"], sr_config=wrong, steps=STEPS)
    with pytest.raises(GlyphfuseError, match="is not a super-resolution model"):
        pipeline.load_models(checkpoints[0], checkpoints[0], "cpu")


# ---------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_sample_candidates(checkpoints, fake_ocr, tmp_path):
    fake_ocr(["zz", "hi"])
    out = tmp_path / "best.png"
    keep = tmp_path / "keep"
    result = runner.invoke(app, ["sample", "hi", "-o", str(out), "-c", str(checkpoints[0]), "--steps", str(STEPS),
                                 "--candidates", "2", "--keep-all", str(keep), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "seed 1, best of 2" in result.stdout and "OCR read 'hi', similarity 1.000" in result.stdout
    assert Image.open(out).tobytes() == Image.open(keep / "cand01_base_1.000.png").tobytes()
    assert len(list(keep.glob("*.png"))) == 2 and (keep / "candidates.json").is_file()


def test_cli_sample_with_sr(checkpoints, fake_ocr, tmp_path):
    fake_ocr(["hi", "h", "x", "hi"], lambda n: ["hi"] * n)
    out = tmp_path / "sr.png"
    result = runner.invoke(app, ["sample", "hi", "-o", str(out), "-c", str(checkpoints[0]), "--sr-checkpoint", str(checkpoints[1]),
                                 "--steps", str(STEPS), "--sr-steps", "1", "-n", "2", "--candidates", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == Image.open(tmp_path / "sr_1.png").size == (32, 32)
    assert result.stdout.count("OCR read 'hi'") == 2


def test_the_packaged_cascade_upsamples_by_default_and_no_sr_skips_it(tmp_path, monkeypatch, models):
    packaged = tmp_path / "default_model"
    save_checkpoint(packaged, models["base_model"], models["base_config"])
    monkeypatch.setattr(sampling, "DEFAULT_MODEL_DIR", packaged)
    assert sampling.packaged_sr_dir() is None  # a base model alone: no SR stage
    assert pipeline.load_models()["sr_model"] is None
    save_checkpoint(packaged / "sr", models["sr_model"], models["sr_config"])
    assert sampling.packaged_sr_dir() == packaged / "sr"
    assert pipeline.load_models()["sr_config"].image_size == 32  # the cascade is the default
    assert pipeline.load_models(use_sr=False)["sr_model"] is None
    with pytest.raises(GlyphfuseError, match="--no-sr and --sr-checkpoint"):
        pipeline.load_models(sr_checkpoint=packaged / "sr", use_sr=False)
    runner = CliRunner()
    for extra, size in (([], 32), (["--no-sr"], 16)):
        out = tmp_path / f"out{size}.png"
        result = runner.invoke(app, ["sample", "hi", "-o", str(out), "--steps", str(STEPS), "--device", "cpu", "--no-progress", *extra])
        assert result.exit_code == 0, result.output
        assert Image.open(out).size == (size, size)

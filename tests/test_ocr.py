"""OCR over tesseract (glyphfuse.ocr.tesseract) and the ocr-rank folder ranking (glyphfuse.ocr.ranking + CLI)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from typer.testing import CliRunner

from glyphfuse.ocr import tesseract as ocr
from glyphfuse.cli import app
from glyphfuse.ocr.ranking import rank_folder

REPO = Path(__file__).resolve().parents[1]
FONT_CANDIDATES = [
    REPO / "fonts" / "DejaVuSans.ttf",
    REPO / "fonts" / "Roboto-Regular.ttf",
    REPO / "fonts" / "OpenSans-Regular.ttf",
    REPO / "fonts" / "DejaVuSerif.ttf",
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
]


def _font_path() -> Path:
    for path in FONT_CANDIDATES:
        if path.is_file():
            return path
    raise AssertionError(f"no test font found; expected one of {[str(p) for p in FONT_CANDIDATES]}")


def render(text: str, size: int = 128, background: int = 255, ink: int = 0) -> Image.Image:
    """Text centred on a size x size grayscale canvas, as large as fits with a small margin."""
    image = Image.new("L", (size, size), background)
    draw = ImageDraw.Draw(image)
    for font_size in range(size // 2, 4, -1):
        font = ImageFont.truetype(str(_font_path()), font_size)
        left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, align="center")
        if right - left <= 0.85 * size and bottom - top <= 0.85 * size:
            break
    x, y = (size - (right - left)) / 2 - left, (size - (bottom - top)) / 2 - top
    draw.multiline_text((x, y), text, fill=ink, font=font, align="center")
    return image


def test_upscale_factor_brings_small_images_to_target():
    assert ocr.upscale_factor(64) == 3
    assert ocr.upscale_factor(128) == 2
    assert ocr.upscale_factor(256) == 1
    assert ocr.upscale_factor(1000) == 1
    assert ocr.upscale_factor(4) == ocr.MAX_SCALE


def test_preprocess_makes_dark_text_on_light_and_upscales():
    prepared = ocr.preprocess(render("abc", 64, background=20, ink=230))
    assert prepared.mode == "L"
    assert prepared.width > 64 * 3  # upscaled x3, plus a border
    assert np.median(np.asarray(prepared)) > 128  # background became light


def test_read_images_reads_rendered_text_in_order_and_parallel():
    images = [render("hello\nworld"), render("glyph", background=30, ink=240), Image.new("L", (64, 64), 255)]
    one = ocr.read_images(images, processes=1)
    assert one == ["hello\nworld", "glyph", ""]
    assert ocr.read_images(images, processes=2) == one
    assert ocr.read_image(images[1].convert("RGB")) == "glyph"


def test_read_images_accepts_paths(tmp_path):
    path = tmp_path / "a.png"
    render("stone").save(path)
    assert ocr.read_images([str(path), path]) == ["stone", "stone"]


def test_form_feed_count_mismatch_falls_back_to_one_call_per_image(monkeypatch):
    real_run = ocr._run
    calls = []

    def run(command, on_page=None):
        calls.append(command[1])
        if command[1].endswith(".txt"):
            return "pages glued together without form feeds"
        return real_run(command, on_page)

    monkeypatch.setattr(ocr, "_run", run)
    assert ocr.read_images([render("apple"), render("river")], processes=1) == ["apple", "river"]
    assert len(calls) == 3  # the list-file call, then one call per image


def test_missing_tesseract_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ocr.OcrError, match="tesseract binary not found on PATH.*apt-get install tesseract-ocr"):
        ocr.check_tesseract()
    with pytest.raises(ocr.OcrError):
        ocr.read_images([render("x")])


def test_missing_tesseract_via_cli_exits_nonzero(tmp_path):
    render("apple").save(tmp_path / "a.png")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = dict(os.environ, PATH=str(empty))
    result = subprocess.run([sys.executable, "-m", "glyphfuse", "ocr-rank", str(tmp_path), "--prompt", "apple"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "tesseract binary not found on PATH" in result.stderr
    assert "Traceback" not in result.stderr


def _ranking_folder(root: Path) -> Path:
    """exact.png (exact text), typo.png (one typo), other.png (unrelated), broken.png (corrupt),
    orphan.png (no transcript). Transcripts through .txt files and metadata.jsonl."""
    root.mkdir(parents=True, exist_ok=True)
    prompt = "glyph fuse\nwrites text"
    render(prompt).save(root / "exact.png")
    render("glyph fuze\nwrites text").save(root / "typo.png")
    render("river\nstone").save(root / "other.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    render("orphan").save(root / "orphan.png")
    for name in ("exact", "typo", "broken"):
        (root / f"{name}.txt").write_text(prompt + "\n", encoding="utf-8")
    (root / "metadata.jsonl").write_text(json.dumps({"file_name": "other.png", "text": prompt}) + "\n", encoding="utf-8")
    return root


def test_rank_folder_orders_exact_typo_unrelated_and_reports_errors(tmp_path):
    rows = rank_folder(_ranking_folder(tmp_path), processes=2)
    assert [row["file"] for row in rows[:3]] == ["exact.png", "typo.png", "other.png"]
    assert rows[0]["similarity"] == 1.0 and rows[0]["exact"] and rows[0]["cer"] == 0.0
    assert rows[0]["similarity"] > rows[1]["similarity"] > rows[2]["similarity"]
    assert [row["rank"] for row in rows[:3]] == [1, 2, 3]
    errors = {row["file"]: row["error"] for row in rows[3:]}
    assert set(errors) == {"broken.png", "orphan.png"}
    assert "corrupt" in errors["broken.png"]
    assert "no transcript" in errors["orphan.png"]


def test_ocr_rank_cli_prompt_override_and_reports(tmp_path):
    folder = _ranking_folder(tmp_path / "images")
    json_path, csv_path = tmp_path / "out" / "rank.json", tmp_path / "rank.csv"
    result = CliRunner().invoke(app, ["ocr-rank", str(folder), "--prompt", "river\\nstone", "--top", "1",
                                      "--json", str(json_path), "--csv", str(csv_path), "--processes", "2"])
    assert result.exit_code == 0, result.output
    assert "other.png" in result.output and "broken.png" in result.output
    report = json.loads(json_path.read_text(encoding="utf-8"))
    assert report["prompt"] == "river\nstone"
    scored = [row for row in report["rows"] if row["error"] is None]
    assert [row["file"] for row in scored] == ["other.png"]  # --top 1
    assert scored[0]["ocr"] == "river\nstone" and scored[0]["exact"] is True
    # with --prompt every image has a prompt, so only the corrupt one is an error
    assert [row["file"] for row in report["rows"] if row["error"]] == ["broken.png"]
    with csv_path.open(newline="", encoding="utf-8") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert [row["file"] for row in csv_rows] == ["other.png", "broken.png"]
    assert csv_rows[0]["rank"] == "1" and csv_rows[1]["error"]


def test_ocr_rank_case_insensitive_flag(tmp_path):
    render("GLYPH").save(tmp_path / "a.png")
    strict = rank_folder(tmp_path, prompt="glyph")[0]
    folded = rank_folder(tmp_path, prompt="glyph", case_insensitive=True)[0]
    assert strict["ocr"] == "GLYPH" and strict["similarity"] < 1.0 and strict["cer"] == 1.0
    assert folded["similarity"] == 1.0 and folded["cer"] == 0.0
    assert strict["exact_ci"] and not strict["exact"]

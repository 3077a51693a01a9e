"""Synthetic font data (glyphfuse.data.fonts, glyphfuse.data.synth and its synth_* modules) and the synth-fonts CLI."""

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from glyphfuse.cli import app
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.fonts import discover_fonts, font_supports, load_font, missing_characters
from glyphfuse.data.synth import COMMON_WORDS, SynthSource, load_words, render_example, synthesize

FONTS = [str(path) for path in discover_fonts()]


def _source(size: int, color: bool = False, texts=None, seed: int = 0) -> SynthSource:
    return SynthSource(size=size, seed=seed, color=color, font_paths=FONTS, texts=texts, words=load_words())


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_fonts_folder_has_licensed_fonts_of_many_families():
    fonts_dir = Path(FONTS[0]).parent
    assert len(FONTS) >= 12
    families = {Path(path).stem.split("-")[0] for path in FONTS}
    assert len(families) >= 8, families
    licences = {path.stem.removeprefix("LICENSE-") for path in fonts_dir.glob("LICENSE-*.txt")}
    readme = (fonts_dir / "README.md").read_text(encoding="utf-8")
    for path in FONTS:
        name = Path(path).name
        assert name in readme, f"{name} is not listed in fonts/README.md"
    assert len(licences) >= 8


def test_font_coverage_rejects_missing_characters(tmp_path):
    roboto = next(path for path in FONTS if Path(path).name == "Roboto-Regular.ttf")
    assert font_supports(roboto, "Hello, world! 42%\nsecond line")
    assert not font_supports(roboto, "text \u4e2d")
    assert missing_characters(roboto, "a\u4e2db\U0001F600\u4e2d") == ["\u4e2d", "\U0001F600"]
    assert font_supports(load_font(roboto, 12), "abc")  # a loaded PIL font works too
    # a text file whose only line no font can draw is refused, naming the file
    text_file = tmp_path / "cjk.txt"
    text_file.write_text("\u4e2d\u6587\n", encoding="utf-8")
    with pytest.raises(GlyphfuseError, match="cjk.txt: no font"):
        synthesize(tmp_path / "out", 1, text_file=text_file, progress=False)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_missing_fonts_folder_names_the_option(tmp_path):
    with pytest.raises(GlyphfuseError, match="fonts folder"):
        discover_fonts(tmp_path / "nope")
    with pytest.raises(GlyphfuseError, match="no .ttf or .otf"):
        discover_fonts(tmp_path)


@pytest.mark.parametrize("size,color", [(32, False), (64, True), (128, False)])
def test_text_fits_inside_margin_and_never_touches_the_border(size, color):
    for index in range(60):
        rendered = render_example(_source(size, color), index)
        left, top, right, bottom = rendered.ink_bbox
        margin = rendered.margin
        assert margin <= left < right <= size - margin and margin <= top < bottom <= size - margin
        pixels = np.asarray(rendered.image)
        background = np.array(rendered.background, dtype=pixels.dtype)
        border = np.concatenate([pixels[:margin].reshape(-1, *pixels.shape[2:]), pixels[-margin:].reshape(-1, *pixels.shape[2:]),
                                 pixels[:, :margin].reshape(-1, *pixels.shape[2:]), pixels[:, -margin:].reshape(-1, *pixels.shape[2:])])
        assert (border == background).all(), f"ink in the margin of image {index}"
        # the ink found in the pixels lies inside the renderer's box (faint antialiasing may round away)
        ink = np.argwhere((pixels != background).reshape(size, size, -1).any(-1))
        assert len(ink) > 0
        assert ink.min(0).tolist() >= [top, left] and (ink.max(0) + 1).tolist() <= [bottom, right]
        assert 1 <= rendered.text.count("\n") + 1 <= 6 and rendered.text.strip()
        assert font_supports(rendered.font_path, rendered.text)


def test_contrast_and_text_variety():
    texts, fonts = [], set()
    for index in range(200):
        rendered = render_example(_source(128), index)
        assert abs(int(rendered.background) - int(rendered.foreground)) >= 100
        texts.append(rendered.text)
        fonts.add(rendered.font_path)
    joined = "\n".join(texts)
    assert re.search(r"[A-Z]", joined) and re.search(r"[a-z]", joined) and re.search(r"[0-9]", joined)
    assert re.search(r"[.,!?:;]", joined)
    assert len(set(texts)) == len(texts)
    assert len(fonts) >= 15


def test_text_file_lines_and_unsupported_characters(tmp_path):
    text_file = tmp_path / "lines.txt"
    text_file.write_text("Hello World\nfirst\\nsecond\n\u4e2d\u6587 only\n\n", encoding="utf-8")
    out = tmp_path / "out"
    summary = synthesize(out, 12, size=64, text_file=text_file, progress=False)
    assert summary.skipped_texts == 1
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 12
    seen = {row["text"].replace("\n", " ") for row in rows}
    assert seen <= {"Hello World", "first second"}  # wrapped lines may differ; no CJK line (no font has it)
    assert any("\n" in row["text"] for row in rows)


def test_byte_identical_for_any_worker_count_and_seeded(tmp_path):
    one, two, other = tmp_path / "w1", tmp_path / "w2", tmp_path / "seed1"
    synthesize(one, 12, size=48, seed=3, workers=1, progress=False)
    synthesize(two, 12, size=48, seed=3, workers=2, progress=False)
    synthesize(other, 12, size=48, seed=4, workers=1, progress=False)
    files_one, files_two = _files(one), _files(two)
    assert len(files_one) == 12 * 2 + 1
    assert files_one == files_two
    assert files_one["000000.png"] != _files(other)["000000.png"]
    rows = [json.loads(line) for line in (one / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["file_name"] for row in rows] == [f"{i:06d}.png" for i in range(12)]
    assert all(files_one[row["file_name"].replace(".png", ".txt")].decode("utf-8") == row["text"] for row in rows)


def test_refuses_non_empty_out_dir_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.png").write_bytes(b"x")
    (out / "notes.md").write_text("keep me")
    with pytest.raises(GlyphfuseError, match="not empty.*--overwrite"):
        synthesize(out, 2, size=32, progress=False)
    synthesize(out, 2, size=32, overwrite=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000000.txt", "000001.png", "000001.txt", "metadata.jsonl", "notes.md"]


def test_cli_synth_fonts(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["synth-fonts", "--help"])
    assert result.exit_code == 0 and "--count" in result.output and "Example" in result.output
    out = tmp_path / "cli"
    result = runner.invoke(app, ["synth-fonts", str(out), "--count", "5", "--size", "32", "--seed", "1", "--color"])
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.png"))) == 5 and (out / "metadata.jsonl").is_file()
    result = runner.invoke(app, ["synth-fonts", str(out), "--count", "5", "--size", "32"])
    assert result.exit_code != 0 and isinstance(result.exception, GlyphfuseError)


# ------------------------------------------------------------------------------------------------
# Legibility: tesseract must read the synthetic data (the data's real requirement)
# ------------------------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def _tesseract_batch(paths: list[Path], list_file: Path) -> subprocess.Popen:
    """One tesseract process reading many images (the model loads once): 2x bicubic upscale is
    done beforehand; page mode 6 (a block of text), dictionaries off."""
    import pytesseract

    list_file.write_text("".join(f"{path}\n" for path in paths), encoding="utf-8")
    command = [pytesseract.pytesseract.tesseract_cmd, str(list_file), "stdout", "--psm", "6", "-c", "load_system_dawg=0", "-c", "load_freq_dawg=0"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_THREAD_LIMIT": "1"})


def _read_pages(process: subprocess.Popen, count: int) -> list[str]:
    output, _ = process.communicate(timeout=120)
    pages = output.decode("utf-8").split("\f")  # tesseract separates pages with a form feed
    assert process.returncode == 0 and len(pages) in (count, count + 1), (process.returncode, len(pages))
    return pages[:count]


def test_tesseract_reads_synthetic_images(tmp_path):
    images = [render_example(_source(128, seed=7), index) for index in range(50)]
    paths = []
    for index, rendered in enumerate(images):
        path = tmp_path / f"{index:02d}.png"
        rendered.image.resize((256, 256), resample=3).save(path)  # 2x bicubic, as glyphfuse's OCR does
        paths.append(path)
    halves = [paths[:25], paths[25:]]
    processes = [_tesseract_batch(half, tmp_path / f"list{k}.txt") for k, half in enumerate(halves)]
    readings = [page for process, half in zip(processes, halves) for page in _read_pages(process, len(half))]
    cers = [_levenshtein(_normalise(ocr), _normalise(r.text)) / max(1, len(_normalise(r.text))) for ocr, r in zip(readings, images)]
    readable = sum(cer <= 0.1 for cer in cers) / len(cers)
    print(f"tesseract reads {readable:.0%} of 50 synthetic 128 px images with CER <= 0.1 (mean CER {np.mean(cers):.3f})")
    assert readable >= 0.8


def test_glyph_cache_measures_exact_ink_even_for_oversized_glyphs(monkeypatch):
    from PIL import Image, ImageDraw

    from glyphfuse.data import layout as synth_layout

    font = load_font(next(path for path in FONTS if Path(path).name == "DejaVuSerif.ttf"), 20)
    monkeypatch.setattr(synth_layout, "_GLYPHS", {})
    normal = synth_layout.get_glyph(font, "W")
    # a scratch canvas too small for the glyph must not cut it: the exact fallback measures it
    for side in (50, 30):  # glyph cut by the canvas edge / drawn entirely outside it
        tiny = Image.new("L", (side, side), 0)
        monkeypatch.setattr(synth_layout, "_SCRATCH", {20: (tiny, ImageDraw.Draw(tiny))})
        monkeypatch.setattr(synth_layout, "_GLYPHS", {})
        fallback = synth_layout.get_glyph(font, "W")
        assert fallback.bitmap is not None and fallback.bitmap.shape[0] >= normal.bitmap.shape[0]
        # same ink, possibly with blank rows/columns around it (PIL's box is not pixel-tight)
        top, left = normal.top - fallback.top, normal.left - fallback.left
        height, width = normal.bitmap.shape
        assert np.array_equal(fallback.bitmap[top : top + height, left : left + width], normal.bitmap)
        assert fallback.bitmap.sum() == normal.bitmap.sum()


def test_font_size_range_option(tmp_path):
    condensed = [path for path in FONTS if Path(path).name == "OpenSans-CondBold.ttf"]
    source = SynthSource(size=32, seed=3, color=False, font_paths=condensed, texts=["fox", "lemon"], words=load_words(), font_px=(12, 14))
    sizes = {render_example(source, index).font_size for index in range(40)}
    assert sizes <= {12, 13, 14} and len(sizes) >= 2  # only the asked sizes, and more than one of them
    with pytest.raises(GlyphfuseError, match="--font-size"):
        synthesize(tmp_path / "bad", 2, size=32, font_px=(20, 12))
    result = CliRunner().invoke(app, ["synth-fonts", str(tmp_path / "cli"), "--count", "3", "--size", "32", "--font-size", "big"])
    assert result.exit_code != 0 and isinstance(result.exception, GlyphfuseError) and "--font-size must look like" in str(result.exception)


# ------------------------------------------------------------------------------------------------
# Styles and data recipes (the layouts a small model learns to spell from)
# ------------------------------------------------------------------------------------------------


def _styled(style, count: int = 40, size: int | None = None, seed: int = 0):
    fonts = [path for path in FONTS if not style.fonts or Path(path).name in style.fonts]
    source = SynthSource(size=size or style.size, seed=seed, color=False, font_paths=fonts, words=load_words(), style=style)
    return [render_example(source, index) for index in range(count)]


def test_lines64_recipe_draws_left_aligned_lines_at_fixed_heights():
    from glyphfuse.data.synth import get_data_recipe

    style = get_data_recipe("lines64")
    examples = _styled(style, count=60)
    firsts, line_counts = set(), set()
    for example in examples:
        lines = example.text.split("\n")
        line_counts.add(len(lines))
        assert 1 <= len(lines) <= 2 and all(1 <= len(line.split()) <= 2 for line in lines)
        assert all(ch in "abcdefghijklmnopqrstuvwxyz " for ch in example.text.replace("\n", ""))
        pixels = np.asarray(example.image)
        assert pixels[0, 0] >= 200 and pixels.min() <= 60 + 40  # light background, dark text
        ink_rows = np.flatnonzero((pixels < pixels[0, 0] - 40).any(axis=1))
        firsts.add(int(np.flatnonzero((pixels < pixels[0, 0] - 40).any(axis=0))[0]))
        if len(lines) == 1:
            assert ink_rows[-1] < style.size // 2 + 4  # line 1 always sits in the upper half
        else:
            assert ink_rows[-1] > style.size // 2  # line 2 always below the middle
    assert line_counts == {1, 2}
    assert max(firsts) - min(firsts) <= 2  # every line starts at the same left margin


def test_random_fraction_mixes_random_strings_with_words():
    from glyphfuse.data.synth import SynthStyle

    words = set(load_words())
    none = _styled(SynthStyle(charset="lower", lines=(1, 1), tokens=(1, 1), font_px=(10, 10), size=64), count=30)
    half = _styled(SynthStyle(charset="lower", random_fraction=0.5, lines=(1, 1), tokens=(1, 1), font_px=(10, 10), size=64), count=60)
    assert all(example.text in words or example.text in {w.lower() for w in COMMON_WORDS} for example in none)
    strings = sum(example.text not in words for example in half)
    assert 15 <= strings <= 45  # about half are not words


def test_held_out_eval_tokens_are_never_rendered(monkeypatch):
    from glyphfuse.data import transcripts as synth_text
    from glyphfuse.data.prompts import load_prompts

    held_out = synth_text.held_out_tokens()
    for name in ("words", "lines2", "strings", "phrases", "multiline", "short", "cased", "signs", "alnum"):
        for prompt in load_prompts(name)[0]:
            keys = [synth_text.token_key(token) for token in prompt.split()]
            assert all(key in held_out for key in keys if any(char.isalpha() for char in key)), prompt
    assert "the" not in held_out  # the original test prompt's ordinary words are not held out
    assert "2" not in held_out and "18.75" not in held_out  # letterless tokens are not words to memorise
    # make very common tokens "held out": they must then never appear
    monkeypatch.setattr(synth_text, "held_out_tokens", lambda: frozenset({"the", "of", "and", "to", "a", "in"}))
    style = synth_text.SynthStyle(charset="lower", random_fraction=0.0, lines=(1, 2), tokens=(1, 2), font_px=(10, 10), size=64)
    texts = " ".join(example.text for example in _styled(style, count=150))
    assert not {"the", "of", "and", "to", "a", "in"} & set(texts.split())


def test_ascii_charset_writes_signs_within_the_line_limit():
    from glyphfuse.data.transcripts import CHARSETS, SIGN_PUNCTUATION, get_data_recipe

    style = get_data_recipe("lines128")
    examples = _styled(style, count=120)
    texts = [example.text for example in examples]
    assert all(1 <= len(text.split("\n")) <= 5 for text in texts)
    assert all(len(line) <= 16 for text in texts for line in text.split("\n"))
    joined = "".join(texts)
    assert set(joined) - {" ", "\n"} <= set(CHARSETS["ascii"])
    assert any(char.isupper() for char in joined) and any(char.isdigit() for char in joined)
    assert len(set(joined) & set(SIGN_PUNCTUATION)) >= 10  # most of the sign punctuation shows up
    assert max(len(text.split("\n")) for text in texts) == 5


def test_line_chars_is_checked():
    from glyphfuse.data.transcripts import SynthStyle

    with pytest.raises(GlyphfuseError, match="--line-chars"):
        SynthStyle(charset="ascii", line_chars=0)


def test_words_are_never_split_over_lines(tmp_path):
    text_file = tmp_path / "texts.txt"
    text_file.write_text("incomprehensibilities\nshort words here\n", encoding="utf-8")
    out = tmp_path / "out"
    synthesize(out, 20, size=32, text_file=text_file, progress=False, font_px=(10, 12))
    for line in (out / "metadata.jsonl").read_text().splitlines():
        tokens = json.loads(line)["text"].split()
        assert set(tokens) <= {"incomprehensibilities", "short", "words", "here"}, tokens  # no piece of a word


def test_cli_synth_fonts_recipe_and_layout_options(tmp_path):
    runner = CliRunner()
    out = tmp_path / "rec"
    result = runner.invoke(app, ["synth-fonts", str(out), "--recipe", "lines64", "--count", "6", "--lines", "1", "--align", "center"])
    assert result.exit_code == 0, result.output
    assert "64 px" in result.output
    texts = [json.loads(line)["text"] for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(texts) == 6 and all("\n" not in text for text in texts)
    for args, message in (
        (["--recipe", "nope"], "unknown data recipe"),
        (["--align", "diagonal"], "--align must be one of"),
        (["--lines", "two"], "--lines must look like"),
        (["--random-fraction", "1.5", "--charset", "lower"], "--random-fraction must be between"),
        (["--random-fraction", "0.5"], "needs --charset"),
        (["--font", "Missing.ttf"], "not in the fonts folder"),
    ):
        result = runner.invoke(app, ["synth-fonts", str(tmp_path / "bad"), "--count", "2", "--size", "32", *args])
        assert result.exit_code != 0 and isinstance(result.exception, GlyphfuseError), (args, result.output)
        assert message in str(result.exception) and "\n" not in str(result.exception), (args, result.exception)

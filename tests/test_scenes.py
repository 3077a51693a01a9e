"""Colour scenes: the controls (glyphfuse.core.controls), the scene painter and backgrounds
(glyphfuse.data.scenes), scene data end to end, and a colour model's conditioning."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from glyphfuse.cli import app
from glyphfuse.core.controls import (
    NAMED_COLORS, SCENE_KINDS, ControlBatch, SceneControls, color_hex, drop_controls, parse_color,
)
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.model import GlyphModel
from glyphfuse.core.tokenizer import tokenize
from glyphfuse.data.imagefolder import ImageTextDataset, scan_image_folder
from glyphfuse.data.scenes import MIN_CONTRAST_RATIO, BackgroundBank, contrast_ratio, paint_scene
from glyphfuse.data.synth import get_data_recipe, synthesize
from glyphfuse.sampling.generation import generate, resolve_controls
from helpers import micro_config, micro_scene_config, one_torch_thread, random_model  # noqa: F401 (fixture)


def _photos(folder: Path, count: int = 3) -> Path:
    """A folder of random 'photos' the project never saw, in several formats and modes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        array = (rng.random((90 + 10 * i, 120, 3)) * 255).astype(np.uint8)
        Image.fromarray(array).save(folder / f"photo{i}.jpg")
    Image.fromarray((rng.random((100, 100)) * 255).astype(np.uint8), mode="L").save(folder / "grey.png")
    Image.fromarray((rng.random((100, 100, 4)) * 255).astype(np.uint8), mode="RGBA").save(folder / "alpha.png")
    Image.fromarray((rng.random((80, 80)) * 65535).astype(np.uint16)).save(folder / "deep16.png")
    Image.fromarray((rng.random((90, 90, 3)) * 255).astype(np.uint8)).convert("P").save(folder / "palette.png")
    return folder


def _coverage(size: int = 64) -> np.ndarray:
    """An ink coverage: two bars of full ink, like two short lines of text."""
    coverage = np.zeros((size, size), np.uint8)
    coverage[20:28, 8:40] = 255
    coverage[34:42, 8:30] = 255
    return coverage


# -- controls --------------------------------------------------------------------------------------


def test_colours_parse_from_names_and_hex_and_refuse_anything_else():
    assert parse_color("#FF8000") == (255, 128, 0)
    assert parse_color("ff8000") == (255, 128, 0)
    assert parse_color(" Navy ") == NAMED_COLORS["navy"]
    assert color_hex((255, 128, 0)) == "#ff8000"
    for bad in ("#ff80", "reddish", "#gg0000", ""):
        with pytest.raises(GlyphfuseError, match="neither #RRGGBB nor a colour name"):
            parse_color(bad)


def test_controls_round_trip_through_a_metadata_row_and_bad_rows_are_named():
    controls = SceneControls("sign", (255, 255, 255), (200, 10, 10))
    assert SceneControls.from_row({"text": "x", **controls.to_row()}, "row") == controls
    assert SceneControls.from_row({"text": "x"}, "row") is None
    with pytest.raises(GlyphfuseError, match="row: unknown kind 'poster'"):
        SceneControls.from_row({"kind": "poster"}, "row")
    with pytest.raises(GlyphfuseError, match="text_color"):
        SceneControls.from_row({"text_color": 12}, "row")
    with pytest.raises(GlyphfuseError, match="unknown style 'poster'"):
        SceneControls.from_options(style="poster")


def test_control_batch_encodes_kinds_colours_and_what_is_missing():
    batch = ControlBatch.build([SceneControls("caption", (255, 0, 0), None), None], SCENE_KINDS)
    assert batch.kind_ids.tolist() == [SCENE_KINDS.index("caption") + 1, 0]
    assert batch.given.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert batch.colors[0, :3].tolist() == [1.0, -1.0, -1.0]
    assert batch.colors[1].abs().sum() == 0


def test_control_dropout_drops_everything_with_the_text_and_each_control_at_its_rate():
    controls = [SceneControls("sign", (1, 2, 3), (4, 5, 6))] * 400
    generator = torch.Generator().manual_seed(0)
    kept = drop_controls(controls, [True] * 200 + [False] * 200, generator, each=0.25)
    assert all(item is None for item in kept[:200])
    dropped_kinds = sum(item.kind is None for item in kept[200:])
    assert 25 <= dropped_kinds <= 75  # ~50 of 200 at rate 0.25
    assert drop_controls(controls[:5], [False] * 5, generator, each=0.0) == controls[:5]


# -- the painter and the backgrounds --------------------------------------------------------------


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_every_kind_paints_legible_text_in_the_colour_it_records(kind, tmp_path):
    bank = BackgroundBank.scan(_photos(tmp_path / "photos"))
    coverage = _coverage()
    for seed in range(4):
        painted = paint_scene(kind, coverage, random.Random(seed), bank)
        image = np.asarray(painted.image).astype(int)
        assert painted.image.mode == "RGB" and painted.image.size == (64, 64)
        assert painted.controls.kind == kind
        ink = image[coverage == 255]
        assert np.abs(np.median(ink, axis=0) - np.array(painted.controls.text_color)).max() <= 1
        assert painted.contrast >= MIN_CONTRAST_RATIO
        if kind != "caption":  # a caption's outline stands between the text and the photo
            behind = image[60:, 50:] if kind in ("plain", "paper") else None
            if behind is not None:
                assert contrast_ratio(painted.controls.text_color, np.median(behind.reshape(-1, 3), axis=0)) >= MIN_CONTRAST_RATIO * 0.8


def test_seeds_give_different_pictures_of_one_kind(tmp_path):
    bank = BackgroundBank.scan(_photos(tmp_path / "photos"))
    images = [np.asarray(paint_scene("sign", _coverage(), random.Random(seed), bank).image) for seed in range(3)]
    assert not np.array_equal(images[0], images[1]) and not np.array_equal(images[1], images[2])


def test_a_folder_of_unseen_photos_works_and_bad_files_are_skipped_and_named(tmp_path):
    folder = _photos(tmp_path / "mine")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.pdf").write_bytes(b"%PDF-1.4")
    Image.new("RGB", (20, 20)).save(folder / "tiny.png")
    bank = BackgroundBank.scan(folder)
    assert len(bank.photos) == 7  # 3 jpg + grey, alpha, 16-bit and palette png
    skipped = "\n".join(bank.skipped)
    for name in ("broken.jpg", "notes.pdf", "tiny.png"):
        assert name in skipped
    for seed in range(12):  # every photo, whatever its mode, crops to RGB
        assert bank.crop(random.Random(seed), 32).shape == (32, 32, 3)


def test_a_backgrounds_folder_without_pictures_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GlyphfuseError, match="has no usable pictures"):
        BackgroundBank.scan(tmp_path / "empty")
    with pytest.raises(GlyphfuseError, match="does not exist"):
        BackgroundBank.scan(tmp_path / "missing")


def test_the_shipped_backgrounds_are_listed_with_their_licences():
    bank = BackgroundBank.scan()
    readme = (bank.folder / "README.md").read_text(encoding="utf-8")
    assert not bank.skipped
    assert len(bank.photos) >= 15 and len(bank.textures) >= 5
    for path in bank.photos + bank.textures:
        assert Path(path).name in readme, f"{Path(path).name} is not listed in backgrounds/README.md"
    total = sum(Path(path).stat().st_size for path in bank.photos + bank.textures)
    assert total < 4_000_000  # the repository stays light


# -- scene data end to end ------------------------------------------------------------------------


def test_scene_data_records_its_controls_and_is_the_same_for_any_worker_count(tmp_path):
    style = get_data_recipe("scenes128")
    photos = _photos(tmp_path / "photos")
    one = synthesize(tmp_path / "one", 12, size=64, seed=3, style=style, font_px=(8, 8), backgrounds=photos, progress=False)
    synthesize(tmp_path / "two", 12, size=64, seed=3, style=style, font_px=(8, 8), backgrounds=photos, workers=2, progress=False)
    assert one.count == 12
    for name in sorted(path.name for path in (tmp_path / "one").iterdir()):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    rows = [json.loads(line) for line in (tmp_path / "one" / "metadata.jsonl").read_text().splitlines()]
    assert {row["kind"] for row in rows} <= set(SCENE_KINDS) and len({row["kind"] for row in rows}) >= 3
    examples, problems = scan_image_folder(tmp_path / "one")
    assert not problems and all(example.controls is not None for example in examples)
    assert Image.open(examples[0].image_path).mode == "RGB"
    dataset = ImageTextDataset(tmp_path / "one", 64, 3, log=False)
    image, text, controls = dataset[0]
    assert image.shape == (3, 64, 64) and controls == examples[0].controls


def test_synth_fonts_cli_takes_kinds_and_backgrounds_and_names_bad_files(tmp_path):
    photos = _photos(tmp_path / "photos")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "data"
    result = CliRunner().invoke(app, ["synth-fonts", str(out), "--recipe", "scenes128", "--size", "64", "--font-size", "8",
                                      "--count", "6", "--kinds", "sign,caption", "--backgrounds", str(photos), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "broken.png" in result.output and "skipped" in result.output
    kinds = {json.loads(line)["kind"] for line in (out / "metadata.jsonl").read_text().splitlines()}
    assert kinds <= {"sign", "caption"}
    bad = CliRunner().invoke(app, ["synth-fonts", str(tmp_path / "x"), "--recipe", "scenes128", "--kinds", "poster", "--count", "2"])
    assert bad.exit_code != 0 and isinstance(bad.exception, GlyphfuseError) and "poster" in str(bad.exception)
    grey = CliRunner().invoke(app, ["synth-fonts", str(tmp_path / "y"), "--recipe", "lines128", "--backgrounds", str(photos), "--count", "2"])
    assert grey.exit_code != 0 and "--backgrounds is for colour scenes" in str(grey.exception)


def test_a_metadata_row_with_a_bad_kind_is_skipped_and_named(tmp_path):
    Image.new("RGB", (32, 32), "white").save(tmp_path / "a.png")
    Image.new("RGB", (32, 32), "white").save(tmp_path / "b.png")
    rows = [{"file_name": "a.png", "text": "hi", "kind": "poster"}, {"file_name": "b.png", "text": "ok", "kind": "sign"}]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    examples, problems = scan_image_folder(tmp_path)
    assert [example.text for example in examples] == ["ok"]
    assert any("unknown kind 'poster'" in problem for problem in problems)


# -- the colour model -----------------------------------------------------------------------------


def test_a_fresh_colour_model_starts_blind_to_its_controls_and_then_reads_them():
    config = micro_scene_config()
    torch.manual_seed(0)
    model = GlyphModel(config).eval()
    x = torch.randn(2, 3, 16, 16)
    t = torch.tensor([10.0, 500.0])
    text = tokenize(["ab", "cd"], config.text.max_length, max_lines=config.text.max_lines)
    red = ControlBatch.build([SceneControls("sign", (255, 0, 0), None)] * 2, config.scene_kinds)
    with torch.no_grad():
        assert torch.equal(model(x, t, text, controls=red), model(x, t, text))  # zero-initialised: no effect yet
    model = random_model(config)
    blue = ControlBatch.build([SceneControls("sign", (0, 0, 255), None)] * 2, config.scene_kinds)
    plain = ControlBatch.build([SceneControls("plain", (255, 0, 0), None)] * 2, config.scene_kinds)
    with torch.no_grad():
        out_red, out_blue, out_plain = (model(x, t, text, controls=c) for c in (red, blue, plain))
    assert not torch.allclose(out_red, out_blue) and not torch.allclose(out_red, out_plain)


def test_generate_draws_a_kind_per_seed_and_takes_given_controls():
    config = micro_scene_config()
    chosen = resolve_controls(None, config, 12, seed=0)
    assert len({item.kind for item in chosen}) >= 3  # random kinds, one per image
    assert resolve_controls(None, config, 12, seed=0) == chosen  # the same seed, the same kinds
    given = resolve_controls(SceneControls("paper", (0, 0, 0), None), config, 3, seed=5)
    assert {item.kind for item in given} == {"paper"} and given[0].text_color == (0, 0, 0)
    model = random_model(config)
    images = generate(model, config, ["ab", "ab"], steps=2, seed=0, style="caption", text_color="#ffffff")
    assert images.shape == (2, 3, 16, 16)
    again = generate(model, config, ["ab"], steps=2, seed=0, style="caption", text_color="#ffffff")
    assert torch.equal(images[:1], again)
    other = generate(model, config, ["ab"], steps=2, seed=0, style="plain", text_color="#ffffff")
    assert not torch.equal(other, again)


def test_a_grey_model_refuses_scene_controls_in_one_line():
    config = micro_config()
    model = random_model(config)
    with pytest.raises(GlyphfuseError, match="has no scene controls"):
        generate(model, config, ["ab"], steps=2, style="sign")
    with pytest.raises(GlyphfuseError, match="unknown style"):
        generate(model, config, ["ab"], steps=2, style="poster")


def test_a_colour_model_trains_on_scene_data(tmp_path):
    from glyphfuse.training.loop import build_train_config, train

    style = get_data_recipe("scenes128").replace(lines=(1, 1), tokens=(1, 1), string_length=(2, 3), line_chars=3)
    synthesize(tmp_path / "data", 16, size=32, seed=0, style=style, font_px=(8, 8),
               backgrounds=_photos(tmp_path / "photos"), progress=False)
    config = micro_scene_config()
    config.image_size = 32
    train_config = build_train_config(tmp_path / "data", overrides={
        "model": config.to_dict(), "batch_size": 4, "max_steps": 3, "lr": 1e-3, "warmup_steps": 1, "sample_every": 0,
        "checkpoint_every": 0, "seed": 0, "device": "cpu"})
    result = train(train_config, tmp_path / "run")
    assert result.step == 3 and result.checkpoint is not None
    assert result.model.control_embed.colors[2].weight.abs().sum() > 0  # the controls got gradients


# -- reading colour scenes --------------------------------------------------------------------------


def test_colour_pictures_go_to_the_scene_reader_and_grey_ones_to_tesseract():
    from glyphfuse.ocr.reader import has_colour

    assert not has_colour(Image.new("L", (32, 32), 128))
    assert not has_colour(Image.new("RGB", (32, 32), (90, 90, 90)))  # grey saved as RGB stays grey
    assert has_colour(Image.new("RGB", (32, 32), (200, 30, 30)))


@pytest.mark.parametrize("kind", ["sign", "caption"])
def test_the_scene_reader_reads_words_over_photos_that_tesseract_cannot(kind):
    from glyphfuse.ocr import reader, tesseract

    style = get_data_recipe("scenes128").replace(scene_kinds=(kind,))
    from glyphfuse.data.synth import SynthSource, style_fonts, load_words

    words = ["PELICAN", "marmalade", "Quokka"]
    source = SynthSource(size=128, seed=0, color=True, font_paths=style_fonts(None, style), texts=words, words=load_words(),
                         style=style, backgrounds=BackgroundBank.scan())
    from glyphfuse.data.render import render_example

    rendered = [render_example(source, i) for i in range(6)]
    read = reader.read_images([r.image for r in rendered])
    assert sum(text == r.text for text, r in zip(read, rendered)) >= 5, list(zip(read, [r.text for r in rendered]))
    by_tesseract = tesseract.read_images([r.image for r in rendered])
    assert sum(text == r.text for text, r in zip(by_tesseract, rendered)) <= 3  # why the scene reader exists

"""Image-folder datasets (glyphfuse.data.imagefolder): writing, scanning, and skipping broken examples."""

import json
import logging

import pytest
import torch
from PIL import Image

from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.imagefolder import METADATA_FILE, ImageTextDataset, MetadataWriter, scan_image_folder, write_example


def _image(value: int = 200, size: int = 24) -> Image.Image:
    return Image.new("L", (size, size), value)


def test_write_example_and_metadata_round_trip(tmp_path):
    with MetadataWriter(tmp_path) as meta:
        for index, text in enumerate(["one line", "two\nlines", "üñíçødé ✓"]):
            name = write_example(tmp_path, f"{index:03d}", _image(50 * index), text)
            meta.write(name, text)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
    assert (tmp_path / "001.txt").read_text(encoding="utf-8") == "two\nlines"
    rows = [json.loads(line) for line in (tmp_path / METADATA_FILE).read_text(encoding="utf-8").splitlines()]
    assert rows[2] == {"file_name": "002.png", "text": "üñíçødé ✓"}
    examples, problems = scan_image_folder(tmp_path)
    assert problems == []
    assert [(e.image_path.name, e.text) for e in examples] == [("000.png", "one line"), ("001.png", "two\nlines"), ("002.png", "üñíçødé ✓")]


def test_metadata_writer_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with MetadataWriter(tmp_path) as meta:
            meta.write("a.png", "a")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_txt_pairs_without_metadata_and_problems_by_file_name(tmp_path):
    _image().save(tmp_path / "good.png")
    (tmp_path / "good.txt").write_text("hello\r\nworld\n", encoding="utf-8")  # CRLF + editor newline
    _image().save(tmp_path / "empty.png")
    (tmp_path / "empty.txt").write_text(" \n", encoding="utf-8")
    _image().save(tmp_path / "orphan.png")
    (tmp_path / "badutf.png").write_bytes((tmp_path / "good.png").read_bytes())
    (tmp_path / "badutf.txt").write_bytes(b"\xff\xfe\xfa")
    (tmp_path / METADATA_FILE).write_text('{"file_name": "gone.png", "text": "x"}\nnot json\n', encoding="utf-8")
    examples, problems = scan_image_folder(tmp_path)
    assert [(e.image_path.name, e.text) for e in examples] == [("good.png", "hello\nworld")]
    report = "\n".join(problems)
    assert "empty.png: empty transcript" in report
    assert "orphan.png: no transcript" in report
    assert "badutf.txt: unreadable transcript" in report
    assert "gone.png: listed in metadata.jsonl but the image is missing" in report
    assert f"{METADATA_FILE}:2: bad metadata row" in report
    with pytest.raises(GlyphfuseError, match="does not exist"):
        scan_image_folder(tmp_path / "missing")


def _folder_with_truncated_png(tmp_path):
    for index in range(3):
        write_example(tmp_path, f"ok{index}", _image(60 * index), f"text {index}")
    full = (tmp_path / "ok0.png").read_bytes()
    _image(10, size=64).save(tmp_path / "broken.png")
    (tmp_path / "broken.png").write_bytes((tmp_path / "broken.png").read_bytes()[:60])  # truncated mid-stream
    (tmp_path / "broken.txt").write_text("broken", encoding="utf-8")
    write_example(tmp_path, "blank", _image(), "")  # empty transcript
    assert len(full) > 60


def test_scan_can_check_images_and_skips_truncated_png(tmp_path):
    _folder_with_truncated_png(tmp_path)
    examples, problems = scan_image_folder(tmp_path, check_images=True)
    assert sorted(e.image_path.name for e in examples) == ["ok0.png", "ok1.png", "ok2.png"]
    assert any("broken.png: unreadable or corrupt image" in p for p in problems)
    assert any("blank.png: empty transcript" in p for p in problems)


def test_dataset_skips_truncated_png_at_load_time_with_message(tmp_path, caplog):
    _folder_with_truncated_png(tmp_path)
    dataset = ImageTextDataset(tmp_path, image_size=16, channels=1)
    assert len(dataset) == 4  # broken.png is only discovered when loaded
    assert any("blank.png: empty transcript" in p for p in dataset.problems)
    broken = [e.image_path.name for e in dataset.examples].index("broken.png")
    with caplog.at_level(logging.WARNING, logger="glyphfuse.data.imagefolder"):
        items = [dataset[i] for i in range(len(dataset))]  # a whole epoch: no crash
        again = dataset[broken]
    assert any("broken.png" in record.getMessage() and "corrupt" in record.getMessage() for record in caplog.records)
    assert sum("broken.png" in p for p in dataset.problems) == 1  # reported once, even when asked again
    assert again[1] != "broken" and items[broken][1] != "broken"
    for image, text, controls in items:
        assert controls is None  # a grey folder has no scene controls
        assert image.shape == (1, 16, 16) and image.dtype == torch.float32
        assert -1.0 <= image.min() and image.max() <= 1.0 and text.startswith("text ")


def test_dataset_with_no_usable_examples_is_a_clear_error(tmp_path):
    write_example(tmp_path, "blank", _image(), "")
    with pytest.raises(GlyphfuseError, match="no usable image"):
        ImageTextDataset(tmp_path, image_size=16)

"""``glyphfuse edit``: pictures of every kind in and out, the box geometry, only the box changes,
and every hostile input gives one line and exit 1. Micro models (16 px) on the CPU."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glyphfuse.core.checkpoint import save_checkpoint
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.synth import FRAME_RECIPE, recipe_text_frame
from glyphfuse.editing import edit_picture, open_picture, parse_box, save_picture
from glyphfuse.editing.geometry import FRAME_PAD, check_box, feather_weights, plan_edit
from glyphfuse.training.inpaint import inpaint_warm_start
from helpers import micro_scene_config, one_torch_thread, random_model, run_cli  # noqa: F401 (one_torch_thread: autouse fixture)


def photo(width: int = 96, height: int = 64, seed: int = 0) -> Image.Image:
    """A smooth colour picture with some texture."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 / width, ys * 255 / height, (xs + ys) * 127 / (width + height)], axis=2)
    return Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="module")
def inpainter(tmp_path_factory):
    base_config = micro_scene_config()
    model, config = inpaint_warm_start(random_model(base_config), base_config)
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "inpaint", model, config)
    return model.eval(), config, Path(path)


def outside(a: np.ndarray, box) -> np.ndarray:
    x, y, w, h = box
    keep = np.ones(a.shape[:2], bool)
    keep[y : y + h, x : x + w] = False
    return a[keep]


# -- geometry -----------------------------------------------------------------------------------


def test_parse_and_check_box():
    assert parse_box("4, 5,60,30") == (4, 5, 60, 30)
    for bad in ("4,5,60", "a,b,c,d", "1,2,0,5", "-1,2,3,4", "1.5,2,3,4"):
        with pytest.raises(GlyphfuseError, match="--box"):
            parse_box(bad)
    assert check_box((10, 10, 50, 20), (96, 64), "hi") == (10, 10, 60, 30)
    with pytest.raises(GlyphfuseError, match="outside the 96x64 picture"):
        check_box((60, 10, 50, 20), (96, 64), "hi")
    with pytest.raises(GlyphfuseError, match="too small for 2 line"):
        check_box((0, 0, 40, 12), (96, 64), "hi\nyou")


@pytest.mark.parametrize("box", [(100, 50, 300, 80), (10, 10, 40, 200), (0, 0, 1000, 30), (500, 300, 24, 12)])
def test_plan_puts_the_padded_frame_inside_the_box(box):
    frame = recipe_text_frame(FRAME_RECIPE, 128)("OPEN 24h")
    x, y, w, h = box
    plan = plan_edit((x, y, x + w, y + h), frame, 128)
    s = plan.scale
    # the frame, mapped back to picture px, lies inside the box (within a pixel)
    fx0, fy0 = plan.crop[0] + (frame[0] - FRAME_PAD) / s, plan.crop[1] + (frame[1] - FRAME_PAD) / s
    fx1, fy1 = plan.crop[0] + (frame[2] + FRAME_PAD) / s, plan.crop[1] + (frame[3] + FRAME_PAD) / s
    assert x - 1 <= fx0 and y - 1 <= fy0 and fx1 <= x + w + 1 and fy1 <= y + h + 1
    assert 0 <= plan.mask[0] < plan.mask[2] <= 128 and 0 <= plan.mask[1] < plan.mask[3] <= 128
    assert (plan.covered < 1) == (box in ((0, 0, 1000, 30), (10, 10, 40, 200)))  # far wider / taller than one line needs


def test_feather_is_zero_outside_and_ramps_inside():
    weights = feather_weights(40, 20, feather=3)
    assert weights.shape == (20, 40) and weights.max() == 1 and 0 < weights[0, 0] < weights[5, 5] == 1


# -- pictures in and out ------------------------------------------------------------------------


def picture_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def every_kind_of_picture() -> dict[str, bytes]:
    rgb = photo()
    grey16 = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)  # mode I;16
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (64, 1))))
    rotated = picture_bytes(rgb, "JPEG", exif=_orientation_exif(6))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    transparent = palette.copy()
    transparent.info["transparency"] = 0
    return {
        "jpeg": picture_bytes(rgb, "JPEG", quality=90), "png": picture_bytes(rgb, "PNG"), "webp": picture_bytes(rgb, "WEBP"),
        "grey": picture_bytes(rgb.convert("L"), "PNG"), "grey-alpha": picture_bytes(rgb.convert("LA"), "PNG"),
        "rgba": picture_bytes(rgba, "PNG"), "palette": picture_bytes(palette, "PNG"), "palette-transparent": picture_bytes(transparent, "PNG"),
        "16-bit": picture_bytes(grey16, "PNG"), "cmyk": picture_bytes(rgb.convert("CMYK"), "JPEG"), "exif-rotated": rotated,
        "1-bit": picture_bytes(rgb.convert("1"), "PNG"), "tiff": picture_bytes(rgb, "TIFF"), "gif": picture_bytes(palette, "GIF"),
    }


def _orientation_exif(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def test_every_kind_of_picture_opens_and_edits_only_inside_the_box(inpainter, tmp_path):
    model, config, _ = inpainter
    box = (20, 10, 60, 24)
    for kind, data in every_kind_of_picture().items():
        picture = open_picture(data, name=kind)
        assert picture.rgb.mode == "RGB"
        if kind == "exif-rotated":
            assert picture.size == (64, 96)  # orientation 6: turned upright
            continue
        assert picture.size == (96, 64), kind
        result = edit_picture(picture, "hi", box, model=model, config=config, steps=2)
        assert result.image.mode == picture.image.mode and result.image.size == picture.size, kind
        before, after = np.asarray(picture.image), np.asarray(result.image)
        assert np.array_equal(outside(before, box), outside(after, box)), kind
        assert not np.array_equal(before, after), kind
        if kind in ("png", "grey", "rgba", "16-bit", "cmyk", "tiff"):
            path = save_picture(result.image, tmp_path / f"{kind}.{'tif' if kind in ('cmyk', 'tiff') else 'png'}")
            reread = np.asarray(open_picture(path).image)
            assert np.array_equal(outside(reread, box), outside(before, box)), kind
    assert open_picture(every_kind_of_picture()["16-bit"]).image.mode == "I;16"
    assert open_picture(every_kind_of_picture()["rgba"]).image.mode == "RGBA"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height and holds a few bytes of data (a decompression bomb's header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def animated_gif() -> bytes:
    frames = [photo(seed=i).convert("P") for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


# -- the command: hostile inputs ----------------------------------------------------------------


def test_edit_command_writes_the_picture(inpainter, tmp_path, monkeypatch, capsys):
    _, _, checkpoint = inpainter
    source = tmp_path / "in.png"
    photo().save(source)
    out = tmp_path / "out.png"
    code, stdout, err = run_cli(monkeypatch, capsys, "edit", source, "hi\\nyou", "--box", "10,8,70,40", "-o", out, "-c", checkpoint, "--steps", "2",
                                "--no-progress")
    assert code == 0, err
    assert "wrote" in stdout and out.is_file()
    assert np.array_equal(outside(np.asarray(Image.open(out)), (10, 8, 70, 40)), outside(np.asarray(photo()), (10, 8, 70, 40)))


def test_hostile_inputs_give_one_line_and_exit_1(inpainter, tmp_path, monkeypatch, capsys):
    _, _, checkpoint = inpainter
    good = tmp_path / "good.png"
    photo().save(good)
    files = {
        "not-an-image.png": b"hello, this is text",
        "truncated.png": picture_bytes(photo(), "PNG")[:300],
        "animated.gif": animated_gif(),
        "bomb.png": png_header_only(30000, 30000),
        "empty.jpg": b"",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    cases = [
        ([tmp_path / "not-an-image.png", "hi", "--box", "1,1,40,20"], "not a picture"),
        ([tmp_path / "truncated.png", "hi", "--box", "1,1,40,20"], "truncated"),
        ([tmp_path / "animated.gif", "hi", "--box", "1,1,40,20"], "animated"),
        ([tmp_path / "bomb.png", "hi", "--box", "1,1,40,20"], "40 Mpx"),
        ([tmp_path / "empty.jpg", "hi", "--box", "1,1,40,20"], "not a picture"),
        ([tmp_path / "missing.png", "hi", "--box", "1,1,40,20"], "no such file"),
        ([tmp_path, "hi", "--box", "1,1,40,20"], "folder"),
        ([good, "hi", "--box", "80,50,40,20"], "outside the 96x64 picture"),
        ([good, "hello\\nworld", "--box", "1,1,12,8"], "too small"),
        ([good, "hi", "--box", "1,1,40"], "--box"),
        ([good, "hi"], "--box X,Y,W,H is needed"),
        ([good, "   ", "--box", "1,1,40,20"], "empty"),
    ]
    for args, needle in cases:
        code, _, err = run_cli(monkeypatch, capsys, "edit", *args, "-o", tmp_path / "out.png", "-c", checkpoint, "--steps", "1", "--no-progress")
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1 and "Traceback" not in err and lines and lines[-1].startswith("error: ") and needle in err, (args, err)
    code, _, err = run_cli(monkeypatch, capsys, "edit", good, "hi", "--box", "1,1,40,20", "-o", good, "-c", checkpoint)
    assert code == 1 and "is the input picture" in err
    code, _, err = run_cli(monkeypatch, capsys, "edit", good, "hi", "--box", "1,1,40,20", "-o", tmp_path / "out.xyz", "-c", checkpoint)
    assert code == 1 and "unknown picture file extension" in err

"""How an edit's drawing becomes the box's pixels (glyphfuse.editing.compose): the seamless
correction, the painter's letters taken out of its background, legible ink laid on sharp."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.scenes import MIN_CONTRAST_RATIO, contrast_ratio
from glyphfuse.editing import edit_picture
from glyphfuse.editing.compose import background_layer, compose_layers, fill_holes, legible_against, painted_ink, seamless_offset
from glyphfuse.editing.edit import TYPESET_INK_SCALE, ink_sharpener
from glyphfuse.editing.pictures import Picture
from glyphfuse.training.inpaint import inpaint_warm_start
from helpers import micro_config, micro_scene_config, one_torch_thread, random_model  # noqa: F401 (one_torch_thread: autouse fixture)


def laplacian(values: np.ndarray) -> np.ndarray:
    """The discrete Laplacian of the interior pixels (h-2, w-2, C)."""
    return (values[:-2, 1:-1] + values[2:, 1:-1] + values[1:-1, :-2] + values[1:-1, 2:] - 4 * values[1:-1, 1:-1])


def test_the_seamless_offset_meets_the_picture_at_the_border_and_is_harmonic():
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:60, 0:80]
    picture = np.stack([xs * 2.0, ys * 3.0, 100 + xs - ys], axis=2) + rng.normal(0, 1, (60, 80, 3))
    box = (20, 10, 61, 43)  # left, top, right, bottom
    region = np.full((33, 41, 3), 200.0) + rng.normal(0, 5, (33, 41, 3))  # a bright panel with texture
    offset = seamless_offset(region, picture, box)
    moved = region + offset
    assert np.abs(laplacian(offset)).max() < 1e-6  # harmonic: adds no detail of its own
    # the border pixels now step onto the picture about as the picture steps by itself
    across = np.abs(moved[:, 0] - picture[10:43, 19]).mean()
    before = np.abs(region[:, 0] - picture[10:43, 19]).mean()
    assert across < 8 and before > 100
    # the detail of the region is kept exactly: only a smooth function was added
    assert np.allclose(laplacian(moved), laplacian(region))


def test_a_region_that_already_continues_the_picture_moves_less_than_a_step():
    ys, xs = np.mgrid[0:40, 0:50]
    picture = np.stack([xs * 3.0, ys * 2.0, xs + ys + 10.0], axis=2)  # steps of 3, 2 and 1 a pixel
    box = (10, 5, 40, 30)
    offset = seamless_offset(picture[5:30, 10:40].copy(), picture, box)
    steps = np.array([3.0, 2.0, 2.0])  # the largest step of each channel
    assert np.all(np.abs(offset).max(axis=(0, 1)) <= steps)  # the border meets the outside pixel: one step at most
    assert np.all(np.abs(offset[12, 15]) < 0.5 * steps)  # and less in the middle


def test_a_box_on_the_picture_edge_has_no_outside_there():
    picture = np.zeros((30, 30, 3))
    offset = seamless_offset(np.full((30, 10, 3), 50.0), picture, (0, 0, 10, 30))  # touches left, top, bottom
    assert np.all(offset[:, -1] < -20) and np.all(np.abs(offset[:, 0]) < np.abs(offset[:, -1]))


def test_panel_says_how_much_of_the_drawn_backing_shows():
    rng = np.random.default_rng(1)
    picture = rng.uniform(0, 255, (40, 60, 3))
    box = (10, 8, 50, 30)
    drawn = np.full((22, 40, 3), 30.0)
    drawn[5:15, 10:30] = 220.0  # a bright panel inside
    filled = seamless_offset(np.zeros_like(drawn), picture, box)
    none = compose_layers(drawn, np.zeros((22, 40)), None, picture, box, ring_px=2, panel=0.0)
    full = compose_layers(drawn, np.zeros((22, 40)), None, picture, box, ring_px=2, panel=1.0)
    assert np.allclose(none, np.clip(filled, 0, 255))  # the surroundings filled in, nothing of the panel
    assert np.allclose(full, np.clip(drawn + seamless_offset(drawn, picture, box), 0, 255))
    assert full[10, 20].mean() - full[1, 1].mean() > 100 and abs(none[10, 20].mean() - none[1, 1].mean()) < 60


def test_the_background_layer_takes_the_letters_out():
    drawing = torch.empty(3, 32, 32)
    drawing[:] = torch.tensor([0.2, -0.4, 0.6])[:, None, None]
    coverage = torch.zeros(32, 32)
    coverage[10:20, 8:12] = 1.0  # a letter's stroke
    coverage[10:20, 12] = 0.4  # its soft edge
    drawing[:, coverage > 0] = -0.9  # in dark ink
    background = background_layer(drawing, coverage)
    assert torch.allclose(background, drawing[:, :1, :1].expand(3, 32, 32), atol=1e-4)
    assert torch.allclose(painted_ink(drawing, coverage), torch.full((3,), -0.9))
    assert painted_ink(drawing, torch.zeros(32, 32)) is None


def test_fill_holes_reaches_the_middle_of_a_large_hole():
    image = torch.ones(1, 40, 40)
    hole = torch.zeros(40, 40, dtype=torch.bool)
    hole[5:35, 5:35] = True
    image[0, hole] = -5.0
    filled = fill_holes(image, hole, sigma=1.0)
    assert torch.allclose(filled, torch.ones(1, 40, 40), atol=1e-4)


def test_ink_is_made_legible_against_the_background_it_lands_on():
    background = np.full((20, 40, 3), 120.0)
    alpha = np.zeros((20, 40))
    alpha[6:14, 5:30] = 1.0
    grey_ink = torch.tensor([0.0, 0.0, 0.0])  # 127.5: no contrast with 120
    ink = legible_against(grey_ink, background, alpha, ring_px=3)
    ink_rgb = (ink.numpy() + 1.0) * 127.5
    assert contrast_ratio(ink_rgb, np.full(3, 120.0)) >= MIN_CONTRAST_RATIO - 0.05
    pixels = compose_layers(background, alpha, grey_ink, np.full((40, 80, 3), 120.0), (20, 10, 60, 30), ring_px=3)
    assert np.allclose(pixels[8, 10], ink_rgb) and np.allclose(pixels[0, 0], 120.0)


def _painter():
    base_config = micro_scene_config()
    model, config = inpaint_warm_start(random_model(base_config), base_config, glyphs=True)
    with torch.no_grad():
        model.unet.input_conv.weight[:, -config.unet.patch_size ** 2:].normal_(0.0, 0.3)
    return model.eval(), config


def _border_step(out: np.ndarray, box) -> float:
    x, y, w, h = box
    out = out.astype(np.float64)
    return float(np.mean([np.abs(out[y:y + h, x] - out[y:y + h, x - 1]).mean(), np.abs(out[y:y + h, x + w - 1] - out[y:y + h, x + w]).mean(),
                          np.abs(out[y, x:x + w] - out[y - 1, x:x + w]).mean(), np.abs(out[y + h - 1, x:x + w] - out[y + h, x:x + w]).mean()]))


def test_layers_blend_a_painter_in_without_a_seam_and_only_inside_the_box():
    painter, config = _painter()
    ys, xs = np.mgrid[0:60, 0:90]
    pixels = np.stack([xs * 2, ys * 3, 60 + xs], axis=2).astype(np.uint8)  # a smooth picture
    image = Image.fromarray(pixels, "RGB")
    picture = Picture(image, image, "PNG", "test")
    box = (20, 15, 50, 30)
    layered = edit_picture(picture, "ab", box, model=painter, config=config, steps=2, glyph_source="typeset")
    canvas = edit_picture(picture, "ab", box, model=painter, config=config, steps=2, glyph_source="typeset", compose="canvas")
    outside = np.ones((60, 90), dtype=bool)
    outside[15:45, 20:70] = False
    for result in (layered, canvas):
        assert np.array_equal(np.asarray(result.image)[outside], pixels[outside])
    own = _border_step(pixels, box)
    assert _border_step(np.asarray(layered.image), box) < own + 4.0 < _border_step(np.asarray(canvas.image), box)
    with pytest.raises(GlyphfuseError, match="not between 0"):
        edit_picture(picture, "ab", box, model=painter, config=config, steps=2, glyph_source="typeset", panel=1.5)
    with pytest.raises(GlyphfuseError, match="unknown composition"):
        edit_picture(picture, "ab", box, model=painter, config=config, steps=2, glyph_source="typeset", compose="paste")


def test_the_ink_is_sharpened_by_an_sr_model_that_fits_the_grey_model():
    assert ink_sharpener("typeset", None, None, None, "cpu") == {"typeset_scale": TYPESET_INK_SCALE}
    assert ink_sharpener("model", micro_config(), None, None, "cpu") == {}  # the packaged SR upsamples 128 px, not 16 px
    sr_config = micro_config("sr")
    sr_config.low_res_size, sr_config.image_size = 16, 32
    sharp = ink_sharpener("model", micro_config(), "an SR model", sr_config, "cpu")
    assert sharp == {"sr_model": "an SR model", "sr_config": sr_config}


def test_a_huge_box_is_composed_smaller_against_its_averaged_surroundings():
    from glyphfuse.editing.compose import MAX_COMPOSE_PIXELS, compose_size, ring_picture

    assert compose_size((0, 0, 300, 200)) == (300, 200)
    width, height = compose_size((10, 10, 4010, 3010))
    assert width * height <= MAX_COMPOSE_PIXELS * 1.01 and abs(width / height - 4 / 3) < 0.01
    picture = np.zeros((60, 80, 3))
    picture[:, :20] = 90.0  # left of the box
    picture[:10] = 30.0  # above it
    small, box = ring_picture(picture, (20, 10, 80, 60), (30, 25))  # the box touches the right and bottom edges
    assert small.shape == (26, 31, 3) and box == (1, 1, 31, 26)
    assert np.allclose(small[1:, 0], 90.0) and np.allclose(small[0, 1:], 30.0)
    offset = seamless_offset(np.full((25, 30, 3), 60.0), small, box)
    assert offset[12, 0].mean() > 20 and offset[0, 15].mean() < -20


def test_a_huge_box_is_edited_without_a_seam_and_only_inside_it():
    painter, config = _painter()
    ys, xs = np.mgrid[0:1400, 0:1800]
    pixels = np.stack([xs // 8, ys // 6, 100 + (xs + ys) // 20], axis=2).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    box = (40, 30, 1700, 1300)  # 2.2 Mpx: composed smaller, then scaled up
    result = edit_picture(Picture(image, image, "PNG", "test"), "ab", box, model=painter, config=config, steps=2, glyph_source="typeset")
    out = np.asarray(result.image)
    outside = np.ones((1400, 1800), dtype=bool)
    outside[30:1330, 40:1740] = False
    assert np.array_equal(out[outside], pixels[outside])
    assert _border_step(out, box) < _border_step(pixels, box) + 4.0


def test_every_candidate_paints_around_its_own_ink(monkeypatch):
    import glyphfuse.editing.edit as edit_module

    painter, config = _painter()
    calls = []
    real = edit_module.glyphs_for_prompts

    def recording(prompts, settings, *args, **kwargs):
        calls.append((list(prompts), settings.candidates, settings.seed))
        return real(prompts, settings, *args, **kwargs)

    monkeypatch.setattr(edit_module, "glyphs_for_prompts", recording)
    image = Image.fromarray(np.full((40, 60, 3), 128, dtype=np.uint8), "RGB")
    result = edit_picture(Picture(image, image, "PNG", "test"), "ab", (5, 5, 50, 30), model=painter, config=config, steps=2,
                          glyph_source="typeset", candidates=3, seed=7, read=False)
    assert calls == [(["ab"] * 3, 1, 7)]  # one ink per candidate: job i is drawn with seed 7 + i
    assert [candidate.seed for candidate in result.candidates] == [7, 8, 9]

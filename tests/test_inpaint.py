"""Inpainting models and training-free inpainting: config, warm start, masks, sampling, training."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from glyphfuse.core.config import ModelConfig, get_preset, inpaint_config_for
from glyphfuse.core.diffusion import GaussianDiffusion
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.model import GlyphModel
from glyphfuse.core.tokenizer import tokenize
from glyphfuse.data.render import fixed_text_frame, render_example
from glyphfuse.data.synth import FRAME_RECIPE, SynthSource, get_data_recipe, recipe_text_frame, style_fonts, synthesize
from glyphfuse.data.layout import ink_box
from glyphfuse.sampling.generation import generate
from glyphfuse.training.inpaint import MAX_GROW, inpaint_warm_start, training_masks, train_inpaint, warm_start_inpaint_checkpoint
from glyphfuse.training.loop import TrainConfig, train
from glyphfuse.core.checkpoint import load_checkpoint, save_checkpoint
from helpers import micro_scene_config, one_torch_thread, random_model  # noqa: F401 (one_torch_thread: autouse fixture)


def test_inpaint_config_round_trips_and_widens_only_the_input():
    base = get_preset("scenes128")
    config = inpaint_config_for(base)
    assert config.inpaint and config.unet.in_channels == 7 and config.unet.out_channels == 3
    assert ModelConfig.from_json(config.to_json()) == config
    assert get_preset("inpaint128").unet == config.unet
    with pytest.raises(GlyphfuseError, match="base model"):
        inpaint_config_for(config)
    with pytest.raises(GlyphfuseError, match="in_channels"):
        GlyphModel(dataclasses.replace(config, unet=base.unet))


def test_warm_started_inpainting_model_computes_what_the_base_computes():
    base_config = micro_scene_config()
    base = random_model(base_config)
    model, config = inpaint_warm_start(base, base_config)
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    t = torch.tensor([10.0, 500.0])
    text = tokenize(["ab", "c\nd"], base_config.text.max_length, max_lines=base_config.text.max_lines)
    known, mask = torch.rand(2, 3, 16, 16), (torch.rand(2, 1, 16, 16) > 0.5).float()
    with torch.no_grad():
        expected = base(x, t, text)
        got = model(x, t, text, masked_image=known * (1 - mask), mask=mask)
        plain = model(x, t, text)  # nothing known: the whole picture
    assert torch.allclose(got, expected, atol=1e-5) and torch.allclose(plain, expected, atol=1e-5)
    with pytest.raises(ValueError, match="not an inpainting model"):
        base(x, t, text, mask=mask)


def test_frame_holds_the_ink_the_recipe_draws():
    style = get_data_recipe(FRAME_RECIPE)
    fonts = style_fonts(None, style)
    texts = ["hello", "SALE 50% OFF\n24 h", "a\nbb\nccc\ndddd\n0123456789abcdef"]
    source = SynthSource(size=128, seed=0, color=True, font_paths=fonts, texts=texts, style=dataclasses.replace(style, scene_kinds=("plain", "gradient")))
    for index in range(6):
        rendered = render_example(source, index)
        left, top, right, bottom = fixed_text_frame(rendered.text, style, fonts[0], 128)
        ink = rendered.ink_bbox
        assert left <= ink[0] and top <= ink[1] and ink[2] <= right + 1 and ink[3] <= bottom, (rendered.text, ink, (left, top, right, bottom))
    frame = recipe_text_frame(FRAME_RECIPE, 64)("hello")
    assert frame == tuple(v // 2 if i < 2 else -(-v // 2) for i, v in enumerate(fixed_text_frame("hello", style, fonts[0], 128)))


def test_training_masks_cover_the_text_and_replay_exactly():
    frame_of = recipe_text_frame(FRAME_RECIPE, 128)
    texts = ["hello world", "a\nb"] * 40
    masks = training_masks(texts, 128, frame_of, torch.Generator().manual_seed(3))
    again = training_masks(texts, 128, frame_of, torch.Generator().manual_seed(3))
    assert torch.equal(masks, again) and masks.shape == (80, 1, 128, 128)
    shares = masks.mean(dim=(1, 2, 3))
    full = (shares == 1).sum().item()
    covering = 0  # masks that are the text frame grown by 1..MAX_GROW px a side
    for text, mask in zip(texts, masks):
        left, top, right, bottom = frame_of(text)
        ys, xs = torch.nonzero(mask[0], as_tuple=True)
        assert mask.sum() == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)  # one rectangle
        grown = (left - int(xs.min()), top - int(ys.min()), int(xs.max()) + 1 - right, int(ys.max()) + 1 - bottom)
        covering += all(1 <= g <= MAX_GROW or (g >= 0 and edge) for g, edge in
                        zip(grown, (xs.min() == 0, ys.min() == 0, xs.max() == 127, ys.max() == 127)))
    assert 30 <= covering <= 70 and 1 <= full <= 20  # ~60 % text frames, ~10 % everything


def test_repaint_keeps_the_known_pixels_exactly():
    config = micro_scene_config()
    model = random_model(config)
    diffusion = GaussianDiffusion(config.diffusion)
    text = tokenize(["ab"] * 2, config.text.max_length, max_lines=config.text.max_lines)
    known = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:12, 2:14] = 1
    for sampler, resample in (("ddim", 1), ("ddpm", 2)):
        out = diffusion.sample(lambda x, t: model(x, t, text), (2, 3, 16, 16), steps=4, sampler=sampler, generator=torch.Generator().manual_seed(0),
                               known=known, mask=mask, resample=resample)
        assert torch.equal(out[mask.expand_as(out) == 0], known[mask.expand_as(known) == 0])
        assert not torch.allclose(out[:, :, 4:12, 2:14], known[:, :, 4:12, 2:14])
    with pytest.raises(GlyphfuseError, match="ddim or ddpm"):
        diffusion.sample(lambda x, t: model(x, t, text), (2, 3, 16, 16), steps=2, sampler="dpmpp-2m", known=known, mask=mask)


def test_generate_inpaints_with_either_kind_of_model_and_checks_shapes():
    base_config = micro_scene_config()
    base = random_model(base_config)
    inpainter, config = inpaint_warm_start(base, base_config)
    known = torch.zeros(2, 3, 16, 16)
    mask = torch.ones(2, 1, 16, 16)
    for model, cfg in ((base, base_config), (inpainter, config)):
        images = generate(model, cfg, ["ab", "cd"], steps=2, known=known, mask=mask, draw_kind=False)
        assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()
    with pytest.raises(GlyphfuseError, match="both"):
        generate(base, base_config, ["ab"], steps=2, known=known[:1])
    with pytest.raises(GlyphfuseError, match="shapes"):
        generate(base, base_config, ["ab"], steps=2, known=known, mask=mask)


def test_train_inpaint_runs_resumes_and_refuses_a_base_checkpoint(tmp_path):
    base_config = micro_scene_config()
    base_dir = save_checkpoint(tmp_path / "base", random_model(base_config), base_config)
    init = warm_start_inpaint_checkpoint(base_dir, tmp_path / "init")
    _, init_config = load_checkpoint(init)
    assert init_config.inpaint
    data = tmp_path / "data"
    synthesize(data, count=16, size=128, seed=0, style=get_data_recipe(FRAME_RECIPE), workers=1, progress=False)
    overrides = {"max_steps": 2, "batch_size": 4, "num_workers": 0, "device": "cpu", "sample_every": 0, "checkpoint_every": 1, "progress": False,
                 "lr": 1e-3, "warmup_steps": 0}
    first = train_inpaint(data, tmp_path / "run", init=init, overrides=overrides)
    assert first.exit_code == 0 and first.step == 2
    more = train_inpaint(data, tmp_path / "run", overrides={**overrides, "max_steps": 3})
    assert more.step == 3
    with pytest.raises(GlyphfuseError, match="not an inpainting checkpoint"):
        train_inpaint(data, tmp_path / "run2", init=base_dir, overrides=overrides)
    with pytest.raises(GlyphfuseError, match="needs its masks"):
        train(TrainConfig(data=str(data), model=init_config.to_dict(), max_steps=1, batch_size=2, num_workers=0, device="cpu", progress=False),
              tmp_path / "run3")

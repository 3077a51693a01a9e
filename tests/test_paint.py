"""Painters: glyph-guided inpainting models (preset paint128) and their glyph sources."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from glyphfuse.core.checkpoint import load_checkpoint, save_checkpoint
from glyphfuse.core.config import ModelConfig, get_preset, inpaint_config_for
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.tokenizer import tokenize
from glyphfuse.data.render import SynthSource, render_example
from glyphfuse.data.synth import FRAME_RECIPE, get_data_recipe, recipe_glyphs, style_fonts, synthesize
from glyphfuse.editing import edit_picture
from glyphfuse.editing.pictures import Picture
from glyphfuse.sampling.generation import generate
from glyphfuse.data.scenes import MIN_CONTRAST_RATIO, contrast_ratio
from glyphfuse.sampling.glyphs import glyphs_from_grey, ink_anchor, legible_ink, typeset_glyphs
from glyphfuse.sampling.pipeline import GREY, load_models, sample_many
from glyphfuse.training.loop import LOSS_WEIGHT
from glyphfuse.training.inpaint import GLYPH_NOISE_MAX, inpaint_model_inputs, inpaint_warm_start, train_inpaint, warm_start_inpaint_checkpoint
from helpers import micro_config, micro_scene_config, one_torch_thread, random_model  # noqa: F401 (one_torch_thread: autouse fixture)


def _painter(seed: int = 0):
    base_config = micro_scene_config()
    model, config = inpaint_warm_start(random_model(base_config, seed), base_config, glyphs=True)
    with torch.no_grad():  # the glyph weights start at zero; make them matter for these tests
        model.unet.input_conv.weight[:, -config.unet.patch_size ** 2:].normal_(0.0, 0.3)
    return model.eval(), config


def test_paint_config_adds_one_glyph_channel_and_round_trips():
    config = get_preset("paint128")
    assert config.inpaint and config.glyphs and config.unet.in_channels == 8 and config.input_channels == 8
    assert ModelConfig.from_json(config.to_json()) == config
    assert inpaint_config_for(get_preset("scenes128"), glyphs=True).unet == config.unet
    with pytest.raises(GlyphfuseError, match="base model"):
        inpaint_config_for(config)
    with pytest.raises(GlyphfuseError, match="glyphs"):
        ModelConfig.from_dict({**get_preset("lines256").to_dict(), "glyphs": True})


def test_typeset_glyphs_are_exactly_the_ink_of_the_data():
    style = get_data_recipe("lines128")  # the grey data: same font, layout and places as scenes128
    source = SynthSource(size=128, seed=5, color=False, font_paths=style_fonts(None, style), style=style)
    glyphs_of = recipe_glyphs(FRAME_RECIPE, 128)
    for index in range(4):
        rendered = render_example(source, index)
        ink = (np.asarray(rendered.image, dtype=np.float64) - rendered.background) / (rendered.foreground - rendered.background)
        assert np.abs(ink - glyphs_of(rendered.text)).max() < 0.01, rendered.text
    glyphs = typeset_glyphs(["ab", "SALE\n50%"], 64)
    assert glyphs.shape == (2, 1, 64, 64) and glyphs.min() == -1 and glyphs.max() > 0.3  # thin strokes, averaged down
    with pytest.raises(GlyphfuseError, match="does not fit"):
        typeset_glyphs(["x" * 40], 128)


def test_glyphs_read_back_from_a_grey_sample():
    coverage = torch.from_numpy(recipe_glyphs(FRAME_RECIPE, 128)("quartz\nfjord"))[None, None]
    grey = 0.7 - 1.4 * coverage  # dark ink on a light flat background, in [-1, 1]
    glyphs = glyphs_from_grey(grey + 0.01 * torch.randn_like(grey))
    assert (glyphs - (coverage * 2 - 1)).abs().mean() < 0.03
    assert torch.equal(glyphs_from_grey(torch.full((1, 1, 8, 8), 0.4)), torch.full((1, 1, 8, 8), -1.0))  # no ink
    with pytest.raises(GlyphfuseError, match="grey images"):
        glyphs_from_grey(torch.zeros(1, 3, 8, 8))


def test_warm_started_painter_computes_what_the_base_computes_and_then_follows_its_glyphs():
    base_config = micro_scene_config()
    base = random_model(base_config)
    model, config = inpaint_warm_start(base, base_config, glyphs=True)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10.0, 500.0])
    text = tokenize(["ab", "c\nd"], base_config.text.max_length, max_lines=base_config.text.max_lines)
    glyphs = torch.rand(2, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(model.eval()(x, t, text, glyphs=glyphs), base(x, t, text), atol=1e-5)
    painter, _ = _painter()
    with torch.no_grad():
        assert not torch.allclose(painter(x, t, text, glyphs=glyphs), painter(x, t, text, glyphs=-glyphs))
    with pytest.raises(ValueError, match="not glyph-guided"):
        base(x, t, text, glyphs=glyphs)


def test_generate_needs_glyphs_for_a_painter_and_refuses_them_elsewhere():
    painter, config = _painter()
    glyphs = typeset_glyphs(["ab", "cd"], 16)
    images = generate(painter, config, ["ab", "cd"], steps=2, glyphs=glyphs, draw_kind=False)
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()
    other = generate(painter, config, ["ab", "cd"], steps=2, glyphs=-glyphs, draw_kind=False)
    assert not torch.allclose(images, other)
    with pytest.raises(GlyphfuseError, match="give it the glyphs"):
        generate(painter, config, ["ab"], steps=2)
    with pytest.raises(GlyphfuseError, match="shape"):
        generate(painter, config, ["ab"], steps=2, glyphs=glyphs)
    base_config = micro_scene_config()
    with pytest.raises(GlyphfuseError, match="not glyph-guided"):
        generate(random_model(base_config), base_config, ["ab", "cd"], steps=2, glyphs=glyphs)


def test_training_inputs_give_typeset_glyphs_some_noisy_and_replay_exactly():
    config = inpaint_config_for(get_preset("scenes128"), glyphs=True)
    hook = inpaint_model_inputs(config)
    texts = ["hello", "a\nb"] * 16
    images = torch.zeros(32, 3, 128, 128)
    first = hook(images, texts, torch.Generator().manual_seed(1))
    again = hook(images, texts, torch.Generator().manual_seed(1))
    assert set(first) == {"masked_image", "mask", "glyphs", LOSS_WEIGHT} and all(torch.equal(first[k], again[k]) for k in first)
    clean = typeset_glyphs(texts, 128)
    noise = (first["glyphs"] - clean).flatten(1).std(dim=1)
    assert 6 <= (noise < 1e-6).sum() <= 26  # about half are exact
    assert noise.max() <= GLYPH_NOISE_MAX * 1.2
    whole = (first["mask"].flatten(1).mean(dim=1) == 1).sum().item()
    assert 4 <= whole <= 24  # ~40 % whole pictures: the painter is also the sampler


def test_train_a_painter_from_the_cli_recipe_and_resume(tmp_path):
    base_config = micro_scene_config()
    base_dir = save_checkpoint(tmp_path / "base", random_model(base_config), base_config)
    init = warm_start_inpaint_checkpoint(base_dir, tmp_path / "init", glyphs=True)
    assert load_checkpoint(init)[1].glyphs
    data = tmp_path / "data"
    synthesize(data, count=8, size=128, seed=0, style=get_data_recipe(FRAME_RECIPE), workers=1, progress=False)
    overrides = {"max_steps": 2, "batch_size": 4, "num_workers": 0, "device": "cpu", "sample_every": 2, "checkpoint_every": 1,
                 "progress": False, "lr": 1e-3, "warmup_steps": 0, "sample_prompts": ["ab", "c\nd"], "sample_steps": 2}
    result = train_inpaint(data, tmp_path / "run", init=init, overrides=overrides)
    assert result.exit_code == 0 and result.step == 2
    grids = list((tmp_path / "run" / "samples").glob("*.png"))
    assert len(grids) == 1 and Image.open(grids[0]).size[0] >= 32  # the typeset prompts, painted
    assert train_inpaint(data, tmp_path / "run", overrides={**overrides, "max_steps": 3}).step == 3


def test_sample_paints_around_typeset_or_grey_model_glyphs(tmp_path):
    painter, config = _painter()
    painter_dir = save_checkpoint(tmp_path / "painter", painter, config)
    grey_config = micro_config()
    grey_dir = save_checkpoint(tmp_path / "grey", random_model(grey_config), grey_config)
    typeset = sample_many(["ab"], steps=2, **load_models(painter_dir, device="cpu", glyph_source="typeset"), ocr=False)
    assert typeset[0].tensor.shape == (3, 16, 16) and [c.stage for c in typeset[0].candidates] == ["base"]
    models = load_models(painter_dir, device="cpu", glyph_checkpoint=grey_dir)
    assert models["glyph_config"].channels == 1
    written = sample_many(["ab"], steps=2, **models, ocr=False)
    assert [c.stage for c in written[0].candidates] == [GREY, "base"]
    assert not torch.allclose(written[0].tensor, typeset[0].tensor)
    with pytest.raises(GlyphfuseError, match="unknown glyph source"):
        load_models(painter_dir, device="cpu", glyph_source="guess")
    with pytest.raises(GlyphfuseError, match="grey base model"):
        load_models(painter_dir, device="cpu", glyph_checkpoint=painter_dir)
    with pytest.raises(GlyphfuseError, match="for painters"):
        load_models(grey_dir, device="cpu", glyph_checkpoint=grey_dir)


def test_edit_with_a_painter_changes_only_the_box(tmp_path):
    painter, config = _painter()
    pixels = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    picture = Picture(image, image, "PNG", "test")
    result = edit_picture(picture, "ab", (20, 15, 50, 30), model=painter, config=config, steps=2, glyph_source="typeset")
    out = np.asarray(result.image)
    outside = np.ones((60, 90), dtype=bool)
    outside[15:45, 20:70] = False
    assert np.array_equal(out[outside], pixels[outside]) and not np.array_equal(out[~outside], pixels[~outside])
    grey_config = micro_config()
    written = edit_picture(picture, "ab", (20, 15, 50, 30), model=painter, config=config, steps=2, glyph_model=random_model(grey_config),
                           glyph_config=grey_config)
    assert np.array_equal(np.asarray(written.image)[outside], pixels[outside])
    with pytest.raises(GlyphfuseError, match="unknown glyph source"):
        edit_picture(picture, "ab", (20, 15, 50, 30), model=painter, config=config, steps=2, glyph_source="guess")


def test_serve_answers_with_a_painter(tmp_path, monkeypatch):
    import base64
    import io
    import warnings

    from glyphfuse.ocr import reader, tesseract
    from glyphfuse.serve.app import create_app

    with warnings.catch_warnings():  # starlette >= 1.x prefers httpx2 to httpx; both work
        warnings.filterwarnings("ignore", message=".*httpx2")
        from starlette.testclient import TestClient

    monkeypatch.setattr(reader, "read_images", lambda images, **kwargs: ["ab"] * len(images))
    monkeypatch.setattr(tesseract, "check_tesseract", lambda: "/fake/tesseract")
    painter, config = _painter()
    folder = save_checkpoint(tmp_path / "painter", painter, config)
    with TestClient(create_app(load_models(folder, device="cpu", glyph_source="typeset"), folder, queue_size=2)) as client:
        answer = client.post("/api/sample", json={"prompt": "ab", "steps": 2, "style": "sign", "text_color": "#ffffff"})
        assert answer.status_code == 200, answer.text
        image = Image.open(io.BytesIO(base64.b64decode(answer.json()["image_png_base64"])))
        assert image.mode == "RGB" and image.size == (16, 16) and answer.json()["ocr_text"] == "ab"


def test_colour_flag_samples_with_the_packaged_painter_around_the_packaged_model(tmp_path, monkeypatch, capsys):
    from glyphfuse.sampling import generation, pipeline
    from helpers import run_cli

    grey_config = micro_config()
    save_checkpoint(tmp_path / "default", random_model(grey_config), grey_config)
    monkeypatch.setattr(generation, "DEFAULT_MODEL_DIR", tmp_path / "default")
    pipeline.packaged_glyph_model.cache_clear()
    code, _, err = run_cli(monkeypatch, capsys, "sample", "ab", "-o", tmp_path / "a.png", "--colour", "--steps", "1", "--no-progress")
    assert code == 1 and "no colour painter is installed" in err and "Traceback" not in err
    painter, config = _painter()
    save_checkpoint(tmp_path / "default" / "paint", painter, config)
    code, out, err = run_cli(monkeypatch, capsys, "sample", "ab", "-o", tmp_path / "a.png", "--style", "sign", "--steps", "1", "--no-progress")
    assert code == 0, err
    assert Image.open(tmp_path / "a.png").mode == "RGB"  # --style without -c: the painter, around the grey model's writing
    code, _, err = run_cli(monkeypatch, capsys, "sample", "ab", "-o", tmp_path / "b.png", "--colour", "-c", tmp_path / "default", "--steps", "1")
    assert code == 1 and "drop one of them" in err
    code, _, err = run_cli(monkeypatch, capsys, "sample", "ab", "-o", tmp_path / "c.png", "--steps", "1", "--no-progress")
    assert code == 0 and Image.open(tmp_path / "c.png").mode == "L"  # no flag, no control: the grey model, as before
    pipeline.packaged_glyph_model.cache_clear()


def test_the_painters_loss_counts_the_text_more():
    from glyphfuse.core.diffusion import GaussianDiffusion
    from glyphfuse.training.inpaint import TEXT_LOSS_WEIGHT, text_loss_weight


    glyphs = typeset_glyphs(["hello"], 128)
    weight = text_loss_weight(glyphs)
    assert set(weight.unique().tolist()) == {1.0, 1.0 + TEXT_LOSS_WEIGHT}
    near = weight > 1
    assert near[glyphs > -0.8].all() and 1.5 * (glyphs > -0.8).sum() < near.sum() < 0.2 * near.numel()  # the ink grown by a pixel
    diffusion = GaussianDiffusion(get_preset("tiny").diffusion)
    x0, t, noise = torch.zeros(1, 3, 128, 128), torch.tensor([500]), torch.randn(1, 3, 128, 128)
    target = diffusion.training_target(x0, noise, t)
    wrong_on_text = lambda x_t, steps: target + near.float()  # noqa: E731 - an error only at the text
    plain = diffusion.training_loss(wrong_on_text, x0, t=t, noise=noise)
    weighted = diffusion.training_loss(wrong_on_text, x0, t=t, noise=noise, weight=weight)
    share = near.float().mean()
    assert torch.allclose(plain, share) and torch.allclose(weighted, (1 + TEXT_LOSS_WEIGHT) * share / (1 + TEXT_LOSS_WEIGHT * share))
    inputs = inpaint_model_inputs(inpaint_config_for(get_preset("scenes128"), glyphs=True))(torch.zeros(1, 3, 128, 128), ["hello"],
                                                                                          torch.Generator().manual_seed(0))
    assert torch.equal(inputs[LOSS_WEIGHT], weight)


def test_guidance_null_input_has_no_glyphs_and_neither_has_a_dropped_text():
    painter, config = _painter()
    seen = []
    forward = painter.forward

    def spy(x_t, t, text, **inputs):
        seen.append(inputs["glyphs"].clone())
        return forward(x_t, t, text, **inputs)

    painter.forward = spy
    glyphs = typeset_glyphs(["ab", "cd"], 16)
    generate(painter, config, ["ab", "cd"], steps=1, guidance=3.0, glyphs=glyphs, draw_kind=False)
    both = seen[0]  # (2B, 1, H, W): [cond; uncond]
    assert torch.equal(both[:2], glyphs) and torch.equal(both[2:], torch.full_like(glyphs, -1.0))
    hook = inpaint_model_inputs(inpaint_config_for(get_preset("scenes128"), glyphs=True))
    inputs = hook(torch.zeros(2, 3, 128, 128), ["hello", None], torch.Generator().manual_seed(0))
    assert inputs["glyphs"][1].eq(-1).all() and not inputs["glyphs"][0].eq(-1).all()
    assert inputs[LOSS_WEIGHT][1].eq(1).all()


def test_edit_command_with_a_painter_and_its_glyph_sources(tmp_path, monkeypatch, capsys):
    from helpers import run_cli

    painter, config = _painter()
    painter_dir = save_checkpoint(tmp_path / "painter", painter, config)
    grey_config = micro_config()
    grey_dir = save_checkpoint(tmp_path / "grey", random_model(grey_config), grey_config)
    pixels = np.random.default_rng(1).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(tmp_path / "in.png")
    common = ("--box", "10,8,60,30", "-c", painter_dir, "--steps", "1", "--no-progress")
    code, out, err = run_cli(monkeypatch, capsys, "edit", tmp_path / "in.png", "ab", "-o", tmp_path / "a.png", *common, "--glyphs", "typeset")
    assert code == 0 and "painter, glyphs typeset" in out, err
    edited = np.asarray(Image.open(tmp_path / "a.png"))
    keep = np.ones((48, 80), dtype=bool)
    keep[8:38, 10:70] = False
    assert np.array_equal(edited[keep], pixels[keep])
    code, out, err = run_cli(monkeypatch, capsys, "edit", tmp_path / "in.png", "ab", "-o", tmp_path / "b.png", *common, "--glyph-checkpoint", grey_dir)
    assert code == 0 and "written by the grey model" in out, err
    code, _, err = run_cli(monkeypatch, capsys, "edit", tmp_path / "in.png", "ab", "-o", tmp_path / "c.png", *common, "--glyph-checkpoint", painter_dir)
    assert code == 1 and "grey base model" in err and "Traceback" not in err
    code, _, err = run_cli(monkeypatch, capsys, "edit", tmp_path / "in.png", "ab", "-o", tmp_path / "d.png", *common, "--glyphs", "guess")
    assert code == 1 and "unknown glyph source" in err


def test_ink_anchor_holds_the_ink_and_its_halo_to_two_legible_tones():
    glyphs = torch.full((2, 1, 32, 32), -1.0)
    glyphs[0, :, 10:14, 8:20] = 1.0  # a bar of ink in picture 0; picture 1 has none
    x0 = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.2  # grey-ish everywhere: no contrast
    projected = ink_anchor(glyphs, halo_px=2)(x0)
    ink, halo = projected[0, :, 10:14, 8:20], projected[0, :, 8:16, 6:22].clone()
    halo[:, 2:6, 2:14] = float("nan")  # the ink inside it
    ink_colour, halo_colour = ink[:, 0, 0], halo[:, 0, 0]
    assert torch.allclose(ink, ink_colour[:, None, None].expand_as(ink))  # one tone on the ink
    ring = halo[~torch.isnan(halo)].view(3, -1)
    assert torch.allclose(ring, halo_colour[:, None].expand_as(ring))  # another on the halo
    as_rgb = lambda colour: (colour.double().numpy() + 1.0) * 127.5  # noqa: E731
    assert contrast_ratio(as_rgb(ink_colour), as_rgb(halo_colour)) >= MIN_CONTRAST_RATIO - 1e-6  # moved apart far enough
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[8:16, 6:22] = False
    assert torch.equal(projected[0][:, outside], x0[0][:, outside])  # the rest is the painter's
    assert torch.equal(projected[1], x0[1])  # no ink: left alone


def test_legible_ink_moves_a_colour_only_as_far_as_the_contrast_rule_needs():
    white_on_black = legible_ink(torch.ones(3), -torch.ones(3))
    assert torch.equal(white_on_black, torch.ones(3))  # legible already: unchanged
    grey = torch.zeros(3)
    moved = legible_ink(grey, torch.full((3,), 0.1))
    ratio = contrast_ratio((moved.double().numpy() + 1) * 127.5, np.full(3, 1.1 * 127.5))
    assert ratio >= MIN_CONTRAST_RATIO and (moved < grey).all() and (moved > -1).all()  # darker, not all the way to black


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "dpmpp-2m"])
def test_a_projection_of_x0_decides_the_final_picture(sampler):
    from glyphfuse.core.config import DiffusionConfig
    from glyphfuse.core.diffusion import GaussianDiffusion

    diffusion = GaussianDiffusion(DiffusionConfig(num_timesteps=50))
    seen = []

    def project(x0):
        seen.append(x0.shape)
        return torch.full_like(x0, 0.25)

    model_fn = lambda x, t: torch.randn_like(x)  # noqa: E731
    out = diffusion.sample(model_fn, (2, 3, 8, 8), steps=5, sampler=sampler, generator=torch.Generator().manual_seed(1), project=project)
    assert len(seen) == 5 and torch.allclose(out, torch.full_like(out, 0.25), atol=1e-5)


def test_generate_anchors_a_painters_ink_unless_told_not_to():
    model, config = _painter()
    glyphs = torch.full((1, 1, config.image_size, config.image_size), -1.0)
    glyphs[0, 0, 6:9, 4:12] = 1.0  # a bar of ink
    anchored = generate(model, config, ["ab"], glyphs=glyphs, steps=2, seed=3)
    free = generate(model, config, ["ab"], glyphs=glyphs, steps=2, seed=3, anchor_ink=False)
    one_tone = lambda image: image[:, 6:9, 4:12].flatten(1)  # noqa: E731
    assert torch.allclose(one_tone(anchored[0]), one_tone(anchored[0])[:, :1].expand(3, 24), atol=1e-5)  # one colour on the ink
    assert not torch.allclose(one_tone(free[0]), one_tone(free[0])[:, :1].expand(3, 24), atol=1e-3)  # the painter's own pixels


def test_no_anchor_ink_on_the_command_line_turns_the_anchoring_off(tmp_path, monkeypatch, capsys):
    from glyphfuse.sampling import generation
    from helpers import run_cli

    painter, config = _painter()
    painter_dir = save_checkpoint(tmp_path / "painter", painter, config)
    anchored = []
    real_anchor = generation.ink_anchor
    monkeypatch.setattr(generation, "ink_anchor", lambda glyphs: anchored.append(glyphs.shape) or real_anchor(glyphs))
    common = ("-c", painter_dir, "--glyphs", "typeset", "--steps", "1", "--no-progress")
    code, _, err = run_cli(monkeypatch, capsys, "sample", "ab", "-o", tmp_path / "a.png", *common)
    assert code == 0 and anchored == [(1, 1, 16, 16)], err  # on by default
    code, _, err = run_cli(monkeypatch, capsys, "sample", "ab", "-o", tmp_path / "b.png", *common, "--no-anchor-ink")
    assert code == 0 and len(anchored) == 1, err  # off: not built at all


def test_paint128_card_copies_every_score_from_the_reports(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    def report(exact, candidates=1):
        settings = {"n": 1, "candidates": candidates, "sampler": "ddim", "steps": 8, "image_size": 128, "anchor_ink": True}
        return {"settings": settings, "model": {"summary": {"cer": 1 - exact, "exact": exact}, "by_kind": {"sign": {"exact": exact / 2}}}}

    for number, name in enumerate(("cased_model", "cased_model_c4", "signs_model", "cased_typeset", "signs_typeset")):
        (tmp_path / f"paint_{name}.json").write_text(json.dumps(report(0.5 + number / 100, 4 if "c4" in name else 1)))
    controls = {control: {"samples": 30, "within_15": 0.25, "median_delta_e": 17.25} for control in ("text_color", "background_color")}
    (tmp_path / "paint_controls.json").write_text(json.dumps(controls))
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(repo / "examples/recipes/paint128_card.py"), str(tmp_path), str(tmp_path / "card.json"),
                           "--training", "tr", "--status", "st"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    card = json.loads((tmp_path / "card.json").read_text())
    assert [row["exact"] for row in card["scores"]] == [0.5, 0.51, 0.52, 0.53, 0.54]
    assert card["scores"][1]["candidates"] == 4 and card["scores"][2]["exact_by_kind"] == {"sign": 0.26}
    assert "ink anchoring on" in card["scores"][0]["steps"] and card["training"] == ["tr"] and card["status"] == "st"
    assert card["controls"][0].startswith("--text-color: drawn within ΔE 15 of the request in 25% of 30 samples, median ΔE 17.2")
    assert (repo / card["recipe"]).is_file()

"""generate(): reproducibility, batch independence, guidance; the `sample` and `info` commands."""


import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from glyphfuse.sampling import generation as sampling
from glyphfuse.cli import app
from glyphfuse.core.checkpoint import save_checkpoint
from glyphfuse.core.config import get_preset
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.tokenizer import tokenize
from glyphfuse.sampling.generation import generate, make_model_fn, parse_prompt
from helpers import micro_config, random_model

STEPS = 4  # the sampler's math is tested in test_diffusion.py; here only the plumbing


@pytest.fixture(scope="module")
def model_and_config():
    """A micro model with every parameter random, so outputs depend on the prompt."""
    config = micro_config()
    return random_model(config), config


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory, model_and_config):
    path = tmp_path_factory.mktemp("sampling") / "ckpt"
    save_checkpoint(path, *model_and_config)
    return path


def test_parse_prompt():
    assert parse_prompt("the\\nwhat string") == "the\nwhat string"
    assert parse_prompt("a\\nb\\nc") == "a\nb\nc"
    assert parse_prompt("no break") == "no break"
    assert parse_prompt("real\nnewline") == "real\nnewline"


def test_same_seed_same_image_and_seeds_matter(model_and_config):
    model, config = model_and_config
    a = generate(model, config, ["hi"], steps=STEPS, seed=3)
    b = generate(model, config, ["hi"], steps=STEPS, seed=3)
    c = generate(model, config, ["hi"], steps=STEPS, seed=4)
    assert a.shape == (1, 1, 16, 16) and a.abs().max() <= 1.0
    assert not model.training
    model.train()
    try:
        assert torch.equal(generate(model, config, ["hi"], steps=STEPS, seed=3), a)  # runs in eval mode ...
        assert model.training  # ... and gives the model back in the mode it came in
    finally:
        model.eval()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_prompt_result_does_not_depend_on_its_batch(model_and_config):
    model, config = model_and_config
    alone = generate(model, config, ["hello"], steps=STEPS, seed=0, sampler="ddpm")
    batch = generate(model, config, ["hello", "a much longer prompt\nwith two lines"], steps=STEPS, seed=0, sampler="ddpm")
    torch.testing.assert_close(batch[:1], alone, rtol=0, atol=1e-5)
    chunked = generate(model, config, ["hello", "a much longer prompt\nwith two lines"], steps=STEPS, seed=0, sampler="ddpm", batch_size=1)
    torch.testing.assert_close(chunked, batch, rtol=0, atol=1e-5)
    assert not torch.allclose(batch[0], batch[1])


def test_guidance_scale_one_is_the_conditional_prediction(model_and_config):
    model, config = model_and_config
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 16, 16, generator=g)
    t = torch.tensor([500.0, 20.0])
    text = tokenize(["ab", "xyz"], config.text.max_length)
    null = tokenize([None, None], config.text.max_length)
    with torch.no_grad():
        cond, uncond = model(x, t, text), model(x, t, null)
        assert torch.equal(make_model_fn(model, text, 1.0)(x, t), cond)
        guided = make_model_fn(model, text, 3.0, null)(x, t)
    assert not torch.allclose(cond, uncond, atol=1e-4)
    torch.testing.assert_close(guided, uncond + 3.0 * (cond - uncond), rtol=1e-4, atol=1e-5)


def test_guidance_changes_the_image(model_and_config):
    model, config = model_and_config
    plain = generate(model, config, ["hi"], steps=STEPS, guidance=1.0)
    guided = generate(model, config, ["hi"], steps=STEPS, guidance=4.0)
    assert not torch.allclose(plain, guided)


def test_guided_sampling_is_one_batched_forward_per_step(model_and_config):
    """Conditional and null rows go through the network together: `steps` calls of 2B rows."""
    model, config = model_and_config
    rows = []
    hook = model.register_forward_hook(lambda module, args, output: rows.append(args[0].shape[0]))
    try:
        guided = generate(model, config, ["hi", "you"], steps=STEPS, sampler="dpmpp-2m", guidance=3.0)
        assert rows == [4] * STEPS
        rows.clear()
        generate(model, config, ["hi", "you"], steps=STEPS, sampler="dpmpp-2m", guidance=1.0)
        assert rows == [2] * STEPS
    finally:
        hook.remove()
    assert guided.shape == (2, 1, 16, 16) and guided.abs().max() <= 1.0
    assert torch.equal(generate(model, config, ["hi", "you"], steps=STEPS, sampler="dpmpp-2m", guidance=3.0), guided)
    ddim = generate(model, config, ["hi", "you"], steps=STEPS, sampler="ddim", guidance=3.0)
    assert not torch.allclose(guided, ddim, atol=1e-4)


def test_generate_input_errors(model_and_config):
    model, config = model_and_config
    with pytest.raises(GlyphfuseError, match="unknown sampler 'euler'; choose one of: ddim, ddpm, dpmpp-2m"):
        generate(model, config, ["x"], steps=STEPS, sampler="euler")
    with pytest.raises(GlyphfuseError, match="max_length"):
        generate(model, config, ["x" * 200], steps=STEPS)
    with pytest.raises(GlyphfuseError, match="super-resolution"):
        generate(model, get_preset("sr256"), ["x"], steps=STEPS)


def test_load_model_and_save_images(tmp_path, checkpoint_dir, model_and_config):
    model, config = sampling.load_model(checkpoint_dir, "cpu")
    assert config == model_and_config[1]
    images = torch.linspace(-1, 1, 3 * 16 * 16).reshape(3, 1, 16, 16)
    paths = sampling.save_images(images, tmp_path / "out.png")
    assert [p.name for p in paths] == ["out.png", "out_1.png", "out_2.png"]
    assert Image.open(paths[2]).size == (16, 16)
    with pytest.raises(GlyphfuseError, match="unknown image file extension"):
        sampling.save_images(images, tmp_path / "out.nope")


def test_no_default_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sampling, "DEFAULT_MODEL_DIR", tmp_path / "default_model")
    with pytest.raises(GlyphfuseError, match="no default model is installed yet; pass --checkpoint DIR"):
        sampling.default_checkpoint_dir()


# ---------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_sample_writes_pngs(tmp_path, checkpoint_dir):
    out = tmp_path / "img.png"
    result = runner.invoke(app, ["sample", "hi\\nyou", "-o", str(out), "--checkpoint", str(checkpoint_dir), "--steps", "3", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and str(out) in result.stdout
    assert Image.open(out).size == (16, 16) and Image.open(out).mode == "L"

    result = runner.invoke(app, ["sample", "hi", "-o", str(tmp_path / "many.png"), "-c", str(checkpoint_dir), "--steps", "2", "-n", "2", "--sampler", "ddpm"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "many.png").size == Image.open(tmp_path / "many_1.png").size == (16, 16)
    assert Image.open(tmp_path / "many.png").tobytes() != Image.open(tmp_path / "many_1.png").tobytes()


def test_cli_sample_and_eval_sampler_option(tmp_path, checkpoint_dir):
    out = tmp_path / "dpm.png"
    result = runner.invoke(app, ["sample", "hi", "-o", str(out), "-c", str(checkpoint_dir), "--steps", "3", "--sampler", "dpmpp-2m"])
    assert result.exit_code == 0, result.output
    assert "dpmpp-2m 3 steps" in result.stdout and Image.open(out).size == (16, 16)
    for command in (["sample", "hi", "-o", str(tmp_path / "x.png")], ["eval"]):
        result = runner.invoke(app, [*command, "-c", str(checkpoint_dir), "--sampler", "euler"])
        assert isinstance(result.exception, GlyphfuseError), result.output
        assert str(result.exception) == "unknown sampler 'euler'; choose one of: ddim, ddpm, dpmpp-2m"
    assert not (tmp_path / "x.png").exists()


def test_cli_sample_grid(tmp_path, checkpoint_dir):
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["sample", "hi", "-o", str(out), "-c", str(checkpoint_dir), "--steps", "2", "-n", "2", "--grid", "--dynamic-threshold", "0.99"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]
    assert Image.open(out).size == (2 * 16 + 3 * 2, 16 + 2 * 2)  # 2 columns, 2 px padding


def test_cli_sample_without_checkpoint_and_no_default_model(tmp_path, monkeypatch):
    monkeypatch.setattr(sampling, "DEFAULT_MODEL_DIR", tmp_path / "default_model")
    result = runner.invoke(app, ["sample", "hi", "-o", str(tmp_path / "x.png")])
    assert result.exit_code != 0
    assert isinstance(result.exception, GlyphfuseError)
    assert "no default model is installed yet" in str(result.exception)
    assert not (tmp_path / "x.png").exists()


def test_cli_sample_missing_checkpoint(tmp_path):
    result = runner.invoke(app, ["sample", "hi", "-o", str(tmp_path / "x.png"), "-c", str(tmp_path / "nope")])
    assert isinstance(result.exception, GlyphfuseError) and "does not exist" in str(result.exception)


def test_cli_info(checkpoint_dir, model_and_config):
    from glyphfuse.core.model import count_parameters

    total = count_parameters(model_and_config[0])["total"]
    result = runner.invoke(app, ["info", "--checkpoint", str(checkpoint_dir)])
    assert result.exit_code == 0, result.output
    assert "unet.base_channels" in result.stdout and f"{total:,}" in result.stdout

    result = runner.invoke(app, ["info"], env={"COLUMNS": "100"})  # one row a preset: fits 100 columns
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│ ")}
    for name in ("tiny", "lines64", "lines128", "lines256", "base64", "base128", "sr256"):
        assert name in rows, result.stdout
    assert "2.29M" in rows["lines128"] and "4x4" in rows["lines128"] and "128 px" in rows["lines256"]
    result = runner.invoke(app, ["info", "--preset", "lines128"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "params total" in result.stdout and "params unet" in result.stdout

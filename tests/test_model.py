"""GlyphModel: shapes, T5 buckets, zero-init identities, batch/padding invariance, SR wiring."""

import dataclasses

import pytest
import torch

from glyphfuse.core.attention import WeaveLayer
from glyphfuse.core.config import get_preset
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.model import GlyphModel, count_parameters
from glyphfuse.core.text_encoder import relative_position_bucket
from glyphfuse.core.tokenizer import TextBatch, tokenize


def tiny_config(**unet_changes):
    """The tiny preset at 16 px with 8-channel heads (2-4 heads per attention: enough to catch
    head/batch mix-ups)."""
    config = get_preset("tiny")
    config.image_size = 16
    config.unet = dataclasses.replace(config.unet, head_channels=8, **unet_changes)
    return config


def tiny_sr_config():
    config = tiny_config()
    return dataclasses.replace(
        config,
        name="tiny-sr",
        image_size=32,
        low_res_size=16,
        unet=dataclasses.replace(
            config.unet, in_channels=2 * config.channels, channel_mult=(config.unet.channel_mult[0],) + config.unet.channel_mult
        ),
    )


def perturb_zero_init(model, seed=0):
    """Give every all-zero parameter (the zero-initialised residual outputs) small random
    values, so that text and low-res conditioning actually reach the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 0 and not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


def make_model(config, seed=0):
    torch.manual_seed(seed)
    return perturb_zero_init(GlyphModel(config).eval(), seed)


def test_relative_position_bucket_matches_t5():
    # num_buckets=32 -> 16 per direction; exact = 8; key after query (+) adds 16.
    # large n: 8 + floor(ln(n / 8) / ln(128 / 8) * 8), clamped to 15.
    rel = torch.tensor([0, 1, -1, 7, -7, 8, -8, 12, -20, 127, 128, 500, -500])
    expected = [
        0,  # 0: exact
        17,  # +1: 16 + 1
        1,  # -1: 1
        23,  # +7: 16 + 7 (last exact offset)
        7,  # -7
        24,  # +8: 16 + 8 + floor(ln(1)/ln(16)*8 = 0) -> first log bucket
        8,  # -8: 8 + 0
        25,  # +12: 16 + 8 + floor(ln(1.5)/ln(16)*8 = 1.17) = 16 + 9
        10,  # -20: 8 + floor(ln(2.5)/ln(16)*8 = 2.64) = 10
        31,  # +127: 16 + 8 + floor(ln(15.875)/ln(16)*8 = 7.98) = 16 + 15
        31,  # +128: 16 + min(8 + 8, 15)
        31,  # +500: clamped to 16 + 15
        15,  # -500: clamped to 15
    ]
    assert relative_position_bucket(rel, num_buckets=32, max_distance=128).tolist() == expected


@pytest.mark.parametrize("batch,length", [(1, 1), (3, 7), (1, 33), (3, 33)])
def test_output_shape(batch, length):
    config = tiny_config()
    model = GlyphModel(config).eval()
    text = tokenize(["x" * (length - 1)] * batch, max_length=config.text.max_length)
    assert text.token_ids.shape == (batch, length)
    x = torch.randn(batch, config.channels, config.image_size, config.image_size)
    with torch.no_grad():
        out = model(x, torch.full((batch,), 10.0), text)
    assert out.shape == (batch, config.unet.out_channels, config.image_size, config.image_size)
    assert torch.isfinite(out).all()


def test_fresh_weave_layer_is_identity():
    torch.manual_seed(0)
    layer = WeaveLayer(channels=32, text_width=24, time_embed_dim=40, head_channels=8)
    image, text = torch.randn(2, 32, 8, 8), torch.randn(2, 5, 24)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    new_image, new_text = layer(image, text, mask, torch.randn(2, 40), torch.randn(1, 64, 8, 8))
    assert torch.equal(new_image, image)
    assert torch.equal(new_text, text)


def test_fresh_model_ignores_text_and_perturbed_model_does_not():
    config = tiny_config()
    torch.manual_seed(0)
    model = GlyphModel(config).eval()
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3.0, 3.0])
    text_a = tokenize(["hello", "a"], max_length=48)
    text_b = tokenize(["world!!", None], max_length=48)
    with torch.no_grad():
        assert torch.equal(model(x, t, text_a), model(x, t, text_b))
        perturb_zero_init(model)
        assert not torch.allclose(model(x, t, text_a), model(x, t, text_b), atol=1e-4)


def test_output_independent_of_batch_and_padding():
    config = tiny_config()
    model = make_model(config)
    prompts = ["Hi", "hello\nworld", "a much longer prompt here"]
    B = len(prompts)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(B, 1, 16, 16, generator=gen)
    t = torch.tensor([10.0, 500.0, 990.0])
    with torch.no_grad():
        together = model(x, t, tokenize(prompts, max_length=48))
        alone = [model(x[i : i + 1], t[i : i + 1], tokenize([p], max_length=48)) for i, p in enumerate(prompts)]
        padded = model(x, t, tokenize(prompts, max_length=48).pad_to(45))
        reversed_ = model(x.flip(0), t.flip(0), tokenize(prompts[::-1], max_length=48))
    for i in range(B):
        torch.testing.assert_close(together[i : i + 1], alone[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(padded[i], together[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(reversed_[B - 1 - i], together[i], atol=1e-5, rtol=1e-5)
    # the prompts do matter: same image and timestep, different prompt -> different output
    with torch.no_grad():
        other = model(x[:1], t[:1], tokenize(["Ho"], max_length=48))
    assert (other - alone[0]).abs().max() > 1e-3


def test_gradients_reach_text_encoder():
    config = tiny_config()
    torch.manual_seed(0)
    model = GlyphModel(config)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([5.0, 700.0])
    text = tokenize(["ab", "c\nd"], max_length=48)

    def text_grad_norm():
        model.zero_grad()
        model(x, t, text).pow(2).mean().backward()
        return sum(p.grad.abs().sum() for p in model.text_encoder.parameters() if p.grad is not None)

    # fresh: every weave output projection is zero, so the text cannot influence the image yet
    assert text_grad_norm() == 0
    perturb_zero_init(model)
    assert text_grad_norm() > 0
    assert model.text_encoder.relative_bias.table.weight.grad.abs().sum() > 0
    assert all(table.rows.grad.abs().sum() > 0 for table in model.unet.position_tables.values())


def test_text_longer_than_max_length_is_an_error():
    config = tiny_config()
    model = GlyphModel(config)
    text = tokenize(["x" * 60], max_length=100)
    with pytest.raises(GlyphfuseError, match="max_length 48"):
        model(torch.randn(1, 1, 16, 16), torch.tensor([1.0]), text)


def test_super_resolution_forward():
    config = tiny_sr_config()
    model = make_model(config)
    text = tokenize(["SR", "x"], max_length=48)
    x, low = torch.randn(2, 1, 32, 32), torch.randn(2, 1, 16, 16)
    t = torch.tensor([1.0, 2.0])
    with torch.no_grad():
        out = model(x, t, text, low_res=low)
        assert out.shape == (2, 1, 32, 32)
        assert torch.equal(out, model(x, t, text, low_res=low, low_res_noise_level=torch.zeros(2)))
        assert not torch.allclose(out, model(x, t, text, low_res=low, low_res_noise_level=torch.full((2,), 0.3)))
        assert not torch.allclose(out, model(x, t, text, low_res=low.flip(-1)))
    with pytest.raises(GlyphfuseError, match="low_res"):
        model(x, t, text)


def test_sr_model_lines_up_with_base_by_index_shift():
    """Every base tensor has a same-shaped home in the SR model (except the input conv)."""
    base, sr = GlyphModel(tiny_config()), GlyphModel(tiny_sr_config())
    shift = tiny_config().unet.num_res_blocks + 1
    sr_shapes = {k: v.shape for k, v in sr.state_dict().items()}
    unmatched = []
    for name, tensor in base.state_dict().items():
        if name.startswith("unet.input_blocks."):
            parts = name.split(".")
            parts[2] = str(int(parts[2]) + shift)
            name = ".".join(parts)
        if sr_shapes.get(name) != tensor.shape:
            unmatched.append(name)
    assert unmatched == ["unet.input_conv.weight"]
    assert set(base.unet.position_tables) == {"16", "8"} and set(sr.unet.position_tables) == {"16", "8"}


def test_config_checks_and_parameter_count():
    bad = tiny_config(in_channels=2)
    with pytest.raises(GlyphfuseError, match="in_channels"):
        GlyphModel(bad)
    model = GlyphModel(tiny_config())
    counts = count_parameters(model)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["total"] == counts["time_embed"] + counts["text_encoder"] + counts["unet"]
    assert counts["total"] < 1_000_000


def test_textbatch_cat_matches_separate_rows():
    config = tiny_config()
    model = make_model(config)
    a, b = tokenize(["one"], max_length=48), tokenize(["two lines\nhere", None], max_length=48)
    x, t = torch.randn(3, 1, 16, 16), torch.tensor([1.0, 2.0, 3.0])
    with torch.no_grad():
        joint = model(x, t, TextBatch.cat([a, b]))
        torch.testing.assert_close(joint[1:], model(x[1:], t[1:], b), atol=1e-5, rtol=1e-5)


def test_token_identity_is_not_drowned_by_the_timestep():
    # At init the text features of two different prompts must differ by a good fraction of their
    # size. (A default-initialised timestep projection over std-0.02 token tables made every token
    # look alike - relative difference ~0.03 - and a 6,700-step CPU run learned to ignore the text.)
    from glyphfuse.core.model import timestep_embedding

    torch.manual_seed(0)
    for preset in ("tiny", "words32"):
        config = get_preset(preset)
        model = GlyphModel(config)
        text = tokenize(["hello", "zzzzz"], config.text.max_length, max_lines=config.text.max_lines)
        time_emb = model.time_embed(timestep_embedding(torch.tensor([500.0, 500.0]), config.unet.base_channels))
        with torch.no_grad():
            features = model.text_encoder(text.token_ids, text.line_ids, text.mask, time_emb)  # (2, L, W)
        relative = ((features[0] - features[1]).abs().mean() / features.abs().mean()).item()
        assert relative > 0.3, (preset, relative)


def test_model_learns_to_use_the_text():
    # Two prompts, two different images: after a short fit, the loss with the right prompts must
    # be clearly lower than with the prompts swapped.
    from glyphfuse.core.diffusion import GaussianDiffusion

    torch.manual_seed(0)
    config = get_preset("tiny")
    model = GlyphModel(config)
    diffusion = GaussianDiffusion(config.diffusion)
    images = torch.zeros(8, 1, 32, 32)
    images[:4, :, :, :16] = 1.0  # "left": ink on the left half
    images[4:, :, :, 16:] = 1.0  # "right": ink on the right half
    images = images * 2 - 1
    prompts = ["left"] * 4 + ["right"] * 4
    text = tokenize(prompts, config.text.max_length, max_lines=config.text.max_lines)
    swapped = tokenize(prompts[4:] + prompts[:4], config.text.max_length, max_lines=config.text.max_lines)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(120):
        optimizer.zero_grad()
        diffusion.training_loss(lambda x, t: model(x, t, text), images, generator=generator).mean().backward()
        optimizer.step()
    t = torch.full((8,), 800)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        right = diffusion.training_loss(lambda x, s: model(x, s, text), images, t=t, noise=noise).mean().item()
        wrong = diffusion.training_loss(lambda x, s: model(x, s, swapped), images, t=t, noise=noise).mean().item()
    assert right < 0.5 * wrong, (right, wrong)  # measured 0.035; 1.00 (text ignored) before the fix


def test_column_ids_restart_at_every_line():
    from glyphfuse.core.text_encoder import column_ids

    batch = tokenize(["ab\ncde", "x", ""], 16)
    columns = column_ids(batch.token_ids)
    assert columns[0, :7].tolist() == [0, 1, 2, 0, 1, 2, 3]  # BOS a b | NL c d e
    assert columns[1, :2].tolist() == [0, 1]
    assert columns[2, 0].item() == 0


def test_column_embedding_tells_apart_prompts_with_the_same_letters_per_line():
    # "ab\nc" and "a\nbc": same tokens, same absolute positions, same line of the first token;
    # only the column of "b" and "c" differs. With the column table the encoder sees that.
    from glyphfuse.core.config import TextEncoderConfig
    from glyphfuse.core.text_encoder import TextEncoder

    torch.manual_seed(0)
    encoder = TextEncoder(TextEncoderConfig(width=32, depth=1, head_dim=16, max_length=16, column_embedding=True), 8).eval()
    assert encoder.column_embed is not None
    assert TextEncoder(TextEncoderConfig(width=32, depth=1, head_dim=16, max_length=16), 8).column_embed is None
    batch = tokenize(["ab\nc", "a\nbc"], 16)
    features = encoder(batch.token_ids, batch.line_ids, batch.mask, torch.zeros(2, 8))
    assert (features[0, 2] - features[1, 3]).abs().max() > 0.1  # "b": column 2 on line 0 vs column 1 on line 1


@pytest.mark.parametrize("patch_size", [1, 2])
def test_patch_size_keeps_image_shape_and_rows_independent(patch_size):
    config = tiny_config(patch_size=patch_size)
    config.image_size = 32
    torch.manual_seed(0)
    model = GlyphModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    x = torch.randn(2, 1, 32, 32)
    text = tokenize(["hi", "yo\nx"], config.text.max_length)
    with torch.no_grad():
        both = model(x, torch.tensor([10.0, 500.0]), text)
        first = model(x[:1], torch.tensor([10.0]), text.select(0))
    assert both.shape == x.shape
    assert torch.allclose(both[:1], first, atol=1e-5)
    # the patched U-Net runs its first level at half the size: fewer position-table sizes
    assert max(map(int, model.unet.position_tables.keys())) <= 32 // patch_size


def test_patch_size_must_divide_the_image():
    config = tiny_config(patch_size=3)
    with pytest.raises(GlyphfuseError, match="not divisible"):
        GlyphModel(config)

"""Schedule math, targets, respacing and samplers of glyphfuse.core.diffusion.

Closed forms are recomputed here independently in numpy float64; samplers are checked with the
exact optimal denoiser of a Gaussian (or single-point) data distribution, so no network is needed.
"""

import dataclasses
import math

import numpy as np
import pytest
import torch

from glyphfuse.core.config import DiffusionConfig, get_preset
from glyphfuse.sampling.generation import apply_guidance
from glyphfuse.core.diffusion import (
    GaussianDiffusion,
    cosine_betas,
    dpmpp_2m,
    dynamic_threshold,
    linear_betas,
    space_timesteps,
)
from glyphfuse.core.errors import GlyphfuseError

T_CHECK = [0, 1, 10, 250, 500, 999]


def _diffusion(schedule="linear", prediction="eps", T=1000):
    return GaussianDiffusion(DiffusionConfig(num_timesteps=T, schedule=schedule, prediction=prediction))


def _np_linear_abar(T=1000):
    betas = np.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T)
    return betas, np.cumprod(1.0 - betas)


# ---------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("T", [1000, 100])
def test_schedules_are_valid_and_monotone(schedule, T):
    d = _diffusion(schedule, T=T)
    assert d.betas.dtype == torch.float64 and d.alphas_cumprod.dtype == torch.float64
    assert torch.all(d.betas > 0) and torch.all(d.betas <= 0.999)
    abar = d.alphas_cumprod
    assert torch.all(abar[1:] < abar[:-1])  # strictly decreasing
    assert 0.99 < abar[0] < 1.0 and abar[-1] < 1e-3  # nearly clean at t=0, nearly pure noise at T-1
    assert d.alphas_cumprod_prev[0] == 1.0 and torch.equal(d.alphas_cumprod_prev[1:], abar[:-1])


def test_linear_schedule_endpoints_scale_with_T():
    assert linear_betas(1000)[0] == pytest.approx(1e-4) and linear_betas(1000)[-1] == pytest.approx(0.02)
    assert linear_betas(100)[0] == pytest.approx(1e-3) and linear_betas(100)[-1] == pytest.approx(0.2)


def test_cosine_schedule_matches_closed_form():
    T, s = 1000, 0.008
    f = lambda t: np.cos((t / T + s) / (1 + s) * np.pi / 2) ** 2  # noqa: E731
    abar = _diffusion("cosine").alphas_cumprod.numpy()
    t = np.arange(1, 900)  # before the max-beta clip matters
    np.testing.assert_allclose(abar[t - 1], f(t) / f(0), rtol=1e-10)
    betas = cosine_betas(T)
    assert betas.max() == pytest.approx(0.999)  # clipped at the end
    assert abar[0] == pytest.approx(f(1) / f(0), rel=1e-12)


# ---------------------------------------------------------------------------- forward process


def test_q_sample_matches_closed_form():
    d = _diffusion("linear")
    _, abar = _np_linear_abar()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(len(T_CHECK), 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.tensor(T_CHECK)
    got = d.q_sample(x0, t, noise).numpy()
    for i, step in enumerate(T_CHECK):
        expected = np.sqrt(abar[step]) * x0[i].numpy() + np.sqrt(1 - abar[step]) * noise[i].numpy()
        np.testing.assert_allclose(got[i], expected, rtol=1e-12, atol=1e-12)


def test_q_posterior_matches_gaussian_conditioning():
    """q(x_{t-1} | x_t, x0) from the prior N(sqrt(abar_{t-1}) x0, 1 - abar_{t-1}) and the
    likelihood N(sqrt(alpha_t) x_{t-1}, beta_t), combined by precision weighting."""
    d = _diffusion("linear")
    betas, abar = _np_linear_abar()
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(len(T_CHECK), 1, 3, 3, generator=g, dtype=torch.float64) * 2 - 1
    x_t = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    mean, var, log_var = d.q_posterior_mean_variance(x0, x_t, torch.tensor(T_CHECK))
    for i, step in enumerate(T_CHECK):
        if step == 0:  # x_{-1} is x0 itself
            np.testing.assert_allclose(mean[i].numpy(), x0[i].numpy(), atol=1e-12)
            assert var[i].item() == 0.0
            continue
        prior_var = 1 - abar[step - 1]
        precision = 1 / prior_var + (1 - betas[step]) / betas[step]
        exp_var = 1 / precision
        exp_mean = exp_var * (np.sqrt(abar[step - 1]) * x0[i].numpy() / prior_var + np.sqrt(1 - betas[step]) * x_t[i].numpy() / betas[step])
        np.testing.assert_allclose(mean[i].numpy(), exp_mean, rtol=1e-9, atol=1e-12)
        assert var[i].item() == pytest.approx(exp_var, rel=1e-9)
        assert log_var[i].item() == pytest.approx(math.log(exp_var), rel=1e-9)


# ---------------------------------------------------------------------------- targets and loss


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_prediction_targets_invert(prediction, schedule):
    d = _diffusion(schedule, prediction)
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(len(T_CHECK), 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.tensor(T_CHECK)
    x_t = d.q_sample(x0, t, noise)
    target = d.training_target(x0, noise, t)
    if prediction == "v":  # v = sqrt(abar) eps - sqrt(1 - abar) x0
        abar = d.alphas_cumprod[t].view(-1, 1, 1, 1)
        torch.testing.assert_close(target, abar.sqrt() * noise - (1 - abar).sqrt() * x0)
    else:
        assert torch.equal(target, noise)
    x0_hat, eps_hat = d.predict_x0_and_eps(target, x_t, t)
    torch.testing.assert_close(x0_hat, x0, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(eps_hat, noise, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_training_loss_is_zero_for_the_exact_target_and_reproducible(prediction):
    d = _diffusion("cosine", prediction)
    x0 = torch.rand(5, 1, 8, 8) * 2 - 1
    t = torch.tensor([0, 3, 400, 998, 999])
    noise = torch.randn(x0.shape)
    seen = {}

    def exact(x_t, t_float):
        seen["t"] = t_float
        return d.training_target(x0, noise, t_float.long())

    loss = d.training_loss(exact, x0, t=t, noise=noise)
    assert loss.shape == (5,) and torch.all(loss < 1e-10)
    assert seen["t"].dtype == torch.float32 and torch.equal(seen["t"], t.float())
    zero = lambda x_t, t_float: torch.zeros_like(x_t)  # noqa: E731
    loss_a = d.training_loss(zero, x0, generator=torch.Generator().manual_seed(3))
    loss_b = d.training_loss(zero, x0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(loss_a, loss_b) and torch.all(loss_a > 0)


# ---------------------------------------------------------------------------- respacing


@pytest.mark.parametrize("steps", [1, 10, 50, 1000])
def test_respacing_gives_valid_timesteps_and_keeps_marginals(steps):
    d = _diffusion("cosine")
    spaced = d.respace(steps)
    ts = spaced.timestep_map
    assert len(ts) == spaced.num_steps == steps
    assert ts[-1] == 999 and (steps == 1 or ts[0] == 0)
    assert torch.all(ts[1:] > ts[:-1]) and ts.min() >= 0
    # the shorter chain has exactly the original marginals at the kept timesteps
    assert torch.equal(spaced.alphas_cumprod, d.alphas_cumprod[ts])
    assert torch.all(spaced.betas > 0) and torch.all(spaced.betas <= 1)


def test_respacing_rejects_impossible_step_counts():
    assert space_timesteps(1000, 10) == [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]
    with pytest.raises(GlyphfuseError, match="between 1 and 1000"):
        _diffusion().respace(1001)
    with pytest.raises(GlyphfuseError):
        _diffusion().respace(0)


def test_model_receives_original_timesteps_as_float():
    d = _diffusion("linear")
    seen = []

    def model_fn(x, t):
        seen.append(t.clone())
        return torch.zeros_like(x)

    d.sample(model_fn, (2, 1, 4, 4), steps=10, generator=torch.Generator().manual_seed(0))
    assert [int(t[0]) for t in seen] == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    assert all(t.dtype == torch.float32 and t.shape == (2,) for t in seen)


def test_a_start_image_chain_covers_only_the_least_noisy_timesteps():
    d = _diffusion("cosine", "v")
    assert d.timesteps_up_to(1.0) == 1000 and d.timesteps_up_to(0.3) == 300 and d.timesteps_up_to(1e-6) == 1
    with pytest.raises(GlyphfuseError, match=r"in \(0, 1\]"):
        d.timesteps_up_to(0.0)
    assert d.respace(8, 300).timestep_map.tolist() == [0, 43, 85, 128, 171, 214, 256, 299]
    seen = []

    def model_fn(x, t):
        seen.append(int(t[0]))
        return torch.zeros_like(x)

    start = torch.full((2, 1, 4, 4), 0.5)
    d.sample(model_fn, (2, 1, 4, 4), steps=8, start_image=start, start_fraction=0.3, generator=torch.Generator().manual_seed(0))
    assert seen == [299, 256, 214, 171, 128, 85, 43, 0]
    seen.clear()
    d.sample(model_fn, (2, 1, 4, 4), steps=50, start_image=start, start_fraction=0.005, generator=torch.Generator().manual_seed(0))
    assert seen == [4, 3, 2, 1, 0]  # never more steps than timesteps in the range


def test_the_exact_denoiser_of_the_start_image_returns_it():
    """The data distribution is the single point ``target``: from any noisy start the chain must
    end there; started from ``target`` itself with little noise, it cannot move far on the way."""
    d = _diffusion("cosine", "eps")
    target = torch.linspace(-0.8, 0.8, 16).view(1, 1, 4, 4).repeat(2, 1, 1, 1)

    def model_fn(x_t, t_float):
        t = t_float.long()
        a = d.sqrt_alphas_cumprod[t].view(-1, 1, 1, 1).float()
        b = d.sqrt_one_minus_alphas_cumprod[t].view(-1, 1, 1, 1).float()
        return (x_t - a * target) / b

    out = d.sample(model_fn, (2, 1, 4, 4), steps=4, start_image=target + 0.1, start_fraction=0.2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, target, atol=1e-4)


def test_training_timesteps_can_be_limited_to_the_least_noisy():
    d = _diffusion("cosine")
    t = d.sample_timesteps(4000, torch.Generator().manual_seed(0), up_to=300)
    assert int(t.max()) < 300 and int(t.max()) > 250 and int(t.min()) == 0
    seen = []

    def model_fn(x, t_float):
        seen.append(t_float.max().item())
        return torch.zeros_like(x)

    d.training_loss(model_fn, torch.zeros(64, 1, 4, 4), generator=torch.Generator().manual_seed(1), up_to=10)
    assert seen[0] < 10


# ---------------------------------------------------------------------------- samplers


MU, SIGMA = 0.3, 0.2  # data distribution N(MU, SIGMA^2) per pixel


def _gaussian_denoiser(d: GaussianDiffusion, mu=MU, sigma=SIGMA):
    """Exact optimal model output for data ~ N(mu, sigma^2): E[x0 | x_t] is linear in x_t."""

    def model_fn(x_t, t_float):
        t = t_float.long()  # the full (unrespaced) process: original timesteps index the buffers
        a = d.sqrt_alphas_cumprod[t].view(-1, 1, 1, 1).to(x_t.dtype)
        b = d.sqrt_one_minus_alphas_cumprod[t].view(-1, 1, 1, 1).to(x_t.dtype)
        x0 = mu + sigma**2 * a / (a**2 * sigma**2 + b**2) * (x_t - a * mu)
        eps = (x_t - a * x0) / b
        return eps if d.prediction == "eps" else a * eps - b * x0

    return model_fn


@pytest.mark.parametrize("prediction,schedule", [("eps", "cosine"), ("v", "linear")])
def test_ddim_converges_to_the_exact_probability_flow_solution(prediction, schedule):
    """For Gaussian data the probability-flow ODE maps x_T to mu + sigma * z with
    z = (x_T - sqrt(abar_T) mu) / sqrt(abar_T sigma^2 + 1 - abar_T); DDIM (eta 0) is its
    discretisation, so its error must shrink as the step count grows."""
    d = _diffusion(schedule, prediction)
    x_T = torch.randn(64, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    a2 = d.alphas_cumprod[-1].item()
    exact = (MU + SIGMA * (x_T - math.sqrt(a2) * MU) / math.sqrt(a2 * SIGMA**2 + 1 - a2)).clamp(-1, 1)
    errors = []
    for steps in (10, 50, 200):
        out = d.sample(_gaussian_denoiser(d), x_T.shape, steps=steps, initial_noise=x_T, clip=False)
        errors.append((out - exact).abs().max().item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.03


def test_ddim_eta0_is_deterministic_and_independent_of_the_generator():
    d = _diffusion("cosine", "v")
    x_T = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(5))
    model_fn = _gaussian_denoiser(d)
    a = d.sample(model_fn, x_T.shape, steps=20, initial_noise=x_T, generator=torch.Generator().manual_seed(1))
    b = d.sample(model_fn, x_T.shape, steps=20, initial_noise=x_T, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    c = d.sample(model_fn, x_T.shape, steps=20, initial_noise=x_T, eta=1.0, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(a, c)  # eta > 0 does use fresh noise


def test_ddpm_step_equals_ddim_step_with_eta_1():
    """With eta = 1, DDIM's update is the DDPM posterior: same mean and same noise scale."""
    d = _diffusion("cosine", "eps")
    chain = d.respace(25)
    g = torch.Generator().manual_seed(7)
    model_fn = _gaussian_denoiser(d)
    for index in (24, 12, 3, 1, 0):
        x = torch.randn(3, 1, 4, 4, generator=g)
        z = torch.randn(x.shape, generator=g)
        for noise in (None, z):
            ddpm = chain.ddpm_step(model_fn, x, index, noise, clip=False)
            ddim = chain.ddim_step(model_fn, x, index, noise, eta=1.0, clip=False)
            torch.testing.assert_close(ddpm, ddim, rtol=1e-4, atol=1e-5)


def test_ddpm_samples_the_data_distribution():
    d = _diffusion("cosine", "v")
    out = d.sample(_gaussian_denoiser(d), (3000, 1, 1, 1), steps=250, sampler="ddpm", generator=torch.Generator().manual_seed(1), clip=False)
    assert out.mean().item() == pytest.approx(MU, abs=0.02)
    assert out.std().item() == pytest.approx(SIGMA, rel=0.1)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_single_point_data_is_recovered_by_both_samplers(sampler):
    """For one-point data the DDPM mean path and DDIM both land exactly on the point."""
    d = _diffusion("linear", "eps")
    point = torch.tensor(-0.4)
    model_fn = _gaussian_denoiser(d, mu=point.item(), sigma=0.0)
    x_T = torch.randn(4, 1, 3, 3, generator=torch.Generator().manual_seed(3))
    if sampler == "ddim":
        out = d.sample(model_fn, x_T.shape, steps=30, initial_noise=x_T)
    else:
        chain, out = d.respace(30), x_T
        for index in reversed(range(30)):
            out = chain.ddpm_step(model_fn, out, index, noise=None)
    torch.testing.assert_close(out, torch.full_like(out, point.item()), atol=1e-5, rtol=0)


def test_sampling_is_reproducible_per_sample_generator():
    d = _diffusion("cosine", "eps")
    model_fn = _gaussian_denoiser(d)
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    both = d.sample(model_fn, (2, 1, 4, 4), steps=10, sampler="ddpm", generator=gens([10, 11]))
    alone = d.sample(model_fn, (1, 1, 4, 4), steps=10, sampler="ddpm", generator=gens([11]))
    torch.testing.assert_close(both[1:], alone, rtol=0, atol=1e-6)
    assert not torch.allclose(both[0], both[1])


def test_sampler_rejects_unknown_names():
    with pytest.raises(GlyphfuseError, match="unknown sampler 'euler'; choose one of: ddim, ddpm, dpmpp-2m"):
        _diffusion().sample(lambda x, t: x, (1, 1, 2, 2), steps=2, sampler="euler")
    with pytest.raises(GlyphfuseError, match="eta is a ddim setting"):
        _diffusion().sample(lambda x, t: x, (1, 1, 2, 2), steps=2, sampler="dpmpp-2m", eta=0.5)
    with pytest.raises(GlyphfuseError, match="unknown noise schedule"):
        GaussianDiffusion(DiffusionConfig(schedule="sqrt"))
    with pytest.raises(GlyphfuseError, match="unknown prediction"):
        GaussianDiffusion(DiffusionConfig(prediction="x0"))


# ---------------------------------------------------------------------------- DPM-Solver++(2M)


@pytest.mark.parametrize("prediction,schedule", [("eps", "cosine"), ("v", "linear"), ("v", "cosine")])
def test_dpmpp_2m_and_ddim_converge_to_the_same_ode_solution(prediction, schedule):
    """Both solve the probability-flow ODE on the same grid: as the step count grows, their outputs
    meet at the exact solution (Gaussian data, see the DDIM test above), DPM-Solver++ faster."""
    d = _diffusion(schedule, prediction)
    x_T = torch.randn(64, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    a2 = d.alphas_cumprod[-1].item()
    exact = (MU + SIGMA * (x_T - math.sqrt(a2) * MU) / math.sqrt(a2 * SIGMA**2 + 1 - a2)).clamp(-1, 1)
    dpm_errors, ddim_errors, gaps = [], [], []
    for steps in (50, 200, 1000):
        ddim = d.sample(_gaussian_denoiser(d), x_T.shape, steps=steps, initial_noise=x_T, clip=False)
        dpm = d.sample(_gaussian_denoiser(d), x_T.shape, steps=steps, initial_noise=x_T, clip=False, sampler="dpmpp-2m")
        dpm_errors.append((dpm - exact).abs().max().item())
        ddim_errors.append((ddim - exact).abs().max().item())
        gaps.append((dpm - ddim).abs().max().item())
    assert dpm_errors[0] > dpm_errors[1] > dpm_errors[2] and gaps[0] > gaps[1] > gaps[2]
    assert dpm_errors[2] < 1e-3 and gaps[2] < 6e-3
    assert all(dpm < ddim for dpm, ddim in zip(dpm_errors, ddim_errors))  # second order beats first


def _toy_x0(x_t, alpha):
    """A smooth, nonlinear, bounded data prediction (so the second-order term matters)."""
    return 0.8 * torch.tanh(3.0 * alpha * x_t + 0.5 * torch.sin(2.0 * x_t))


def _toy_model(abar_full: np.ndarray, prediction: str):
    """model_fn(x_t, original t) giving eps or v whose implied x0 is _toy_x0."""

    def model_fn(x_t, t_float):
        abar = torch.as_tensor(abar_full[t_float.long().numpy()], dtype=x_t.dtype).view(-1, 1, 1, 1)
        alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
        x0 = _toy_x0(x_t, alpha)
        eps = (x_t - alpha * x0) / sigma
        return eps if prediction == "eps" else alpha * eps - sigma * x0

    return model_fn


def _reference_dpmpp_2m(model_fn, x_T: np.ndarray, abar_full: np.ndarray, steps: int, prediction: str) -> np.ndarray:
    """DPM-Solver++(2M) written out from the paper (Lu et al. 2022, Alg. 2) in float64, on the
    timesteps round(linspace(0, T-1, steps)) from T-1 down to 0, then x0 of the last one:
        lambda = log(alpha / sigma),  h_i = lambda_i - lambda_{i-1},  r_i = h_{i-1} / h_i
        D_i = x0_{i-1} (first step)  or  (1 + 1/(2 r_i)) x0_{i-1} - 1/(2 r_i) x0_{i-2}
        x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i (exp(-h_i) - 1) D_i
    """
    timesteps = [int(t) for t in np.round(np.linspace(0, len(abar_full) - 1, steps))][::-1]
    alpha, sigma = np.sqrt(abar_full), np.sqrt(1 - abar_full)
    lam = np.log(alpha / sigma)
    x, x0s, hs = x_T.astype(np.float64), [], []
    for i, t in enumerate(timesteps):
        out = model_fn(torch.from_numpy(x), torch.full((x.shape[0],), float(t), dtype=torch.float64)).numpy()
        x0 = (x - sigma[t] * out) / alpha[t] if prediction == "eps" else alpha[t] * x - sigma[t] * out
        x0s.append(x0)
        if i == len(timesteps) - 1:
            return np.clip(x0, -1, 1)
        t_next = timesteps[i + 1]
        h = lam[t_next] - lam[t]
        if i == 0:
            D = x0
        else:
            r = hs[-1] / h
            D = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0s[-2]
        hs.append(h)
        x = sigma[t_next] / sigma[t] * x - alpha[t_next] * (np.exp(-h) - 1) * D


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_dpmpp_2m_matches_a_reference_implementation(prediction, schedule):
    d = _diffusion(schedule, prediction)
    abar_full = d.alphas_cumprod.numpy()
    model_fn = _toy_model(abar_full, prediction)
    x_T = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(4))
    for steps in (3, 7, 25):
        expected = _reference_dpmpp_2m(model_fn, x_T.double().numpy(), abar_full, steps, prediction)
        # the pure solver in float64 on the respaced chain, given the toy's x0 directly: exact agreement
        chain_abar = d.respace(steps).alphas_cumprod
        denoise = lambda x, index: _toy_x0(x, chain_abar[index].sqrt())  # noqa: E731
        pure = dpmpp_2m(denoise, x_T.double(), chain_abar.tolist()).clamp(-1, 1)
        np.testing.assert_allclose(pure.numpy(), expected, rtol=0, atol=1e-9)
        # end to end through sample(): float32, eps/v converted to x0 (ill-conditioned at abar ~ 1e-9)
        got = d.sample(model_fn, x_T.shape, steps=steps, initial_noise=x_T, clip=False, sampler="dpmpp-2m")
        torch.testing.assert_close(got, torch.from_numpy(expected).float(), rtol=0, atol=5e-4)
        ddim = d.sample(model_fn, x_T.shape, steps=steps, initial_noise=x_T, clip=False)
        assert (got - ddim).abs().max() > 1e-2  # the second-order term is really used


def test_dpmpp_2m_first_order_steps_are_ddim():
    """With 2 steps both updates of DPM-Solver++(2M) are first order (the first, and the final
    one onto the clean image), which is DDIM with eta 0; clipping enters both the same way."""
    d = _diffusion("cosine", "v")
    model_fn = _toy_model(d.alphas_cumprod.numpy(), "v")
    x_T = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(8))
    for clip in (False, True):
        ddim = d.sample(model_fn, x_T.shape, steps=2, initial_noise=x_T, clip=clip)
        dpm = d.sample(model_fn, x_T.shape, steps=2, initial_noise=x_T, clip=clip, sampler="dpmpp-2m")
        torch.testing.assert_close(dpm, ddim, rtol=0, atol=1e-5)


def test_dpmpp_2m_calls_the_model_once_per_step_and_reports_progress():
    d = _diffusion("linear", "eps")
    seen, progress = [], []

    def model_fn(x, t):
        seen.append(int(t[0]))
        return torch.zeros_like(x)

    d.sample(model_fn, (2, 1, 4, 4), steps=10, sampler="dpmpp-2m", generator=torch.Generator().manual_seed(0),
             progress=lambda done, total: progress.append((done, total)))
    assert seen == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]  # DDIM's grid, original timesteps
    assert progress == [(i, 10) for i in range(1, 11)]


def test_dpmpp_2m_with_dynamic_threshold_stays_in_range():
    d = _diffusion("cosine", "eps")
    wild = lambda x, t: -5.0 * x  # noqa: E731
    out = d.sample(wild, (2, 1, 4, 4), steps=8, sampler="dpmpp-2m", dynamic_threshold=0.9, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0


# ---------------------------------------------------------------------------- guidance, thresholding


def test_apply_guidance():
    cond, uncond = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    assert torch.equal(apply_guidance(cond, uncond, 1.0), cond)
    torch.testing.assert_close(apply_guidance(cond, uncond, 0.0), uncond)
    torch.testing.assert_close(apply_guidance(cond, uncond, 3.0), uncond + 3.0 * (cond - uncond))


def test_dynamic_threshold_bounds():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 1, 8, 8, generator=g)
    x0[0] *= 5.0  # far outside [-1, 1]
    x0[1] = x0[1].clamp(-0.9, 0.9)  # already inside: unchanged (s = 1)
    out = dynamic_threshold(x0, 0.95)
    assert out.abs().max() <= 1.0
    assert torch.equal(out[1], x0[1])
    s0 = torch.quantile(x0[0].abs().flatten(), 0.95)
    torch.testing.assert_close(out[0], x0[0].clamp(-s0, s0) / s0)
    assert torch.allclose(dynamic_threshold(x0, 1.0)[0].abs().max(), torch.tensor(1.0))
    with pytest.raises(GlyphfuseError):
        dynamic_threshold(x0, 1.5)


def test_samples_stay_in_range_with_dynamic_threshold():
    d = _diffusion("cosine", "eps")
    wild = lambda x, t: -5.0 * x  # noqa: E731  (predicts x0 far outside [-1, 1])
    out = d.sample(wild, (2, 1, 4, 4), steps=8, dynamic_threshold=0.9, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0


# ---------------------------------------------------------------------------- the model can fit


def test_optimisation_lowers_the_loss_on_one_batch():
    from glyphfuse.core.model import GlyphModel
    from glyphfuse.core.tokenizer import tokenize

    torch.manual_seed(0)
    config = get_preset("tiny")  # shrunk further: 16 px, ~100k parameters
    config.image_size = 16
    config.unet = dataclasses.replace(config.unet, base_channels=8, head_channels=8)
    config.text = dataclasses.replace(config.text, width=16, head_dim=8)
    model = GlyphModel(config)
    d = GaussianDiffusion(config.diffusion)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(4, 1, 16, 16, generator=g) > 0.5).float() * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([50, 300, 600, 900])
    text = tokenize(["ab", "c", "hello", ""], config.text.max_length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model_fn = lambda x, tt: model(x, tt, text)  # noqa: E731
    losses = []
    for _ in range(30):
        loss = d.training_loss(model_fn, x0, t=t, noise=noise).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses

"""Gaussian diffusion: every piece of schedule math in glyphfuse lives in this file.

Notation (Ho et al. 2020; Nichol & Dhariwal 2021):

* ``beta_t``   noise added at step t; ``alpha_t = 1 - beta_t``; ``abar_t = prod_{s<=t} alpha_s``
* forward process   ``x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * eps``,  eps ~ N(0, I)
* the network predicts ``eps`` or ``v = sqrt(abar_t) * eps - sqrt(1 - abar_t) * x0``
  (Salimans & Ho 2022); both convert back to ``(x0, eps)`` exactly.

Schedule buffers are computed once in float64 on the CPU and cast to the working dtype and
device only when gathered for a batch. Timesteps are integer indices into the buffers; the
network is always given the ORIGINAL timestep (0..num_timesteps-1, as float) even when sampling
with fewer steps: :meth:`GaussianDiffusion.respace` builds a shorter chain over an evenly spaced
subset of the original timesteps and keeps ``timestep_map`` from its indices to the originals.

Sampling: DDPM ancestral (posterior variance "fixed small"), DDIM (``eta`` 0 deterministic, 1 the
DDPM variance) and DPM-Solver++(2M) (Lu et al. 2022: second order, the ODE of DDIM with eta 0, on
the same respaced grid), any number of steps, x0 clipped (or Imagen-thresholded) before each
update; DDPM and DDIM also inpaint training-free (RePaint). All randomness comes from the
``generator`` argument: one ``torch.Generator`` for the batch, or one per sample.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import numpy as np
import torch

from glyphfuse.core.config import PREDICTIONS, SAMPLERS, SCHEDULES, DiffusionConfig, check_sampler  # noqa: F401 (SAMPLERS: part of this API)
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.noise import randint, randn

# model_fn(x_t (B, C, H, W), timesteps (B,) float in the original 0..T-1 scale) -> output (B, C, H, W)
ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# denoise(x (B, C, H, W) at chain index i, i) -> predicted (clipped) x0 (B, C, H, W)
Denoiser = Callable[[torch.Tensor, int], torch.Tensor]
# project(x0) -> x0: a constraint on every predicted clean image (B, C, H, W), see GaussianDiffusion.sample
Projection = Callable[[torch.Tensor], torch.Tensor]


# -- Schedules ------------------------------------------------------------------------------


def linear_betas(num_timesteps: int) -> np.ndarray:
    """Ho et al.'s linear schedule (1e-4 .. 0.02 at T=1000), rescaled so any T gives a similar
    total amount of noise (improved-diffusion's convention)."""
    scale = 1000.0 / num_timesteps
    return np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)


def cosine_betas(num_timesteps: int, offset: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule: abar(t) = f(t)/f(0), f(t) = cos((t/T + s)/(1 + s) * pi/2)^2,
    betas = 1 - abar(t+1)/abar(t) clipped at ``max_beta`` (avoids a singularity at t = T)."""

    def f(t: np.ndarray) -> np.ndarray:
        return np.cos((t / num_timesteps + offset) / (1 + offset) * math.pi / 2) ** 2

    steps = np.arange(num_timesteps, dtype=np.float64)
    betas = 1.0 - f(steps + 1) / f(steps)
    return np.minimum(betas, max_beta)


def make_betas(schedule: str, num_timesteps: int) -> np.ndarray:
    if num_timesteps < 1:
        raise GlyphfuseError(f"diffusion num_timesteps must be >= 1, got {num_timesteps}")
    if schedule == "linear":
        return linear_betas(num_timesteps)
    if schedule == "cosine":
        return cosine_betas(num_timesteps)
    raise GlyphfuseError(f"unknown noise schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")


def space_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` evenly spaced timesteps out of 0..num_timesteps-1, always including the last one
    (sampling starts from pure noise) and, for steps >= 2, the first."""
    if not 1 <= steps <= num_timesteps:
        raise GlyphfuseError(f"sampling steps must be between 1 and {num_timesteps} (the model's num_timesteps), got {steps}")
    if steps == 1:
        return [num_timesteps - 1]
    # Spacing (T-1)/(steps-1) >= 1, so the rounded values are distinct.
    return [int(t) for t in np.round(np.linspace(0, num_timesteps - 1, steps))]


def dynamic_threshold(x0: torch.Tensor, percentile: float) -> torch.Tensor:
    """Imagen's dynamic thresholding: per sample, s = max(1, the ``percentile`` quantile of |x0|);
    clip x0 to [-s, s] and divide by s. Result lies in [-1, 1]."""
    if not 0.0 < percentile <= 1.0:
        raise GlyphfuseError(f"dynamic threshold percentile must be in (0, 1], got {percentile}")
    flat = x0.detach().abs().reshape(x0.shape[0], -1).float()  # (B, C*H*W)
    s = torch.quantile(flat, percentile, dim=1).clamp(min=1.0).to(x0.dtype)  # (B,)
    s = s.view(-1, *([1] * (x0.ndim - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s


def augment_low_res(low_res: torch.Tensor, level: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Noise augmentation of a super-resolution model's low-res input, variance preserving:
    sqrt(1 - level^2) * low_res + level * noise. low_res, noise (B, C, h, w); level (B,) in [0, 1].
    Training and sampling both use it; the model is told the level (``low_res_noise_level``)."""
    level = level.to(low_res).view(-1, 1, 1, 1)
    return (1.0 - level.square()).sqrt() * low_res + level * noise


# -- DPM-Solver++(2M): a pure function of a denoiser and a chain's alphas_cumprod -----------


def half_log_snr(abar: float) -> float:
    """lambda = log(alpha / sigma) = log(sqrt(abar) / sqrt(1 - abar)), for 0 < abar < 1."""
    return 0.5 * (math.log(abar) - math.log1p(-abar))


def dpmpp_2m(denoise: Denoiser, x: torch.Tensor, alphas_cumprod: Sequence[float], progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): the probability-flow ODE solved in data
    prediction, second order from the x0 of the current and the previous step.

    alphas_cumprod: abar of the N chain indices, decreasing (index 0 = least noisy). ``x`` (B, C, H, W)
    is at index N-1; the run visits N-1, ..., 0 (one ``denoise`` call each, the same grid as DDIM)
    and ends on the clean image (abar = 1). With lambda = log(alpha/sigma), h = lambda_next - lambda:

        x_next = (sigma_next / sigma) * x - alpha_next * expm1(-h) * D
        D = (1 + 1/(2r)) * x0 - 1/(2r) * x0_previous,   r = h_previous / h

    The first step (no previous x0) uses D = x0, which is exactly DDIM with eta 0; the last one
    (sigma_next = 0, h infinite) returns x0, as DDIM does.
    """
    abar = [float(a) for a in alphas_cumprod]
    total = len(abar)
    previous_x0, previous_h = None, None
    for done, index in enumerate(reversed(range(total)), start=1):
        x0 = denoise(x, index)  # (B, C, H, W)
        if index == 0:
            x = x0
        else:
            abar_next = abar[index - 1]
            alpha_next, sigma_next, sigma = math.sqrt(abar_next), math.sqrt(1 - abar_next), math.sqrt(1 - abar[index])
            h = half_log_snr(abar_next) - half_log_snr(abar[index])  # > 0
            if previous_x0 is None:
                direction = x0
            else:
                c = h / (2 * previous_h)  # 1 / (2r)
                direction = (1 + c) * x0 - c * previous_x0
            x = (sigma_next / sigma) * x - alpha_next * math.expm1(-h) * direction
            previous_x0, previous_h = x0, h
        if progress is not None:
            progress(done, total)
    return x


# -- The diffusion process ------------------------------------------------------------------


class GaussianDiffusion:
    """Forward process, training loss and samplers for one noise schedule.

    Built from a :class:`DiffusionConfig`; ``alphas_cumprod``/``timestep_map`` are given only by
    :meth:`respace`, which returns the same kind of object over a subset of the timesteps.
    """

    def __init__(self, config: DiffusionConfig, *, alphas_cumprod: np.ndarray | None = None, timestep_map: Sequence[int] | None = None):
        if config.prediction not in PREDICTIONS:
            raise GlyphfuseError(f"unknown prediction target {config.prediction!r}; choose one of: {', '.join(PREDICTIONS)}")
        self.config = config
        self.prediction = config.prediction
        if alphas_cumprod is None:
            betas = make_betas(config.schedule, config.num_timesteps)
            abar = np.cumprod(1.0 - betas)
            abar_prev = np.append(1.0, abar[:-1])
        else:  # a respaced chain: abar kept exactly, so its marginals equal the original ones
            abar = np.asarray(alphas_cumprod, dtype=np.float64)
            abar_prev = np.append(1.0, abar[:-1])
            betas = 1.0 - abar / abar_prev
        alphas = 1.0 - betas
        if abar.ndim != 1 or not (np.all(betas > 0) and np.all(betas <= 1)):
            raise ValueError("alphas_cumprod must be a strictly decreasing 1-D array in [0, 1)")
        self.num_steps = len(abar)
        self._tables: dict = {}  # (buffer id, device, dtype) -> cast copy, see _gather
        self.timestep_map = torch.as_tensor(
            list(range(self.num_steps)) if timestep_map is None else list(timestep_map), dtype=torch.long
        )

        # q(x_{t-1} | x_t, x0) = N(coef1 * x0 + coef2 * x_t, posterior_variance)
        posterior_variance = betas * (1.0 - abar_prev) / (1.0 - abar)
        # float64 (T,) buffers on the CPU; see _gather.
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))  # noqa: E731
        self.betas = as_t(betas)
        self.alphas_cumprod = as_t(abar)
        self.alphas_cumprod_prev = as_t(abar_prev)
        self.sqrt_alphas_cumprod = as_t(np.sqrt(abar))
        self.sqrt_one_minus_alphas_cumprod = as_t(np.sqrt(1.0 - abar))
        self.posterior_variance = as_t(posterior_variance)
        # log variance with the t=0 value (exactly 0) replaced by the t=1 one, as is customary
        self.posterior_log_variance_clipped = as_t(np.log(np.append(posterior_variance[1], posterior_variance[1:])) if self.num_steps > 1 else np.array([-np.inf]))
        self.posterior_mean_coef1 = as_t(betas * np.sqrt(abar_prev) / (1.0 - abar))
        self.posterior_mean_coef2 = as_t((1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar))

    # -- bookkeeping --------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"GaussianDiffusion(schedule={self.config.schedule!r}, prediction={self.prediction!r}, steps={self.num_steps})"

    def respace(self, steps: int, up_to: int | None = None) -> "GaussianDiffusion":
        """The process restricted to ``steps`` evenly spaced timesteps of the first ``up_to`` (default
        all). Betas come from the kept alphas_cumprod: the same marginals q(x_t|x0) at those steps."""
        up_to = self.num_steps if up_to is None else up_to
        if steps == self.num_steps and up_to == self.num_steps:
            return self
        use = space_timesteps(up_to, steps)
        abar = self.alphas_cumprod.numpy()[use]  # betas of the new chain: 1 - abar_i / abar_{i-1}
        return GaussianDiffusion(self.config, alphas_cumprod=abar, timestep_map=self.timestep_map[use].tolist())

    def timesteps_up_to(self, fraction: float) -> int:
        """How many leading (least noisy) timesteps make up ``fraction`` of the schedule, at least 1."""
        if not 0.0 < fraction <= 1.0:
            raise GlyphfuseError(f"a fraction of the timesteps must be in (0, 1], got {fraction}")
        return max(1, min(self.num_steps, round(fraction * self.num_steps)))

    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """Chain indices (B,) long -> the original timesteps the network expects, (B,) float."""
        return self.timestep_map[t.cpu()].to(device=t.device, dtype=torch.float32)

    def _gather(self, buffer: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """buffer[t] as (B, 1, 1, ...) in like's dtype and device. Each float64 buffer is cast
        (on the CPU: MPS has no float64) and moved once per (device, dtype), then cached."""
        key = (id(buffer), like.device, like.dtype)
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = buffer.to(like.dtype).to(like.device)
        return table[t.to(like.device).long()].view(-1, *([1] * (like.ndim - 1)))

    # -- forward process ----------------------------------------------------------------------

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample x_t ~ q(x_t | x0): sqrt(abar_t) x0 + sqrt(1 - abar_t) noise.  x0, noise: (B, ...); t: (B,) long."""
        return self._gather(self.sqrt_alphas_cumprod, t, x0) * x0 + self._gather(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise

    def q_posterior_mean_variance(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """Mean, variance and (clipped) log variance of q(x_{t-1} | x_t, x0)."""
        mean = self._gather(self.posterior_mean_coef1, t, x_t) * x0 + self._gather(self.posterior_mean_coef2, t, x_t) * x_t
        variance = self._gather(self.posterior_variance, t, x_t)
        log_variance = self._gather(self.posterior_log_variance_clipped, t, x_t)
        return mean, variance, log_variance

    # -- prediction targets -------------------------------------------------------------------

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network should output for x_t = q_sample(x0, t, noise): eps, or v."""
        if self.prediction == "eps":
            return noise
        return self._gather(self.sqrt_alphas_cumprod, t, x0) * noise - self._gather(self.sqrt_one_minus_alphas_cumprod, t, x0) * x0

    def predict_x0_and_eps(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Network output -> (x0, eps) implied by it at x_t (exact inverse of training_target)."""
        a = self._gather(self.sqrt_alphas_cumprod, t, x_t)
        b = self._gather(self.sqrt_one_minus_alphas_cumprod, t, x_t)
        if self.prediction == "eps":
            eps = output
            x0 = (x_t - b * eps) / a
        else:  # v = a*eps - b*x0 and x_t = a*x0 + b*eps  =>  x0 = a*x_t - b*v, eps = b*x_t + a*v
            x0 = a * x_t - b * output
            eps = b * x_t + a * output
        return x0, eps

    def eps_from_x0(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self._gather(self.sqrt_alphas_cumprod, t, x_t)
        b = self._gather(self.sqrt_one_minus_alphas_cumprod, t, x_t)
        return (x_t - a * x0) / b

    # -- training -----------------------------------------------------------------------------

    def sample_timesteps(self, batch: int, generator=None, device: torch.device | str = "cpu", up_to: int | None = None) -> torch.Tensor:
        """Timesteps (B,) long, uniform over 0..T-1, or over 0..up_to-1 (the least noisy ones)."""
        return randint(self.num_steps if up_to is None else up_to, batch, generator).to(device)

    def training_loss(self, model_fn: ModelFn, x0: torch.Tensor, t=None, noise=None, generator=None, up_to: int | None = None,
                      weight: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample MSE between the network output and its target (eps or v), shape (B,), or its
        mean weighted by ``weight`` (B, 1, H, W) > 0 (a painter counts its text pixels more). ``t`` (uniform
        over the first ``up_to`` timesteps) and ``noise`` come from ``generator`` if not given."""
        batch = x0.shape[0]
        if t is None:
            t = self.sample_timesteps(batch, generator, x0.device, up_to)
        if noise is None:
            noise = randn(x0.shape, generator, x0.device, x0.dtype)
        output = model_fn(self.q_sample(x0, t, noise), self.model_timesteps(t))
        error = (output.float() - self.training_target(x0, noise, t).float()).pow(2).reshape(batch, -1)
        if weight is None:
            return error.mean(dim=1)
        weight = weight.float().expand(batch, *x0.shape[1:]).reshape(batch, -1)
        return (error * weight).sum(dim=1) / weight.sum(dim=1)

    # -- sampling -----------------------------------------------------------------------------

    def _denoise(self, model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor, clip: bool, threshold: float | None,
                 project: Projection | None = None):
        """Run the network at chain index t; (x0, eps) after ``project``, thresholding or clipping."""
        output = model_fn(x, self.model_timesteps(t)).to(x.dtype)
        x0, eps = self.predict_x0_and_eps(output, x, t)
        if project is not None:
            x0 = project(x0)
        if threshold is not None:
            x0 = dynamic_threshold(x0, threshold)
        elif clip:
            x0 = x0.clamp(-1.0, 1.0)
        if project is not None or threshold is not None or clip:
            eps = self.eps_from_x0(x0, x, t)  # keep eps consistent with the processed x0
        return x0, eps

    def ddpm_step(self, model_fn: ModelFn, x: torch.Tensor, index: int, noise: torch.Tensor | None, *, clip: bool = True, threshold: float | None = None,
                  project: Projection | None = None) -> torch.Tensor:
        """One ancestral step x_t -> x_{t-1} at chain index ``index``: the posterior mean given the
        predicted x0, plus sqrt(posterior variance) * noise (no noise at the last step, or when
        ``noise`` is None: the "mean path")."""
        t = torch.full((x.shape[0],), index, dtype=torch.long, device=x.device)
        x0, _ = self._denoise(model_fn, x, t, clip, threshold, project)
        mean, variance, _ = self.q_posterior_mean_variance(x0, x, t)
        return mean if index == 0 or noise is None else mean + variance.sqrt() * noise

    def ddim_step(self, model_fn: ModelFn, x: torch.Tensor, index: int, noise: torch.Tensor | None, *, eta: float = 0.0, clip: bool = True, threshold: float | None = None,
                  project: Projection | None = None) -> torch.Tensor:
        """One DDIM step (Song et al. 2021, eq. 12) at chain index ``index``:
        x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma * noise,
        sigma = eta * sqrt((1 - abar_prev)/(1 - abar_t)) * sqrt(1 - abar_t/abar_prev)."""
        t = torch.full((x.shape[0],), index, dtype=torch.long, device=x.device)
        x0, eps = self._denoise(model_fn, x, t, clip, threshold, project)
        abar, abar_prev = float(self.alphas_cumprod[index]), float(self.alphas_cumprod_prev[index])
        sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar)) * math.sqrt(max(0.0, 1 - abar / abar_prev))
        x_prev = math.sqrt(abar_prev) * x0 + math.sqrt(max(0.0, 1 - abar_prev - sigma**2)) * eps
        if sigma > 0 and noise is not None:
            x_prev = x_prev + sigma * noise
        return x_prev

    @torch.no_grad()
    def sample(
        self,
        model_fn: ModelFn,
        shape: Sequence[int],
        *,
        steps: int | None = None, sampler: str = "ddim", eta: float = 0.0, generator=None,
        dynamic_threshold: float | None = None, clip: bool = True, project: Projection | None = None,
        progress: Callable[[int, int], None] | None = None, device: torch.device | str = "cpu",
        initial_noise: torch.Tensor | None = None, start_image: torch.Tensor | None = None, start_fraction: float = 1.0,
        known: torch.Tensor | None = None, mask: torch.Tensor | None = None, resample: int = 1,
    ) -> torch.Tensor:
        """Draw samples (B, C, H, W) in [-1, 1] by running ``steps`` denoising steps from noise.

        sampler: "ddim" (``eta`` = 0 deterministic given the starting noise), "ddpm" (ancestral) or
        "dpmpp-2m" (deterministic, second order; see :func:`dpmpp_2m`). Every sampler calls
        ``model_fn`` once per step.
        generator: a torch.Generator or one per sample (dim 0); the only source of randomness.
        dynamic_threshold: Imagen percentile (e.g. 0.995) instead of static clipping of x0.
        progress: called as progress(steps_done, steps_total) after every step.
        start_image: (B, C, H, W) to refine instead of pure noise: the chain covers the first
        ``start_fraction`` of the timesteps, starting from it noised there (SR: the bicubic upsample).
        known (B, C, H, W), mask (B, 1, H, W), 1 = draw: training-free inpainting (RePaint, Lugmayr et al.
        2022; ddim or ddpm): after every step the known pixels, noised to it, replace the drawn ones
        where mask is 0; ``resample`` > 1 backs up one step (forward noise) and redoes it, to harmonise.
        project: applied to every predicted x0 (B, C, H, W) before clipping, every sampler and step
        (a painter's ink anchoring, :func:`glyphfuse.sampling.glyphs.ink_anchor`).
        """
        check_sampler(sampler)
        if eta < 0 or (eta > 0 and sampler == "dpmpp-2m"):
            raise GlyphfuseError(f"eta must be >= 0, got {eta}" if eta < 0 else f"eta is a ddim setting; dpmpp-2m is deterministic (got eta {eta})")
        shape = tuple(shape)
        up_to = self.num_steps if start_image is None else self.timesteps_up_to(start_fraction)
        chain = self.respace(min(steps or self.num_steps, up_to), up_to)
        x = initial_noise.to(device=device, dtype=torch.float32) if initial_noise is not None else randn(shape, generator, device)
        if start_image is not None:  # noised to the chain's top timestep
            x = chain.q_sample(start_image.to(device=device, dtype=torch.float32), torch.full((shape[0],), chain.num_steps - 1, device=device), x)
        if known is not None and (sampler == "dpmpp-2m" or resample < 1):
            raise GlyphfuseError(f"training-free inpainting runs with the ddim or ddpm sampler and resample >= 1, not {sampler}, {resample}")
        if sampler == "dpmpp-2m":

            def denoise(x_t: torch.Tensor, index: int) -> torch.Tensor:
                t = torch.full((x_t.shape[0],), index, dtype=torch.long, device=x_t.device)
                return chain._denoise(model_fn, x_t, t, clip, dynamic_threshold, project)[0]

            return dpmpp_2m(denoise, x, chain.alphas_cumprod.tolist(), progress).clamp(-1.0, 1.0)
        total = chain.num_steps
        x = chain.paste_known(x, total - 1, known, mask, generator)
        for done, index in enumerate(reversed(range(total)), start=1):
            for round_ in range(resample if known is not None else 1):
                noise = randn(shape, generator, device) if index > 0 and (sampler == "ddpm" or eta > 0) else None
                step = chain.ddpm_step if sampler == "ddpm" else functools.partial(chain.ddim_step, eta=eta)
                x = chain.paste_known(step(model_fn, x, index, noise, clip=clip, threshold=dynamic_threshold, project=project), index - 1, known, mask, generator)
                if round_ < resample - 1 and index > 0:  # RePaint: back up one step (forward noise) and redo it
                    beta = float(chain.betas[index])
                    x = math.sqrt(1.0 - beta) * x + math.sqrt(beta) * randn(shape, generator, device)
            if progress is not None:
                progress(done, total)
        return x.clamp(-1.0, 1.0)

    def paste_known(self, x: torch.Tensor, index: int, known: torch.Tensor | None, mask: torch.Tensor | None, generator) -> torch.Tensor:
        """x at chain index ``index`` (-1: clean) with the known pixels (where ``mask`` is 0), noised to there afresh, put back."""
        if known is None or mask is None:
            return x
        t = torch.full((x.shape[0],), max(index, 0), device=x.device)
        noised = known.to(x) if index < 0 else self.q_sample(known.to(x), t, randn(tuple(x.shape), generator, x.device))
        return mask.to(x) * x + (1.0 - mask.to(x)) * noised

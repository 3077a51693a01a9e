"""Random draws from per-sample generators: where every sample's noise comes from.

``generator`` is one ``torch.Generator`` for the whole batch, or a list with one per sample along
dim 0 (so a sample's noise does not depend on the batch it is in). Noise is drawn on the
generator's device and then moved, so a CPU generator gives the same numbers on any device.
"""

from __future__ import annotations

from typing import Sequence

import torch


def as_generator_list(generator, batch: int) -> list[torch.Generator] | None:
    """None for one generator (or none); the list of per-sample generators, checked against ``batch``."""
    if generator is None or isinstance(generator, torch.Generator):
        return None
    generators = list(generator)
    if len(generators) != batch:
        raise ValueError(f"got {len(generators)} generators for a batch of {batch}")
    return generators


def randn(shape: Sequence[int], generator=None, device: torch.device | str = "cpu", dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise of ``shape`` drawn from ``generator`` (one, or a list with one per
    sample along dim 0). Noise is drawn on the generator's device and then moved, so a CPU
    generator gives the same numbers whatever device the model runs on."""
    shape = tuple(shape)
    generators = as_generator_list(generator, shape[0])
    if generators is None:
        gen_device = generator.device if generator is not None else torch.device("cpu")
        noise = torch.randn(shape, generator=generator, device=gen_device, dtype=torch.float32)
    else:
        noise = torch.stack([torch.randn(shape[1:], generator=g, device=g.device, dtype=torch.float32) for g in generators])
    return noise.to(device=device, dtype=dtype)


def randint(high: int, batch: int, generator=None) -> torch.Tensor:
    """``batch`` integers in [0, high) from ``generator`` (one, or one per sample)."""
    generators = as_generator_list(generator, batch)
    if generators is None:
        gen_device = generator.device if generator is not None else torch.device("cpu")
        return torch.randint(0, high, (batch,), generator=generator, device=gen_device)
    return torch.cat([torch.randint(0, high, (1,), generator=g, device=g.device).cpu() for g in generators])

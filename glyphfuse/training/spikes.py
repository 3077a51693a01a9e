"""The spike guard (TrainConfig.spike_skip): an optimizer step whose gradient norm is far above the
running average is skipped, so one outlier batch cannot throw AdamW's moments and the weights off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SPIKE_WARMUP_STEPS = 50  # accepted steps that set the running gradient-norm average before the guard acts


@dataclass
class SpikeGuard:
    """The running average of accepted steps' gradient norms, and the steps skipped as spikes
    (TrainConfig.spike_skip). Saved in each checkpoint's trainer.json, so a resumed run decides
    exactly as an uninterrupted one. Every rank sees the same all-reduced gradients, so every rank
    decides the same."""

    average: float = 0.0  # exponential moving average (0.99) of accepted gradient norms
    accepted: int = 0
    skipped: int = 0
    last: float = 0.0  # the newest step's norm (metrics.jsonl)

    def accepts(self, grad_norm: float, factor: float) -> bool:
        """Whether a step of gradient norm ``grad_norm`` is applied; updates the statistics."""
        self.last = grad_norm
        if factor > 0 and self.accepted >= SPIKE_WARMUP_STEPS and grad_norm > factor * self.average:
            self.skipped += 1
            return False
        self.average = grad_norm if self.accepted == 0 else 0.99 * self.average + 0.01 * grad_norm
        self.accepted += 1
        return True

    def to_dict(self) -> dict[str, float]:
        return {"grad_norm_average": self.average, "accepted_steps": self.accepted, "skipped_steps": self.skipped}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> "SpikeGuard":
        """From a checkpoint's loop state ({} for a checkpoint written before the guard existed)."""
        return cls(average=float(state.get("grad_norm_average", 0.0)), accepted=int(state.get("accepted_steps", 0)),
                   skipped=int(state.get("skipped_steps", 0)))

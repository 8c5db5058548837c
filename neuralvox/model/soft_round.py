"""Soft rounding (Agustsson & Theis 2020): a differentiable stand-in for rounding whose sharpness ``alpha`` is
annealed during training, as C3 and Cool-chic train their latents."""

from __future__ import annotations

import torch


def soft_round(values: torch.Tensor, alpha: float) -> torch.Tensor:
    """``values`` pulled towards the nearest integers: near the identity for small ``alpha``, rounding as it grows."""
    middle = torch.floor(values) + 0.5
    return middle + 0.5 * torch.tanh(alpha * (values - middle)) / torch.tanh(torch.tensor(alpha / 2))


def soft_round_schedule(progress: float, start: float, end: float) -> float:
    """The sharpness at ``progress`` (0..1) of the noisy phase, geometric from ``start`` to ``end``."""
    return start * (end / start) ** min(max(progress, 0.0), 1.0)

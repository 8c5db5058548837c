"""Rate model: a learned per-channel zero-mean Laplacian prior giving the bits of (noisy) quantized latents."""

from __future__ import annotations

import math

import torch
from torch import nn

_MIN_PROBABILITY = 1e-9


class LaplacePrior(nn.Module):
    """Per-channel Laplacian of learned scale, integrated over unit bins: the model of integer latents.

    The coded form of a channel's prior is ``decay = exp(-0.5 / scale)``: the discrete distribution over integers
    ``P(0) = 1 - decay``, ``P(k) = decay ** (2|k| - 1) * (1 - decay ** 2) / 2`` (see ``neuralvox.codec.entropy``).
    """

    def __init__(self, channels: int, initial_scale: float = 1.0):
        super().__init__()
        self.log_scale = nn.Parameter(torch.full((channels,), math.log(initial_scale)))

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def decay(self) -> torch.Tensor:
        return torch.exp(-0.5 / self.scale)

    def bits(self, latents: torch.Tensor) -> torch.Tensor:
        """Bits of each latent (M, C) under the prior, for values on or between integers (noise proxy)."""
        scale = self.scale
        magnitude = latents.abs()
        # Bin [|y| - 1/2, |y| + 1/2]: inside the central bin use 1 - both tails, outside the difference of one tail.
        outer = torch.clamp(magnitude - 0.5, min=0.0)
        log_outer = math.log(0.5) - outer / scale + torch.log(-torch.expm1(-1.0 / scale))
        inner = 1.0 - 0.5 * (torch.exp(-(0.5 - magnitude).clamp(min=0.0) / scale)
                             + torch.exp(-(0.5 + magnitude) / scale))
        log_probability = torch.where(magnitude >= 0.5, log_outer, torch.log(inner.clamp(min=_MIN_PROBABILITY)))
        return -log_probability.clamp(min=math.log(_MIN_PROBABILITY)) / math.log(2.0)

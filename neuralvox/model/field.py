"""Neural field of one grid: sparse latent lattices, interpolated at the voxels and decoded by a small MLP."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from neuralvox.model.decoder import DecoderMLP, positional_features
from neuralvox.model.lattice import LatticeLevel, SparseInterpolation
from neuralvox.model.rate import LaplacePrior


class LatentField(nn.Module):
    """Values at voxels ``ijk`` from latents on ``levels`` (one (M_l, C_l) tensor per level) and a decoder MLP.

    Latents are coded as integers ``y``; the decoder sees ``y * step`` with a quantization step per level and
    channel. The parameters ``latents`` hold ``y * step`` (so that the learned step, not the optimizer's step size,
    sets the precision), rows indexed like ``levels[l].coords``: a caller can read, warp or replace them. The decoder
    may be shared with other fields (pass the same module). ``prior(channels)`` makes each level's training entropy
    model (an entropy model's training face, see ``neuralvox.codec.entropy_models``).
    """

    def __init__(self, ijk: torch.Tensor, levels: list[LatticeLevel], channels: list[int], decoder: DecoderMLP,
                 frequencies: int, prior: Callable[[int], nn.Module] = LaplacePrior):
        super().__init__()
        device = ijk.device
        self.levels = levels
        self.latents = nn.ParameterList(nn.Parameter(torch.zeros(level.point_count, c, device=device))
                                        for level, c in zip(levels, channels, strict=True))
        self.log_steps = nn.ParameterList(nn.Parameter(torch.zeros(c, device=device)) for c in channels)
        self.priors = nn.ModuleList(prior(c).to(device) for c in channels)
        self.decoder = decoder
        coarsest = max(level.stride for level in levels)
        self.register_buffer("positional", positional_features(ijk, coarsest, frequencies), persistent=False)
        self._batches: list[tuple[torch.Tensor, list[SparseInterpolation]]] = []

    def steps(self) -> list[torch.Tensor]:
        """The learned quantization step of each level's channels, (C_l,) per level."""
        return [log_step.exp() for log_step in self.log_steps]

    def set_steps(self, steps: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for log_step, step in zip(self.log_steps, steps, strict=True):
                log_step.copy_(torch.log(step))

    def make_batches(self, batch_size: int, seed: int = 0) -> list[torch.Tensor]:
        """Split the voxels at random into batches of at most ``batch_size`` for training; return their rows."""
        voxel_count = self.positional.shape[0]
        order = torch.randperm(voxel_count, generator=torch.Generator().manual_seed(seed)).to(self.positional.device)
        batches = [rows.sort().values for rows in order.tensor_split(max(1, math.ceil(voxel_count / batch_size)))]
        self._batches = [(rows, [level.interpolation_operator(rows) for level in self.levels]) for rows in batches]
        return batches

    def forward(self, latents: list[torch.Tensor], steps: list[torch.Tensor], batch: int = 0,
                base: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Normalized values (n, out) at the voxels of training ``batch`` (see ``make_batches``) from integer-domain
        ``latents`` (noisy, rounded or exact) times ``steps``, added to ``base`` latents (a prediction) when given;
        differentiable and fast, for training."""
        rows, operators = self._batches[batch]
        parts = [operator(full) for operator, full in zip(operators, _scaled(latents, steps, base), strict=True)]
        return self.decoder(torch.cat([*parts, self.positional[rows]], dim=1))

    def decode(self, latents: list[torch.Tensor], rows: slice = slice(None)) -> torch.Tensor:
        """Normalized values (n, out) at voxels ``rows`` from decoded (float) latents, computed deterministically
        (gather and fixed-order sums), for decoding."""
        parts = [level.interpolate(values, rows) for level, values in zip(self.levels, latents, strict=True)]
        return self.decoder(torch.cat([*parts, self.positional[rows]], dim=1))

    def bits(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """Estimated total bits of the latents under the learned priors."""
        return sum(prior.bits(values).sum() for prior, values in zip(self.priors, latents, strict=True))


def _scaled(latents: list[torch.Tensor], steps: list[torch.Tensor],
            base: list[torch.Tensor] | None) -> list[torch.Tensor]:
    scaled = [values * step for values, step in zip(latents, steps, strict=True)]
    return scaled if base is None else [b + values for b, values in zip(base, scaled, strict=True)]

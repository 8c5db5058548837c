"""Context model of the latents, training face: each latent's law from latents decoded before it.

Levels are decoded coarse to fine, each in two checkerboard halves (even, then odd ``i + j + k`` of the lattice
coordinates), so that a whole half is decoded at once. A latent's features are the coarser levels' latents
interpolated at its point (in eighths of an integer), and, in the odd half, the sum and absolute sum of its channel at
its six same-level neighbours (all in the even half). Per level a small MLP maps one row per (point, channel) to the
three outputs of the bounded codec's law lattice (``neuralvox.codec.arm``): mean in quarters, scale index, zero level.
The same features computed on integers (``level_features``) drive the coder.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from neuralvox.codec.arm_fit import code_bits
from neuralvox.model.geometry import CORNER_OFFSETS, find_rows
from neuralvox.model.lattice import LatticeLevel, SparseInterpolation

EIGHTHS = 8  # interpolated coarser latents enter as features in eighths of an integer
_NEIGHBOURS = torch.tensor([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=torch.int64)
_OUTPUT_START = (0.0, 8.0, 0.0)  # mean 0, scale 1, no extra zero mass


@dataclasses.dataclass
class LevelContext:
    """Where one level's features come from: ``odd`` (M,) marks the second checkerboard half; ``neighbours`` (M, 6)
    rows of the same level (M: missing, a zero row); per coarser level, ``corner_rows`` (M, 8) (M_L: missing) and
    integer trilinear ``corner_weights`` (M, 8) summing to ``weight_sums``."""

    odd: torch.Tensor
    neighbours: torch.Tensor
    corner_rows: list[torch.Tensor]
    corner_weights: list[torch.Tensor]
    weight_sums: list[int]


def level_contexts(level_coords: list[torch.Tensor], strides: list[int]) -> list[LevelContext]:
    """The context of every level from its lattice coordinates (M_l, 3) (canonical order) and stride, coarsest
    first (strides must strictly decrease)."""
    if strides != sorted(set(strides), reverse=True):
        raise ValueError(f"context model needs strictly decreasing strides, got {strides}")
    out = []
    for index, (coords, stride) in enumerate(zip(level_coords, strides, strict=True)):
        odd = coords.sum(dim=1) % 2 == 1
        found = find_rows(coords, (coords.unsqueeze(1) + _NEIGHBOURS.to(coords.device)).reshape(-1, 3))
        neighbours = torch.where(found < 0, len(coords), found).reshape(-1, 6)
        rows, weights, sums = [], [], []
        for coarse, coarse_stride in zip(level_coords[:index], strides[:index], strict=True):
            ratio = coarse_stride // stride
            position = coords * stride
            base = torch.div(position, coarse_stride, rounding_mode="floor")
            fraction = torch.div(position - base * coarse_stride, stride, rounding_mode="floor")
            offsets = CORNER_OFFSETS.to(coords.device)
            corner = base.unsqueeze(1) + offsets.unsqueeze(0)
            per_axis = torch.where(offsets.unsqueeze(0) == 1, fraction.unsqueeze(1), ratio - fraction.unsqueeze(1))
            weight = per_axis.prod(dim=2)
            found = find_rows(coarse, corner.reshape(-1, 3)).reshape(-1, 8)
            rows.append(torch.where((found < 0) | (weight == 0), len(coarse), found))
            weights.append(torch.where(found < 0, 0, weight))
            sums.append(ratio**3)
        out.append(LevelContext(odd, neighbours, rows, weights, sums))
    return out


def feature_count(level_channels: list[int], index: int) -> int:
    """Features of one row of level ``index``: channel one-hot, odd flag, coarser channels, two neighbour sums."""
    return level_channels[index] + 1 + sum(level_channels[:index]) + 2


def context_shapes(level_channels: list[int], hidden: int) -> list[list[tuple[int, int]]]:
    """Per level, (inputs, outputs) of each layer of its MLP."""
    return [[(feature_count(level_channels, index), hidden), (hidden, 3)] for index in range(len(level_channels))]


def level_features(context: LevelContext, index: int, latents: list[torch.Tensor]) -> torch.Tensor:
    """Feature rows (M * C, F) of level ``index``, point-major, from integer ``latents`` of this level (only its even
    half is read, and only for odd rows) and the coarser ones: int64, coarser interpolations rounded down to
    eighths, as the coder needs (``TrainingFeatures`` computes the same in float, differentiably)."""
    values = latents[index]
    odd = context.odd.to(torch.int64).unsqueeze(1)
    shared = [odd]
    for coarse, rows, weights, total in zip(latents, context.corner_rows, context.corner_weights, context.weight_sums,
                                            strict=False):
        gathered = (_pad(coarse.to(torch.int64))[rows] * weights.unsqueeze(-1)).sum(dim=1)
        shared.append(torch.div(gathered * EIGHTHS, total, rounding_mode="floor"))
    neighbours = _pad(values.to(torch.int64))[context.neighbours]  # (M, 6, C)
    return _rows(shared, [neighbours.sum(dim=1) * odd, neighbours.abs().sum(dim=1) * odd])


class TrainingFeatures:
    """``level_features`` in float for one level, as sparse matrix products (fast forward and backward on CPU)."""

    def __init__(self, context: LevelContext, point_counts: list[int]):
        self.odd = context.odd.to(torch.float32).unsqueeze(1)
        self.coarser = [SparseInterpolation(rows, weights.to(torch.float32) * (EIGHTHS / total), count)
                        for rows, weights, total, count in zip(context.corner_rows, context.corner_weights,
                                                               context.weight_sums, point_counts, strict=False)]
        ones = (context.neighbours < len(self.odd)).to(torch.float32) * self.odd
        self.neighbours = SparseInterpolation(context.neighbours, ones, len(self.odd))

    def __call__(self, index: int, latents: list[torch.Tensor]) -> torch.Tensor:
        values = latents[index]
        shared = [self.odd, *(operator(coarse) for operator, coarse in zip(self.coarser, latents, strict=False))]
        return _rows(shared, [self.neighbours(values), self.neighbours(values.abs())])


def _rows(shared: list[torch.Tensor], per_channel: list[torch.Tensor]) -> torch.Tensor:
    """Rows (M * C, F), point-major: channel one-hot, the point's ``shared`` columns, its channel's ``per_channel``."""
    count, channels = per_channel[0].shape
    dtype = per_channel[0].dtype
    eye = torch.eye(channels, dtype=dtype, device=per_channel[0].device)
    rows = torch.cat([eye.expand(count, channels, channels),
                      torch.cat(shared, dim=1).unsqueeze(1).expand(count, channels, -1),
                      torch.stack(per_channel, dim=2)], dim=2)
    return rows.reshape(count * channels, -1)


def _pad(values: torch.Tensor) -> torch.Tensor:
    return torch.cat([values, values.new_zeros((1, values.shape[1]))])


class LatentContextModel(nn.Module):
    """Float MLPs (one per level: features, ``hidden`` ReLU units, three lattice outputs) giving the bits of noisy or
    rounded latents; ``input_scale`` divides the features while training and is folded into the first layer on
    export (``layers``)."""

    def __init__(self, levels: list[LatticeLevel], level_channels: list[int], hidden: int):
        super().__init__()
        self.contexts = level_contexts([level.coords for level in levels], [level.stride for level in levels])
        counts = [level.point_count for level in levels]
        self.features = [TrainingFeatures(context, counts) for context in self.contexts]
        self.level_channels = list(level_channels)
        self.nets = nn.ModuleList()
        for index in range(len(levels)):
            features = feature_count(level_channels, index)
            net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 3))
            with torch.no_grad():
                net[-1].weight.mul_(0.1)
                net[-1].bias.copy_(torch.tensor(_OUTPUT_START))
            self.nets.append(net)
        scales = [self._input_scale(index) for index in range(len(levels))]
        for index, scale in enumerate(scales):
            self.register_buffer(f"input_scale_{index}", scale, persistent=False)

    def _input_scale(self, index: int) -> torch.Tensor:
        channels = self.level_channels[index]
        coarser = sum(self.level_channels[:index])
        return torch.tensor([1.0] * (channels + 1) + [1.0 / EIGHTHS] * coarser + [1.0 / 6, 1.0 / 6])

    def outputs(self, index: int, features: torch.Tensor) -> torch.Tensor:
        """The three continuous lattice outputs of each feature row."""
        return self.nets[index](features * getattr(self, f"input_scale_{index}"))

    def bits(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """Total estimated bits of integer-domain latents (noisy, rounded or exact) under the model."""
        total = latents[0].new_zeros(())
        for index, training_features in enumerate(self.features):
            features = training_features(index, [values.detach() for values in latents])
            total = total + code_bits(self.outputs(index, features), latents[index].reshape(-1)).sum()
        return total

    def layers(self) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Per level, (weight (in, out), bias) of each layer in feature units (the input scale folded in)."""
        out = []
        for index, net in enumerate(self.nets):
            linear = [m for m in net if isinstance(m, nn.Linear)]
            scale = getattr(self, f"input_scale_{index}")
            first = (linear[0].weight.detach().T * scale.unsqueeze(1), linear[0].bias.detach())
            out.append([first, *((m.weight.detach().T, m.bias.detach()) for m in linear[1:])])
        return out

    def load_layers(self, layers: list[list[tuple[torch.Tensor, torch.Tensor]]]) -> None:
        """Set every level's layers from feature-unit (weight (in, out), bias) pairs (as ``layers`` gives)."""
        with torch.no_grad():
            for index, (net, level) in enumerate(zip(self.nets, layers, strict=True)):
                linear = [m for m in net if isinstance(m, nn.Linear)]
                scale = getattr(self, f"input_scale_{index}")
                for position, (module, (weight, bias)) in enumerate(zip(linear, level, strict=True)):
                    weight = weight / scale.unsqueeze(1) if position == 0 else weight
                    module.weight.copy_(weight.T.to(module.weight))
                    module.bias.copy_(bias.to(module.bias))

"""Decoder MLP: interpolated latents plus positional features of a voxel to its value(s)."""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def positional_features(ijk: torch.Tensor, period: int, frequencies: int) -> torch.Tensor:
    """Features of a voxel's position inside its lattice cell of side ``period``: (N, 3 + 6 * frequencies).

    The offset inside the cell, centred on zero, followed by sin/cos of it at ``frequencies`` octaves.
    """
    offset = torch.remainder(ijk.to(torch.int64), period).to(torch.float32) / period
    features = [offset - 0.5]
    for octave in range(frequencies):
        angle = offset * (2.0 * math.pi * 2**octave)
        features += [torch.sin(angle), torch.cos(angle)]
    return torch.cat(features, dim=1)


def positional_feature_count(frequencies: int) -> int:
    return 3 + 6 * frequencies


class DecoderMLP(nn.Module):
    """A small MLP: ``in_features`` -> hidden layers -> ``out_channels``; its Linear layers are ``self.layers``."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], out_channels: int, activation: str = "gelu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"decoder activation {activation!r} is not one of {sorted(ACTIVATIONS)}")
        widths = [in_features, *hidden, out_channels]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.activation = ACTIVATIONS[activation]()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            features = self.activation(layer(features))
        return self.layers[-1](features)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

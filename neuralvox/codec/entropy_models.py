"""Entropy models of the neural base: one object per model, giving both the training likelihood and the coding of
integers, so that another model (a context model) can plug in behind the same interface.

The training face is a torch module (``prior``) whose ``bits`` the fit minimizes; the coding face turns integer
columns into one byte stream and back. The fit and the bitstream of ``LaplaceGeometric`` share the law: a zero-mean
Laplacian integrated over unit bins is, on the integers, the two-sided geometric law the range coder uses
(``neuralvox.codec.entropy``); the coder fits each column's decay to the integers it codes and sends it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from torch import nn

from neuralvox.codec.entropy import decode_integer_arrays, encode_integer_arrays
from neuralvox.model.rate import LaplacePrior


class EntropyModel(Protocol):
    """What the latent codecs and the fit need of an entropy model."""

    def prior(self, channels: int, initial_scale: float = 1.0) -> nn.Module:
        """The training face: a module whose ``bits(values)`` (M, channels) estimates each value's bits."""
        ...

    def compress(self, columns: list[np.ndarray]) -> bytes:
        """Integer columns to one stream."""
        ...

    def decompress(self, data: bytes, lengths: list[int], name: str = "stream") -> list[np.ndarray]:
        """The columns back, given their lengths; ``name`` labels errors (EntropyStreamError)."""
        ...


class LaplaceGeometric:
    """Per-channel zero-mean Laplacian for training; per-column two-sided geometric tables in the stream."""

    def prior(self, channels: int, initial_scale: float = 1.0) -> LaplacePrior:
        return LaplacePrior(channels, initial_scale)

    def compress(self, columns: list[np.ndarray]) -> bytes:
        return encode_integer_arrays(columns)

    def decompress(self, data: bytes, lengths: list[int], name: str = "stream") -> list[np.ndarray]:
        return decode_integer_arrays(data, lengths, name=name)


LAPLACE = LaplaceGeometric()

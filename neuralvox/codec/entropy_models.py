"""Entropy models of the neural base: one object per model, giving both the training likelihood and the coding of
integers, so that another model (a context model) can plug in behind the same interface.

The training face is a torch module (``prior``) whose ``bits`` the fit minimizes; the coding face turns integer
columns into one byte stream and back. The fit and the bitstream of ``LaplaceGeometric`` share the law: a zero-mean
Laplacian integrated over unit bins is, on the integers, the two-sided geometric law the range coder uses
(``neuralvox.codec.entropy``); the coder fits each column's decay to the integers it codes and sends it.
``ZeroInflatedGroups`` trains the same way but codes each group of columns (a latent level's channels) under one
zero-inflated two-sided geometric law with 8-bit parameters (the bounded codec's context coder, one context per
group): the latents have more zeros and longer tails than one geometric law gives them, and a level's channels
share one law's parameters (about 3 bytes) where each column sent 4.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from torch import nn

from neuralvox.codec.context_coder import MAX_CODE, CodeDecoder, ContextStreamError, encode_codes
from neuralvox.codec.entropy import EntropyStreamError, decode_integer_arrays, encode_integer_arrays
from neuralvox.model.rate import LaplacePrior


class EntropyModel(Protocol):
    """What the latent codecs and the fit need of an entropy model."""

    def prior(self, channels: int, initial_scale: float = 1.0) -> nn.Module:
        """The training face: a module whose ``bits(values)`` (M, channels) estimates each value's bits."""
        ...

    def compress(self, columns: list[np.ndarray], groups: list[int] | None = None) -> bytes:
        """Integer columns to one stream; columns of the same ``groups`` entry may share a law."""
        ...

    def decompress(self, data: bytes, lengths: list[int], name: str = "stream",
                   groups: list[int] | None = None) -> list[np.ndarray]:
        """The columns back, given their lengths (and the same ``groups``); ``name`` labels errors
        (EntropyStreamError)."""
        ...


class LaplaceGeometric:
    """Per-channel zero-mean Laplacian for training; per-column two-sided geometric tables in the stream."""

    def prior(self, channels: int, initial_scale: float = 1.0) -> LaplacePrior:
        return LaplacePrior(channels, initial_scale)

    def compress(self, columns: list[np.ndarray], groups: list[int] | None = None) -> bytes:
        return encode_integer_arrays(columns)

    def decompress(self, data: bytes, lengths: list[int], name: str = "stream",
                   groups: list[int] | None = None) -> list[np.ndarray]:
        return decode_integer_arrays(data, lengths, name=name)


class ZeroInflatedGroups(LaplaceGeometric):
    """Per-channel zero-mean Laplacian for training; one zero-inflated geometric law per group of columns in the
    stream (without groups, one per column)."""

    def compress(self, columns: list[np.ndarray], groups: list[int] | None = None) -> bytes:
        groups = list(range(len(columns))) if groups is None else groups
        passes = []
        for column, group in zip(columns, groups, strict=True):
            codes = np.asarray(column, dtype=np.int64)
            if codes.size and int(np.abs(codes).max()) > MAX_CODE:
                raise ValueError(f"integer column holds {int(np.abs(codes).max())}, beyond the coder's {MAX_CODE}")
            passes.append((codes, np.full(codes.size, group, np.int64)))
        return encode_codes(passes)

    def decompress(self, data: bytes, lengths: list[int], name: str = "stream",
                   groups: list[int] | None = None) -> list[np.ndarray]:
        groups = list(range(len(lengths))) if groups is None else groups
        try:
            decoder = CodeDecoder(data)
            columns = [decoder.decode(np.full(length, group, np.int64))
                       for length, group in zip(lengths, groups, strict=True)]
        except ContextStreamError as error:
            raise EntropyStreamError(f"{name}: {error}") from None
        if any(np.any(column == CodeDecoder.ESCAPE) for column in columns):
            raise EntropyStreamError(f"{name}: an escape where every integer is coded")
        return [column.astype(np.int32) for column in columns]


LAPLACE = LaplaceGeometric()
ZERO_INFLATED = ZeroInflatedGroups()

"""Entropy models of the neural base: one object per model, giving both the training likelihood and the coding of
integers, so that another model (a context model) can plug in behind the same interface.

The training face is a torch module (``prior``) whose ``bits`` the fit minimizes; the coding face turns integer
columns into one byte stream and back. The fit and the bitstream of ``LaplaceGeometric`` share the law: a zero-mean
Laplacian integrated over unit bins is, on the integers, the two-sided geometric law the range coder uses
(``neuralvox.codec.entropy``); the coder fits each column's decay to the integers it codes and sends it.
``ShortestLaws`` trains the same way but codes the columns three ways and keeps the shortest: a geometric law per
column, or a zero-inflated two-sided geometric law with 8-bit parameters (the bounded codec's context coder) per
column, or one per group of columns (a latent level's channels). Small streams gain most from the last (one law's
parameters, about 3 bytes, for a level where each column sent 4; more zeros and longer tails than one geometric
law gives them); large ones whose channels differ in scale keep a law per column.
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


class ShortestLaws(LaplaceGeometric):
    """Per-channel zero-mean Laplacian for training; in the stream, the shortest of three codings of the columns,
    named by a leading byte: ``0`` a geometric law per column (``LaplaceGeometric``), ``1`` a zero-inflated geometric
    law per column, ``2`` one zero-inflated law per group of columns (without groups, per column)."""

    def compress(self, columns: list[np.ndarray], groups: list[int] | None = None) -> bytes:
        per_column = list(range(len(columns)))
        codings = [LaplaceGeometric.compress(self, columns)]
        if all(np.asarray(column).size == 0 or int(np.abs(np.asarray(column, np.int64)).max()) <= MAX_CODE
               for column in columns):  # beyond MAX_CODE only the geometric coder's range (2**16) holds them
            codings.append(_zero_inflated(columns, per_column))
            if groups is not None and groups != per_column:  # else it would code exactly as the per-column law
                codings.append(_zero_inflated(columns, groups))
        mode = min(range(len(codings)), key=lambda index: len(codings[index]))
        return bytes([mode]) + codings[mode]

    def decompress(self, data: bytes, lengths: list[int], name: str = "stream",
                   groups: list[int] | None = None) -> list[np.ndarray]:
        if not data or data[0] > 2:
            raise EntropyStreamError(f"{name}: no coding mode, or an unknown one")
        if data[0] == 0:
            return LaplaceGeometric.decompress(self, data[1:], lengths, name)
        per_column = list(range(len(lengths)))
        return _zero_inflated_columns(data[1:], lengths, name, per_column if data[0] == 1 or groups is None
                                      else groups)


def _zero_inflated(columns: list[np.ndarray], groups: list[int]) -> bytes:
    """Range-code the columns under one zero-inflated geometric law per group (the bounded codec's coder)."""
    return encode_codes([(np.asarray(column, dtype=np.int64), np.full(len(column), group, np.int64))
                         for column, group in zip(columns, groups, strict=True)])


def _zero_inflated_columns(data: bytes, lengths: list[int], name: str, groups: list[int]) -> list[np.ndarray]:
    try:
        decoder = CodeDecoder(data)
        columns = [decoder.decode(np.full(length, group, np.int64)) for length, group in zip(lengths, groups,
                                                                                            strict=True)]
    except ContextStreamError as error:
        raise EntropyStreamError(f"{name}: {error}") from None
    if any(np.any(column == CodeDecoder.ESCAPE) for column in columns):
        raise EntropyStreamError(f"{name}: an escape where every integer is coded")
    return [column.astype(np.int32) for column in columns]


LAPLACE = LaplaceGeometric()
SHORTEST = ShortestLaws()

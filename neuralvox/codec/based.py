"""Values as the neural base plus a bounded residual (``neuralvox-based/1``): every voxel still within the bound.

The base is a keyframe of the neural base (``values.encode_values`` at ``BASE_QUALITY``, its own decoder); the
residual ``value - base`` is coded by the bounded codec under the bound less a margin. The base is float arithmetic
that differs by a few ulps between torch on CPU, torch on CUDA and the Warp kernel, so the encoder codes the residual
against the base as the decoder computes it on CPU (Warp, the default backend: decoding on CPU is bit-identical to the
encoder's values) and keeps a margin for the other paths. With u = 2**-24 and M the grid's largest magnitude of a
channel (the base is clamped to the channel's value range), the error of a decoded voxel is at most
u * 2M (the float32 residual) + (E - margin) (the residual's bound) + u * (M + E) (the float32 sum) + delta (the base's
difference from the encoder's); ``MARGIN`` = 2**-12 of M leaves delta up to about 2.4e-4 M, where torch and Warp on CPU
differ by about 4e-7 M (tests/test_based.py measures it).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from neuralvox.codec import bounded
from neuralvox.codec.arm import ArmWeights
from neuralvox.codec.chunked import ChunkContext
from neuralvox.codec.header import LATENTS, VALUES, WEIGHTS, BasedHeader, NeuralValueHeader
from neuralvox.codec.values import decode_values, encode_values
from neuralvox.grid import SparseGrid

BASE_QUALITY = "low"
MARGIN = 2.0 ** -12  # of a channel's largest magnitude
MAX_MARGIN_SHARE = 0.25  # a bound the margin would eat more of than this is not coded over a base
BASE_STREAMS = (LATENTS, WEIGHTS)


@dataclasses.dataclass(frozen=True)
class BasedCoding:
    """A grid's values coded as base plus residual: header, streams, the values as decoded, the bytes of each part
    and the seconds the base's fit and the residual's coding took."""

    header: BasedHeader
    streams: dict[str, bytes]
    decoded: np.ndarray
    base_bytes: int
    residual_bytes: int
    seconds: float

    @property
    def value_bytes(self) -> int:
        return self.base_bytes + self.residual_bytes


def margins(low: tuple[float, ...], high: tuple[float, ...]) -> tuple[float, ...]:
    """The margin of each channel, from its value range."""
    return tuple(MARGIN * max(abs(a), abs(b)) for a, b in zip(low, high, strict=True))


def encode_based(grid: SparseGrid, bound: float | tuple[float, ...], context: ChunkContext, device: str = "auto"
                 ) -> BasedCoding | None:
    """``grid`` (voxels in canonical order, one chunk) coded as a neural base fitted on ``device`` plus the bounded
    residual, each value within ``bound`` (one, or one per channel) after decode; None where no base can be coded (a
    constant grid) or the margin would take more than ``MAX_MARGIN_SHARE`` of the bound."""
    start = time.perf_counter()
    fitted = encode_values(grid.ijk, grid.values, grid_class=grid.grid_class, quality=BASE_QUALITY, device=device,
                           grid_name=grid.name)
    if fitted.header.constant is not None:
        return None
    coding = code_over_base(grid, bound, context, fitted.header, {name: fitted.streams[name] for name in BASE_STREAMS})
    return None if coding is None else dataclasses.replace(coding, seconds=time.perf_counter() - start)


def code_over_base(grid: SparseGrid, bound: float | tuple[float, ...], context: ChunkContext,
                   base_header: NeuralValueHeader, base_streams: dict[str, bytes]) -> BasedCoding | None:
    """``grid`` coded over a given base (a keyframe whose value range is the grid's): the residual against the base
    as the decoder computes it on CPU, under the bound less the margin; None where the margin would take more than
    ``MAX_MARGIN_SHARE`` of the bound."""
    start = time.perf_counter()
    bounds = tuple(float(b) for b in np.broadcast_to(np.asarray(bound, np.float64), (grid.channels,)))
    margin = margins(base_header.low, base_header.high)
    if any(m > MAX_MARGIN_SHARE * b for m, b in zip(margin, bounds, strict=True)):
        return None
    base = decode_values(grid.ijk, base_header, base_streams, device="cpu")
    residual = (grid.values - base).astype(np.float32)
    code = bounded.encode_bounded(grid.ijk, residual, tuple(b - m for b, m in zip(bounds, margin, strict=True)),
                                  background=0.0, inactive_known=grid.grid_class != "level set",
                                  context=context.weights)
    decoded = (base + code.decoded).astype(np.float32)
    _check_within(grid.values, decoded, bounds)
    header = BasedHeader(bounds, margin, base_header, dataclasses.replace(code.header, context_frame=context.frame))
    return BasedCoding(header, {**base_streams, VALUES: code.stream}, decoded,
                       sum(len(data) for data in base_streams.values()), len(code.stream),
                       time.perf_counter() - start)


def decode_based(ijk: np.ndarray, header: BasedHeader, streams: dict[str, bytes], context: ArmWeights | None,
                 device: str = "auto", backend: str = "auto") -> np.ndarray:
    """The values ``encode_based`` coded at the same voxels (``context``: the neural context model its header's
    residual names, if any): the base decoded on ``device`` by ``backend`` plus the residual, in float32."""
    base = decode_values(ijk, header.base, {name: streams[name] for name in BASE_STREAMS}, device=device,
                         backend=backend)
    residual = bounded.decode_bounded(ijk, header.residual, streams[VALUES], context)
    return (base + residual).astype(np.float32)


def _check_within(values: np.ndarray, decoded: np.ndarray, bounds: tuple[float, ...]) -> None:
    """The encoder's own decode is within the bound (the margin is for other devices); a miss is a bug."""
    error = np.abs(decoded.astype(np.float64) - values.astype(np.float64)).reshape(len(values), -1)
    worst = error.max(axis=0) if len(values) else np.zeros(len(bounds))
    if np.any(worst > np.asarray(bounds)):
        raise RuntimeError(f"base + residual misses the bound: max error {worst.tolist()} > {list(bounds)}")

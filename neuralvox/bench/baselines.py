"""Classic baseline codecs for one frame of one grid: what each stores, what it decodes to, and its stated error.

Every baseline's bytes hold all it needs to rebuild the frame: OpenVDB and NanoVDB carry their own tree; the
payload coders (ZFP, SZ3, zstd) add the exact topology code of ``neuralvox.topology`` (intra, one per frame).
Lossy settings are tolerances given as fractions of the grid's value range over the whole sequence.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import zfpy
import zstandard

from neuralvox.grid import SparseGrid
from neuralvox.topology import decode_topology, encode_topology
from neuralvox.vdb import binding, grid_bytes, grid_to_raw, read_vdb, write_vdb

TOLERANCES = (1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
ZSTD_LEVEL = 19
_HALF_RELATIVE = 2.0**-11  # round-to-nearest half: relative error of normal numbers
_HALF_SUBNORMAL = 2.0**-25  # half the spacing of half-float subnormals
_FLOAT_SLACK = 8 * float(np.finfo(np.float32).eps)  # float32 arithmetic in the decoders, relative to magnitudes
_LEAF = 8


_DENSE_LIMIT = 2**28  # voxels of a dense bounding box (1 GiB of float32) beyond which SZ3 is not run
_SINGLE_PRECISION = {"float": "float", "double": "float", "vec3s": "vec3s", "vec3d": "vec3s"}


class BaselineSkipped(Exception):
    """A baseline cannot code this grid (the message says why); the runner lists it as not run."""


@dataclasses.dataclass
class TopologyCode:
    """The exact topology code of one frame of one grid, shared by every payload baseline of that frame."""

    data: bytes
    ijk: np.ndarray  # decoded back from ``data``: lexicographic (i, j, k) order
    encode_seconds: float
    decode_seconds: float


@dataclasses.dataclass
class Coded:
    """One frame of one grid through one baseline."""

    parts: dict[str, int]  # bytes stored, by part (topology, payload, file header, ...)
    ijk: np.ndarray  # decoded active voxels, lexicographic order
    values: np.ndarray  # decoded values at ``ijk``
    encode_seconds: float
    decode_seconds: float | None  # None where decoding cannot be timed apart from encoding
    error_bound: np.ndarray | float  # stated max abs error: one for all, or shaped like ``values`` (0: exact)

    @property
    def nbytes(self) -> int:
        return sum(self.parts.values())


Coder = Callable[[SparseGrid, TopologyCode | None, float], Coded]


@dataclasses.dataclass(frozen=True)
class Baseline:
    """One point of a baseline method: ``run(grid, topology, peak)`` codes a frame (grid in lexicographic order)."""

    method: str
    setting: str
    vectors: bool  # False: the method only takes scalar (float) grids
    needs_topology: bool
    run: Coder

    @property
    def label(self) -> str:
        return f"{self.method} {self.setting}".strip()


def code_topology(grid: SparseGrid) -> TopologyCode:
    """Code a frame's active voxels (intra) and decode them back, timing both."""
    start = time.perf_counter()
    data = encode_topology(grid.ijk)
    coded = time.perf_counter()
    ijk = decode_topology(data)
    return TopologyCode(data, ijk, coded - start, time.perf_counter() - coded)


def sz3_available() -> bool:
    """True when pysz (SZ3's Python binding) imports."""
    try:
        import pysz  # noqa: F401
    except ImportError:
        return False
    return True


def half_bound(values: np.ndarray) -> np.ndarray:
    """Largest error of rounding each value to half float (values within half's range)."""
    return np.abs(values.astype(np.float64)) * _HALF_RELATIVE + _HALF_SUBNORMAL


def _scale(peak: float, grid: SparseGrid) -> float:
    """What tolerance fractions multiply: the sequence value range, or the largest magnitude for a constant grid."""
    if peak > 0:
        return peak
    return float(np.max(np.abs(grid.values))) if grid.voxel_count and np.any(grid.values) else 1.0


def _slack(values: np.ndarray) -> float:
    return _FLOAT_SLACK * float(np.max(np.abs(values))) if values.size else 0.0


def _openvdb(grid: SparseGrid, topology: TopologyCode | None, peak: float, *, half: bool, compression: str) -> Coded:
    """Write the grid alone to a .vdb file and read it back; bytes are the file's size."""
    stored = dataclasses.replace(grid, save_half=half, value_type=_SINGLE_PRECISION[grid.value_type])
    with tempfile.TemporaryDirectory(prefix="neuralvox-bench-") as folder:
        path = Path(folder) / "grid.vdb"
        start = time.perf_counter()
        write_vdb(path, [stored], compression=compression)
        written = time.perf_counter()
        back = read_vdb(path, [grid.name], warn_skipped=False).grids[grid.name].sorted()
        read = time.perf_counter()
        size = path.stat().st_size
        in_grid = grid_bytes(path)[grid.name]
    bound = half_bound(grid.values) if half else 0.0
    return Coded({"grid": in_grid, "file header": size - in_grid}, back.ijk, back.values, written - start,
                 read - written, bound)


def _leaf_ranges(grid: SparseGrid) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel, the min and max over its 8^3 leaf's values, inactive ones (the background) included."""
    keys = grid.ijk >> 3
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    low = np.full(len(counts), np.inf)
    high = np.full(len(counts), -np.inf)
    np.minimum.at(low, inverse, grid.values)
    np.maximum.at(high, inverse, grid.values)
    partial = counts < _LEAF**3
    background = float(np.asarray(grid.background).reshape(-1)[0])
    low[partial] = np.minimum(low[partial], background)
    high[partial] = np.maximum(high[partial], background)
    return low[inverse], high[inverse]


def _nanovdb(grid: SparseGrid, topology: TopologyCode | None, peak: float, *, codec: str,
             fraction: float | None) -> Coded:
    """Build the NanoVDB grid in memory and read every active voxel back; bytes are the grid buffer's size.

    Fp8/Fp16 quantize each leaf uniformly between its min and max (inactive voxels included) into 255/65535 steps:
    error at most half a step. FpN picks each leaf's bit width so that no value errs more than the tolerance.
    """
    tolerance = fraction * _scale(peak, grid) if fraction is not None else -1.0
    raw = grid_to_raw(dataclasses.replace(grid, value_type="float"))  # values are float32 already
    start = time.perf_counter()
    nbytes, values = binding().nano_roundtrip(raw, codec, tolerance)
    seconds = time.perf_counter() - start
    slack = _slack(grid.values)
    if codec == "fpn":
        bound: np.ndarray | float = tolerance + slack
    elif codec in ("fp8", "fp16"):
        low, high = _leaf_ranges(grid)
        steps = 255 if codec == "fp8" else 65535
        bound = (high - low) / steps / 2 + slack
    else:
        bound = 0.0
    # The round trip builds the grid and reads it back in one call; NanoVDB decodes in place on access.
    return Coded({"grid": int(nbytes)}, grid.ijk, np.asarray(values, np.float32), seconds, None, bound)


def _bricks(ijk: np.ndarray, values: np.ndarray | None) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Dense 8^3 bricks (one per active leaf, leaves in lexicographic order) stacked along the first axis.

    Returns the component-major bricks (C * L * 8, 8, 8) and the index tuple of each voxel in them. Inactive voxels
    hold their brick's mean (smoother bricks cost fewer bits); without ``values`` the bricks are left empty.
    """
    _, leaf = np.unique(ijk >> 3, axis=0, return_inverse=True)
    leaf = leaf.reshape(-1)
    leaves = int(leaf.max()) + 1
    local = ijk & 7
    channels = 1 if values is None or values.ndim == 1 else values.shape[1]
    bricks = np.zeros((channels, leaves, _LEAF, _LEAF, _LEAF), np.float32)
    index = (leaf, local[:, 0], local[:, 1], local[:, 2])
    if values is not None:
        columns = values.reshape(len(values), channels)
        counts = np.bincount(leaf, minlength=leaves)
        for channel in range(channels):
            means = np.bincount(leaf, weights=columns[:, channel], minlength=leaves) / counts
            bricks[channel] = means[:, None, None, None]
            bricks[channel][index] = columns[:, channel]
    return bricks.reshape(channels * leaves * _LEAF, _LEAF, _LEAF), index


def _gather(bricks: np.ndarray, index: tuple[np.ndarray, ...], channels: int) -> np.ndarray:
    per_channel = bricks.reshape(channels, -1, _LEAF, _LEAF, _LEAF)
    values = np.stack([per_channel[c][index] for c in range(channels)], axis=1)
    return values[:, 0] if channels == 1 else values


def _zfp(grid: SparseGrid, topology: TopologyCode, peak: float, *, fraction: float) -> Coded:
    """ZFP fixed-accuracy mode over the dense 8^3 bricks of the active leaves (zfp's 4^3 blocks never straddle)."""
    tolerance = fraction * _scale(peak, grid)
    start = time.perf_counter()
    payload = b""
    if grid.voxel_count:
        bricks, _ = _bricks(grid.ijk, grid.values)
        payload = zfpy.compress_numpy(bricks, tolerance=tolerance)
    encode = time.perf_counter() - start
    start = time.perf_counter()
    values = np.zeros_like(grid.values)
    if payload:
        _, index = _bricks(topology.ijk, None)
        values = _gather(zfpy.decompress_numpy(payload), index, grid.channels)
    decode = time.perf_counter() - start
    return Coded({"topology": len(topology.data), "payload": len(payload)}, topology.ijk, values,
                 encode + topology.encode_seconds, decode + topology.decode_seconds, tolerance + _slack(grid.values))


def _zfp_dense(grid: SparseGrid, topology: TopologyCode, peak: float, *, fraction: float) -> Coded:
    """ZFP fixed-accuracy mode on each component's dense bounding box (inactive voxels hold the background)."""
    tolerance = fraction * _scale(peak, grid)
    return _dense_coder(grid, topology, tolerance, lambda dense: zfpy.compress_numpy(dense, tolerance=tolerance),
                        lambda payload, shape: zfpy.decompress_numpy(payload))


def _sz3(grid: SparseGrid, topology: TopologyCode, peak: float, *, fraction: float) -> Coded:
    """SZ3 absolute-error mode on each component's dense bounding box (inactive voxels hold the background)."""
    import pysz

    tolerance = fraction * _scale(peak, grid)

    def compress(dense: np.ndarray) -> bytes:
        config = pysz.szConfig(dense.shape)
        config.errorBoundMode = pysz.szErrorBoundMode.ABS
        config.absErrorBound = tolerance
        return pysz.sz.compress(dense, config)[0].tobytes()

    return _dense_coder(grid, topology, tolerance, compress,
                        lambda payload, shape: pysz.sz.decompress(np.frombuffer(payload, np.uint8), np.float32,
                                                                  shape)[0])


def _dense_box(ijk: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    origin = ijk.min(axis=0)
    shape = tuple(int(s) for s in ijk.max(axis=0) - origin + 1)
    return origin, shape


def _dense_coder(grid: SparseGrid, topology: TopologyCode, tolerance: float,
                 compress: Callable[[np.ndarray], bytes],
                 decompress: Callable[[bytes, tuple[int, int, int]], np.ndarray]) -> Coded:
    """A dense-array codec run on each component's bounding box (inactive voxels hold the background), its values
    read back at the decoded topology."""
    background = np.broadcast_to(np.asarray(grid.background, np.float32).reshape(-1), (grid.channels,))
    start = time.perf_counter()
    payloads: list[bytes] = []
    if grid.voxel_count:
        origin, shape = _dense_box(grid.ijk)
        if math.prod(shape) > _DENSE_LIMIT:
            raise BaselineSkipped(f"dense bounding box {shape} holds more than {_DENSE_LIMIT:,} voxels")
        local = tuple((grid.ijk - origin).T)
        columns = grid.values.reshape(grid.voxel_count, grid.channels)
        for channel in range(grid.channels):
            dense = np.full(shape, background[channel], np.float32)
            dense[local] = columns[:, channel]
            payloads.append(compress(dense))
    encode = time.perf_counter() - start
    start = time.perf_counter()
    values = np.zeros_like(grid.values)
    if payloads:
        origin, shape = _dense_box(topology.ijk)
        local = tuple((topology.ijk - origin).T)
        columns = [decompress(payload, shape)[local] for payload in payloads]
        values = columns[0] if grid.channels == 1 else np.stack(columns, axis=1)
    decode = time.perf_counter() - start
    return Coded({"topology": len(topology.data), "payload": sum(len(p) for p in payloads)}, topology.ijk,
                 values.astype(np.float32), encode + topology.encode_seconds, decode + topology.decode_seconds,
                 tolerance + _slack(grid.values))


def _zstd(grid: SparseGrid, topology: TopologyCode, peak: float, *, dtype: str) -> Coded:
    """zstd at level 19 on the values in lexicographic voxel order, as float32 or rounded to float16."""
    start = time.perf_counter()
    payload = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(grid.values.astype(dtype).tobytes())
    encode = time.perf_counter() - start
    start = time.perf_counter()
    raw = zstandard.ZstdDecompressor().decompress(payload)
    values = np.frombuffer(raw, dtype=dtype).astype(np.float32).reshape(grid.values.shape)
    decode = time.perf_counter() - start
    bound = half_bound(grid.values) if dtype == "float16" else 0.0
    return Coded({"topology": len(topology.data), "payload": len(payload)}, topology.ijk, values,
                 encode + topology.encode_seconds, decode + topology.decode_seconds, bound)


def _tolerance_label(fraction: float) -> str:
    return f"tol={fraction:.0e}·range"


def _sweep(method: str, coder: Callable[..., Coded], tolerances: Sequence[float], vectors: bool,
           needs_topology: bool) -> list[Baseline]:
    return [Baseline(method, _tolerance_label(f), vectors, needs_topology, functools.partial(coder, fraction=f))
            for f in tolerances]


def _registry(tolerances: Sequence[float]) -> dict[str, list[Baseline]]:
    methods: dict[str, list[Baseline]] = {}
    for precision, half in (("float32", False), ("half", True)):
        for compression in ("blosc", "zip"):
            name = f"openvdb-{precision}-{compression}"
            methods[name] = [Baseline(name, "", True, False,
                                      functools.partial(_openvdb, half=half, compression=compression))]
    for codec in ("fp8", "fp16"):
        methods[f"nanovdb-{codec}"] = [Baseline(f"nanovdb-{codec}", "", False, False,
                                                functools.partial(_nanovdb, codec=codec, fraction=None))]
    methods["nanovdb-fpn"] = _sweep("nanovdb-fpn", functools.partial(_nanovdb, codec="fpn"), tolerances, False, False)
    methods["zfp"] = _sweep("zfp", _zfp, tolerances, True, True)
    methods["zfp-dense"] = _sweep("zfp-dense", _zfp_dense, tolerances, True, True)
    methods["sz3"] = _sweep("sz3", _sz3, tolerances, True, True)
    for dtype in ("float32", "float16"):
        methods[f"zstd-{dtype}"] = [Baseline(f"zstd-{dtype}", f"level {ZSTD_LEVEL}", True, True,
                                             functools.partial(_zstd, dtype=dtype))]
    return methods


BASELINE_METHODS = tuple(_registry(TOLERANCES))


def baselines(methods: Sequence[str] | None = None, tolerances: Sequence[float] = TOLERANCES) -> list[Baseline]:
    """The points of the named baseline methods, in registry order; by default every one whose library is installed.

    Raises ValueError naming an unknown method, or sz3 when it is asked for and pysz is not installed.
    """
    registry = _registry(tolerances)
    wanted = [m for m in registry if m != "sz3" or sz3_available()] if methods is None else list(methods)
    unknown = sorted(set(wanted) - set(registry))
    if unknown:
        raise ValueError(f"unknown baseline method(s) {', '.join(unknown)}; choose from {', '.join(registry)}")
    if "sz3" in wanted and not sz3_available():
        raise ValueError("baseline sz3 needs pysz (SZ3's Python binding): pip install pysz")
    return [point for name in registry if name in wanted for point in registry[name]]

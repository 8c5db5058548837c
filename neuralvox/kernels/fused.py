"""Fused sparse decode: one Warp thread per voxel, from lattice lookup through the decoder MLP to the stored value."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import torch
import warp as wp

from neuralvox.model.geometry import CORNER_OFFSETS

wp.config.log_level = wp.LOG_WARNING  # no start-up banner or per-module load lines in a user's terminal


@dataclasses.dataclass
class FieldArrays:
    """Everything needed to decode one grid's values, as decoded from its streams.

    Level ``l`` has lattice ``strides[l]`` with points ``points[l]`` (M_l, 3) int64 in canonical order and their
    latents ``latents[l]`` (M_l, C_l) float32 (integers times step). ``tensors`` are the decoder's Linear weights
    (out, in) and biases, flat, in ``state_dict`` order, for layer widths ``widths`` (inputs, hidden..., outputs).
    The decoder output ``y`` maps to ``clamp(y * scale + offset, low, high)`` per channel.
    """

    strides: list[int]
    points: list[torch.Tensor]
    latents: list[np.ndarray]
    tensors: list[np.ndarray]
    widths: list[int]
    activation: str
    frequencies: int
    offset: float
    scale: float
    low: np.ndarray
    high: np.ndarray


@wp.func
def _relu(x: float) -> float:
    return wp.max(x, 0.0)


@wp.func
def _gelu(x: float) -> float:
    return 0.5 * x * (1.0 + wp.erf(x * 0.7071067811865476))


@wp.func
def _silu(x: float) -> float:
    return x / (1.0 + wp.exp(-x))


_ACTIVATIONS = {"relu": _relu, "gelu": _gelu, "silu": _silu}


@functools.cache
def _decode_kernel(strides: tuple[int, ...], channels: tuple[int, ...], widths: tuple[int, ...], activation: str,
                   frequencies: int) -> wp.Kernel:
    """The fused kernel for one architecture; every loop is unrolled, so activations stay in registers."""
    shifts = [s.bit_length() - 1 for s in strides]
    period = max(strides)
    angle_scales = [2.0 * math.pi * 2**octave for octave in range(frequencies)]
    feature_starts = [sum(channels[:level]) for level in range(len(channels))]
    positional_start = sum(channels)
    layer_count = len(widths) - 1
    last = layer_count - 1
    # each layer's weights (out, in) row-major, then its biases: state_dict order
    weight_starts = [sum((a + 1) * b for a, b in zip(widths[:layer], widths[1:layer + 1], strict=True))
                     for layer in range(layer_count)]
    bias_starts = [start + widths[layer] * widths[layer + 1] for layer, start in enumerate(weight_starts)]
    vector = wp.types.vector(length=max(widths[:-1]), dtype=wp.float32)
    act = _ACTIVATIONS[activation]
    corners = CORNER_OFFSETS.tolist()

    @wp.kernel(enable_backward=False, module="unique", module_options={"max_unroll": 64})
    def decode(ijk: wp.array(dtype=wp.vec3i), cells: wp.array(dtype=wp.uint64), cell_latents: wp.array(dtype=float),
               cell_latent_starts: wp.array(dtype=wp.int64), weights: wp.array(dtype=float),
               normalization: wp.array(dtype=float), out: wp.array2d(dtype=float)):
        tid = wp.tid()
        voxel = ijk[tid]
        x = vector()
        for level in range(wp.static(len(strides))):
            shift = wp.static(shifts[level])
            inverse_stride = wp.static(1.0 / strides[level])
            base = wp.vec3i(voxel[0] >> shift, voxel[1] >> shift, voxel[2] >> shift)
            frac = wp.vec3(float(voxel[0] - (base[0] << shift)) * inverse_stride,
                           float(voxel[1] - (base[1] << shift)) * inverse_stride,
                           float(voxel[2] - (base[2] << shift)) * inverse_stride)
            # a voxel outside the topology finds no cell: read cell 0 rather than out of bounds
            cell = wp.max(wp.volume_lookup_index(cells[level], base[0], base[1], base[2]), 0)
            row = cell_latent_starts[level] + wp.int64(cell) * wp.int64(wp.static(8 * channels[level]))
            for corner in range(8):
                weight = 1.0
                for axis in range(3):
                    if wp.static(corners[corner][axis] == 1):
                        weight = weight * frac[wp.static(axis)]
                    else:
                        weight = weight * (1.0 - frac[wp.static(axis)])
                for channel in range(wp.static(channels[level])):
                    feature = wp.static(feature_starts[level] + channel)
                    x[feature] = x[feature] + weight * cell_latents[
                        row + wp.int64(wp.static(corner * channels[level] + channel))]
        for axis in range(3):
            offset = float(voxel[wp.static(axis)] & wp.static(period - 1)) * wp.static(1.0 / period)
            x[wp.static(positional_start + axis)] = offset - 0.5
            for octave in range(wp.static(frequencies)):
                angle = offset * wp.static(angle_scales[octave])
                x[wp.static(positional_start + 3 + 6 * octave + axis)] = wp.sin(angle)
                x[wp.static(positional_start + 6 + 6 * octave + axis)] = wp.cos(angle)
        for layer in range(wp.static(layer_count - 1)):
            y = vector()
            for o in range(wp.static(widths[layer + 1])):
                total = weights[wp.static(bias_starts[layer] + o)]
                for i in range(wp.static(widths[layer])):
                    total = total + weights[wp.static(weight_starts[layer] + o * widths[layer] + i)] * x[wp.static(i)]
                y[wp.static(o)] = wp.static(act)(total)
            x = y
        for o in range(wp.static(widths[-1])):
            total = weights[wp.static(bias_starts[last] + o)]
            for i in range(wp.static(widths[last])):
                total = total + weights[wp.static(weight_starts[last] + o * widths[last] + i)] * x[wp.static(i)]
            value = total * normalization[1] + normalization[0]
            out[tid, o] = wp.min(wp.max(value, normalization[wp.static(2 + o)]),
                                 normalization[wp.static(2 + widths[-1] + o)])

    return decode


def warp_device(device: str | torch.device) -> wp.Device:
    """The Warp device of a torch device ('cuda' means the current CUDA device)."""
    device = torch.device(device)
    if device.type == "cuda":
        return wp.get_device(f"cuda:{torch.cuda.current_device() if device.index is None else device.index}")
    if device.type != "cpu":
        raise ValueError(f"device {device} has no Warp counterpart (use cpu or cuda)")
    return wp.get_device("cpu")


@wp.kernel(enable_backward=False)
def _gather_cell_latents(points: wp.array(dtype=wp.vec3i), latents: wp.array2d(dtype=float), cells: wp.uint64,
                         cell_latents: wp.array3d(dtype=float)):
    """Copy the latents of lattice point ``tid`` to each cell it is a corner of: the cell whose lower corner is the
    point minus that corner's offset (every (cell, corner) pair is written once, by its point)."""
    tid = wp.tid()
    point = points[tid]
    for corner in range(8):
        lower = point - wp.vec3i((corner >> 2) & 1, (corner >> 1) & 1, corner & 1)
        cell = wp.volume_lookup_index(cells, lower[0], lower[1], lower[2])
        if cell >= 0:
            for channel in range(latents.shape[1]):
                cell_latents[cell, corner, channel] = latents[tid, channel]


class FusedDecoder:
    """One grid's decoder resident on a device: per lattice level an index volume of the lattice cells and the
    latents of each cell's 8 corners; ``decode(ijk)`` evaluates any active voxels in one kernel launch.

    A cell is known by its lower corner, itself a lattice point whenever a voxel lies in the cell, so the index
    volume of a level holds its lattice points. Voxels outside the topology the lattices were built from get
    meaningless values.
    """

    def __init__(self, field: FieldArrays, device: str | torch.device = "cpu") -> None:
        if field.activation not in _ACTIVATIONS:
            raise ValueError(f"decoder activation {field.activation!r} is not one of {sorted(_ACTIVATIONS)}")
        if max(field.widths[:-1]) > 64:
            raise ValueError(f"decoder widths {field.widths}: the fused kernel keeps activations in registers and "
                             "takes widths up to 64")
        self.device = warp_device(device)
        self.channels = field.widths[-1]
        sizes = [8 * latents.size for latents in field.latents]
        starts = np.cumsum([0, *sizes[:-1]]).astype(np.int64)
        self._cell_latents = wp.zeros(sum(sizes), dtype=float, device=self.device)
        self.volumes: list[wp.Volume] = []
        for points, latents, start, size in zip(field.points, field.latents, starts, sizes, strict=True):
            points = wp.array(points.to(torch.int32).cpu().numpy(), dtype=wp.vec3i, device=self.device)
            volume = wp.Volume.allocate_by_voxels(points, voxel_size=1.0, device=self.device)
            cells = self._cell_latents[int(start):int(start) + size].reshape((len(latents), 8, latents.shape[1]))
            wp.launch(_gather_cell_latents, dim=len(latents), device=self.device,
                      inputs=[points, wp.array(latents, dtype=float, device=self.device), volume.id, cells])
            self.volumes.append(volume)
        self._cells = wp.array(np.array([v.id for v in self.volumes], dtype=np.uint64), dtype=wp.uint64,
                               device=self.device)
        self._cell_latent_starts = wp.array(starts, dtype=wp.int64, device=self.device)
        self._weights = wp.array(np.concatenate([t.ravel() for t in field.tensors]).astype(np.float32), dtype=float,
                                 device=self.device)
        self._normalization = wp.array(np.concatenate([[field.offset, field.scale], field.low, field.high])
                                       .astype(np.float32), dtype=float, device=self.device)
        channels = tuple(int(values.shape[1]) for values in field.latents)
        self._kernel = _decode_kernel(tuple(field.strides), channels, tuple(field.widths), field.activation,
                                      field.frequencies)

    def decode_warp(self, ijk: wp.array) -> wp.array:
        """Decoded values (N, channels) on the device at voxels ``ijk`` (N,) vec3i already on the device."""
        out = wp.empty((ijk.shape[0], self.channels), dtype=float, device=self.device)
        if ijk.shape[0]:
            wp.launch(self._kernel, dim=ijk.shape[0], device=self.device,
                      inputs=[ijk, self._cells, self._cell_latents, self._cell_latent_starts, self._weights,
                              self._normalization, out])
        return out

    def decode(self, ijk: np.ndarray) -> np.ndarray:
        """Decoded values (N, channels) float32 at active voxels ``ijk`` (N, 3)."""
        voxels = wp.array(np.ascontiguousarray(ijk, dtype=np.int32).reshape(-1, 3), dtype=wp.vec3i,
                          device=self.device)
        return self.decode_warp(voxels).numpy()

"""Warp kernels: fused sparse decode, random-access sampling and Warp (NanoVDB) volumes of decoded grids."""

from neuralvox.runtime import prepare_torch

prepare_torch()

from neuralvox.kernels.fused import FieldArrays, FusedDecoder
from neuralvox.kernels.sample import SAMPLE_MODES, sample_grid
from neuralvox.kernels.volume import grid_to_volume

__all__ = ["FieldArrays", "FusedDecoder", "SAMPLE_MODES", "sample_grid", "grid_to_volume"]

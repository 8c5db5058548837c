"""Shared test helpers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import warp as wp


def lookup_volume(volume: wp.Volume, ijk: np.ndarray, dtype: type) -> np.ndarray:
    """The values a Warp kernel reads from ``volume`` at voxels ``ijk``."""

    @wp.kernel(enable_backward=False, module="unique")
    def lookup(volume: wp.uint64, ijk: wp.array(dtype=wp.vec3i), out: wp.array(dtype=dtype)):
        tid = wp.tid()
        out[tid] = wp.volume_lookup(volume, ijk[tid][0], ijk[tid][1], ijk[tid][2], dtype=dtype)

    out = wp.zeros(len(ijk), dtype=dtype, device=volume.device)
    wp.launch(lookup, dim=len(ijk), inputs=[volume.id, wp.array(ijk, dtype=wp.vec3i, device=volume.device), out],
              device=volume.device)
    return out.numpy()


@pytest.fixture
def warp_lookup() -> Callable[[wp.Volume, np.ndarray, type], np.ndarray]:
    """``lookup_volume``, for tests that read a Warp volume back."""
    return lookup_volume

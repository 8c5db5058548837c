"""SparseGrid to Warp volume: a NanoVDB grid on a Warp device, for renderers and samplers written in Warp."""

from __future__ import annotations

import numpy as np
import torch
import warp as wp

from neuralvox.grid import SparseGrid
from neuralvox.kernels.fused import warp_device


@wp.kernel(enable_backward=False)
def _store_floats(volume: wp.uint64, ijk: wp.array(dtype=wp.vec3i), values: wp.array(dtype=float)):
    tid = wp.tid()
    voxel = ijk[tid]
    wp.volume_store(volume, voxel[0], voxel[1], voxel[2], values[tid])


@wp.kernel(enable_backward=False)
def _store_vectors(volume: wp.uint64, ijk: wp.array(dtype=wp.vec3i), values: wp.array(dtype=wp.vec3)):
    tid = wp.tid()
    voxel = ijk[tid]
    wp.volume_store(volume, voxel[0], voxel[1], voxel[2], values[tid])


def grid_to_volume(grid: SparseGrid, device: str | torch.device = "cpu") -> wp.Volume:
    """A Warp volume on ``device`` with the grid's values at its active voxels, its background elsewhere and its
    index-to-world transform: a float grid, or a vec3 grid for vector grids (``wp.volume_lookup``,
    ``wp.volume_sample``, ``wp.volume_world_to_index`` work on it as on the source).

    Warp allocates volumes by whole 8^3 leaves, so the volume's active set is the grid's leaves, not its exact voxels;
    the voxels a grid does not hold read as its background.
    """
    device = warp_device(device)
    ijk = wp.array(np.ascontiguousarray(grid.ijk, dtype=np.int32).reshape(-1, 3), dtype=wp.vec3i, device=device)
    if grid.voxel_count == 0:
        raise ValueError(f"grid '{grid.name}' has no active voxels: a Warp volume needs at least one")
    if grid.is_vector:
        background = wp.vec3(*np.broadcast_to(np.asarray(grid.background, dtype=np.float32), (3,)))
        values = wp.array(np.asarray(grid.values, dtype=np.float32), dtype=wp.vec3, device=device)
    else:
        background = float(np.asarray(grid.background, dtype=np.float64).reshape(-1)[0])
        values = wp.array(np.asarray(grid.values, dtype=np.float32), dtype=float, device=device)
    # SparseGrid maps row vectors (world = ijk @ T[:3, :3] + T[3, :3]); NanoVDB maps column vectors
    volume = wp.Volume.allocate_by_tiles(ijk, bg_value=background, transform=grid.transform[:3, :3].T.tolist(),
                                         translation=grid.transform[3, :3].tolist(), device=device)
    wp.launch(_store_vectors if grid.is_vector else _store_floats, dim=grid.voxel_count, device=device,
              inputs=[volume.id, ijk, values])
    return volume

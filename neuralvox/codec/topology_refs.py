"""Topology reference choice: code a grid's voxels intra or against the shortest already-decodable voxel set."""

from __future__ import annotations

import numpy as np

from neuralvox.codec.header import TopologyRef
from neuralvox.topology import encode_topology

Candidate = tuple[TopologyRef, np.ndarray]  # a reference and its voxels (N, 3)


def topology_candidates(ijk: np.ndarray, this_frame: list[Candidate], previous: Candidate | None,
                        moved: Candidate | None) -> list[Candidate]:
    """What a grid's topology may be coded against: the grid of the same frame closest in voxel count, the same
    grid in the previous frame, and that frame's voxels moved by this frame's coded motion (in that order: the first
    of equally short codes wins)."""
    candidates = sorted(this_frame, key=lambda c: abs(len(c[1]) - len(ijk)))[:1]
    return candidates + [c for c in (previous, moved) if c is not None]


def best_topology(ijk: np.ndarray, candidates: list[Candidate]) -> tuple[bytes, TopologyRef | None]:
    """The shortest topology code: intra, or against one of ``candidates``, and the reference it used."""
    best, best_ref = encode_topology(ijk), None
    for ref, ref_ijk in candidates:
        code = encode_topology(ijk, ref_ijk)
        if len(code) < len(best):
            best, best_ref = code, ref
    return best, best_ref

"""Lossless coding of a set of active voxels (the topology of a sparse grid), optionally against a reference set.

An octree over the set's bounding box is coded coarse to fine with context-modelled binary range coding
(``octree``: traversal and contexts; ``bitcoder``: adaptive probabilities and range coding; ``stream``: byte format).
"""

from neuralvox.topology.stream import decode_topology, encode_topology

__all__ = ["encode_topology", "decode_topology"]

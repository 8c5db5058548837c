"""The topology coder's compiled loops (``neuralvox._topology``), or None where the extension is not built.

They compute exactly what the numpy reference in octree.py / bitcoder.py / mixing.py / stream.py computes (the same
contexts and counts; format 2's integer mixer and arithmetic coder, format 1's float64 probabilities; see
neuralvox/_vdb/topology_kernels.cpp), so both write and read the same bytes.
"""

from __future__ import annotations

try:
    from neuralvox import _topology as compiled
except ImportError:  # a box without the C++ build: the numpy reference runs instead
    compiled = None

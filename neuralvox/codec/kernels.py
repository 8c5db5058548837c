"""The bounded codec's compiled per-pass loops (``neuralvox._bounded``), or None where the extension is not built.

They compute exactly what the numpy reference beside each call computes (the same float64 operations in the same
order, no FMA contraction: see neuralvox/_vdb/bounded_kernels.cpp), only without one temporary array per operation;
where the extension is missing the codec runs the numpy reference and writes and reads the same bits.
"""

from __future__ import annotations

try:
    from neuralvox import _bounded as compiled
except ImportError:  # a box without the C++ build: the numpy reference runs instead
    compiled = None

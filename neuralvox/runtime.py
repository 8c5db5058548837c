"""Process settings the codec's torch work needs, applied when a torch-using part of neuralvox is first imported."""

from __future__ import annotations

import os
import sys


def prepare_torch() -> None:
    """Idle OpenMP threads must sleep, not spin: on small shared machines spinning made torch fits 10-20x slower.
    The OpenMP runtime reads this once, when torch loads it, so it only applies before torch is imported (a value the
    user set wins)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

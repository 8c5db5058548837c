"""neuralvox: neural compression of sparse-volume (OpenVDB) sequences from fluid simulations."""

import os

__version__ = "0.1.0"
# Idle OpenMP threads must sleep, not spin: on small shared machines spinning made torch fits 10-20x slower. The
# OpenMP runtime reads this once, when torch loads it, so it is set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from neuralvox.codec.decoder import open_archive as open  # noqa: A001, E402 - the documented `neuralvox.open(path)`
from neuralvox.grid import SparseGrid  # noqa: E402
from neuralvox.vdb import read_vdb, write_nvdb, write_vdb  # noqa: E402

__all__ = ["open", "SparseGrid", "read_vdb", "write_vdb", "write_nvdb", "__version__"]

"""neuralvox: neural compression of sparse-volume (OpenVDB) sequences from fluid simulations."""

from neuralvox.grid import SparseGrid
from neuralvox.vdb import read_vdb, write_nvdb, write_vdb

__version__ = "0.1.0"
__all__ = ["SparseGrid", "read_vdb", "write_vdb", "write_nvdb", "__version__"]

"""neuralvox: neural compression of sparse-volume (OpenVDB) sequences from fluid simulations."""

__version__ = "0.1.0"

from neuralvox.codec.decoder import open_archive as open  # noqa: A001, E402 - the documented `neuralvox.open(path)`
from neuralvox.grid import SparseGrid  # noqa: E402
from neuralvox.vdb import read_vdb, write_nvdb, write_vdb  # noqa: E402

__all__ = ["open", "SparseGrid", "read_vdb", "write_vdb", "write_nvdb", "__version__"]

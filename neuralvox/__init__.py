"""neuralvox: compression of sparse-volume (OpenVDB) sequences from fluid simulations.

Importing the package is light (numpy only): torch, Warp and the process settings they need come with the first
codec call (``neuralvox.open``) or import of ``neuralvox.codec``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from neuralvox.grid import SparseGrid
from neuralvox.vdb import read_vdb, write_nvdb, write_vdb

if TYPE_CHECKING:
    from neuralvox.codec.decoder import NvoxArchive

__version__ = "0.1.0"


def open(path: str | os.PathLike, device: str = "auto") -> NvoxArchive:  # noqa: A001 - the documented neuralvox.open
    """Open a .nvox archive for decoding (see ``neuralvox.codec.decoder.NvoxArchive``)."""
    from neuralvox.codec.decoder import open_archive

    return open_archive(path, device=device)


__all__ = ["open", "SparseGrid", "read_vdb", "write_vdb", "write_nvdb", "__version__"]

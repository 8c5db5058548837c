"""Process settings the codec's torch work needs, applied when a torch-using part of neuralvox is first imported;
and the optional dependencies (extras) some commands need."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType


class MissingExtraError(ImportError):
    """A command needs an optional dependency that is not installed; the message names the extra to install."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise MissingExtraError saying which extra (``neuralvox[extra]``) provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{purpose} needs {module.split('.')[0]}, which is not installed: "
                                f"pip install 'neuralvox[{extra}]' (scripts/setup.sh installs every extra)") from None


def prepare_torch() -> None:
    """Idle OpenMP threads must sleep, not spin: on small shared machines spinning made torch fits 10-20x slower.
    The OpenMP runtime reads this once, when torch loads it, so it only applies before torch is imported (a value the
    user set wins)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

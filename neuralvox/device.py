"""Device choice: "auto" is CUDA when torch sees a GPU, else the CPU; anything else is passed to torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device named by ``device`` ("auto", "cpu", "cuda", "cuda:1", ...)."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)

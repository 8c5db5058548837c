"""Offline training of the fit's learned starting points over simulated sequences (run by ``train/``)."""

from neuralvox.runtime import prepare_torch

prepare_torch()

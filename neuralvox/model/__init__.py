"""Value model of one grid: sparse latent lattices, decoder MLP and the rate (prior) model; torch only."""

from neuralvox.runtime import prepare_torch

prepare_torch()

from neuralvox.model.decoder import DecoderMLP, positional_feature_count, positional_features
from neuralvox.model.field import LatentField
from neuralvox.model.lattice import LatticeLevel, build_lattice
from neuralvox.model.rate import LaplacePrior

__all__ = ["DecoderMLP", "LaplacePrior", "LatentField", "LatticeLevel", "build_lattice", "positional_feature_count",
           "positional_features"]

"""The neural base's model, built from a value header: latent grids over sparse lattices, their upsampling to the
voxels, the synthesis MLP, and the motion-compensated predictor of a predicted frame's latents."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from neuralvox.codec.entropy_models import LAPLACE
from neuralvox.codec.header import Architecture, MotionSpec, NeuralValueHeader
from neuralvox.codec.presets import Quality
from neuralvox.model.decoder import DecoderMLP, positional_feature_count
from neuralvox.model.field import LatentField
from neuralvox.model.lattice import build_lattice
from neuralvox.model.motion import LatentPredictor, MotionGuess, motion_lattice

MOTION_STRIDE = 16  # voxels between motion points
MOTION_STEP = 0.25  # voxels per motion integer


@dataclasses.dataclass
class LatentState:
    """The latents a decoder reconstructs for one grid of one frame: lattice ``coords`` (M_l, 3) int64 and float32
    ``latents`` (M_l, C_l) per level, their quantization ``steps``, and the frame's topology ``ijk``.

    What the next frame of a group is predicted from (``reference`` of ``encode_values`` and ``decode_values``).
    """

    ijk: np.ndarray
    coords: list[np.ndarray]
    latents: list[np.ndarray]
    steps: list[np.ndarray]


def guided_predictor(field: LatentField, header: NeuralValueHeader, reference: LatentState, device: torch.device,
                     motion_guess: MotionGuess | None) -> LatentPredictor:
    """The encoder's predictor of ``field``'s lattices from ``reference``, its motion started from ``motion_guess``."""
    predictor = predictor_at([level.coords for level in field.levels], header, reference, device)
    if motion_guess is not None:
        positions = (predictor.motion_coords * predictor.motion_stride).cpu().numpy()
        guess = np.asarray(motion_guess(positions), dtype=np.float32).reshape(-1, 3)
        predictor.set_integers(torch.round(torch.from_numpy(guess).to(device) / predictor.motion_step))
    return predictor


def predictor_at(coords: list[torch.Tensor], header: NeuralValueHeader, reference: LatentState,
                  device: torch.device) -> LatentPredictor:
    """The predictor of lattice points ``coords`` from ``reference``, motion zero (encoder and decoder alike)."""
    motion = motion_spec(header)
    motion_coords = motion_lattice(torch.from_numpy(reference.ijk).to(device), motion.stride)
    return LatentPredictor(
        [torch.from_numpy(c).to(device) for c in reference.coords],
        [torch.from_numpy(values).to(device) for values in reference.latents], coords,
        header.model.strides, motion_coords,
        torch.zeros((len(motion_coords), 3), device=device), motion.stride, motion.step, LAPLACE.prior).to(device)


def architecture_of(preset: Quality, channels: int) -> Architecture:
    """What shapes the model (a shared decoder must have been made for the same)."""
    return Architecture(channels, tuple((int(s), int(c)) for s, c in preset.levels), tuple(preset.hidden),
                        preset.frequencies, preset.activation)


def decoder_module(model: Architecture) -> DecoderMLP:
    """The synthesis MLP of an architecture (weights untrained)."""
    in_features = sum(model.level_channels) + positional_feature_count(model.frequencies)
    return DecoderMLP(in_features, model.hidden, model.channels, model.activation)


def build_field(ijk: torch.Tensor, header: NeuralValueHeader) -> LatentField:
    """The latent grids over voxels ``ijk`` and the synthesis MLP, untrained, priors from the entropy model."""
    model = header.model
    levels = [build_lattice(ijk, stride) for stride in model.strides]
    return LatentField(ijk, levels, model.level_channels, decoder_module(model).to(ijk.device), model.frequencies,
                       prior=LAPLACE.prior)


def normalization(header: NeuralValueHeader) -> tuple[np.float32, np.float32]:
    """Offset and scale that map the grid's values to 0..1 (one pair over all channels)."""
    offset = np.float32(min(header.low))
    return offset, np.float32(max(header.high)) - offset


def motion_spec(header: NeuralValueHeader) -> MotionSpec:
    """The motion lattice of a predicted frame."""
    if header.predicted is None:
        raise ValueError("this frame is not predicted: it has no motion")
    return header.predicted

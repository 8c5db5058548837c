"""A keyframe's lattices: the value fit under each candidate preset, the one of least rate-distortion cost kept."""

from __future__ import annotations

from collections.abc import Callable

from neuralvox.codec.header import Architecture
from neuralvox.codec.neural_model import architecture_of
from neuralvox.codec.presets import Quality, keyframe_candidates
from neuralvox.codec.values import EncodedValues


def rate_distortion_cost(encoded: EncodedValues, rate_lambda: float) -> float:
    """Mean squared error over the squared value range (as PSNR counts it) plus ``rate_lambda`` times the value
    streams' bits per voxel."""
    bits = 8 * sum(len(data) for data in encoded.streams.values())
    return 10 ** (-encoded.stats.psnr / 10) + rate_lambda * bits / max(1, encoded.header.voxels)


def fit_keyframe(quality: str, fit: Callable[[Quality], EncodedValues]) -> EncodedValues:
    """``fit`` (values coded with their own decoder) under each of ``quality``'s keyframe candidates, the least
    costly kept (the first on a tie)."""
    candidates = keyframe_candidates(quality)
    fits = [fit(preset) for preset in candidates]
    costs = [rate_distortion_cost(encoded, preset.rate_lambda)
             for encoded, preset in zip(fits, candidates, strict=True)]
    return fits[costs.index(min(costs))]


def preset_of(quality: str, architecture: Architecture, channels: int) -> Quality:
    """The candidate of ``quality`` whose lattices and decoder are ``architecture``: what a frame sharing a
    keyframe's decoder is fitted with."""
    for preset in keyframe_candidates(quality):
        if architecture_of(preset, channels) == architecture:
            return preset
    raise ValueError(f"no lattices of quality {quality!r} have the architecture {architecture}")

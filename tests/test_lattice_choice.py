"""A keyframe's lattice choice: each candidate fitted, the least rate-distortion cost kept, later frames matched."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import gaussian_pair

from neuralvox.codec import lattice_choice
from neuralvox.codec.neural_model import architecture_of
from neuralvox.codec.presets import Quality, keyframe_candidates, quality_preset
from neuralvox.codec.values import decode_values, encode_values
from neuralvox.metrics import error_stats, value_range

COARSE = Quality(levels=((4, 2),), hidden=(8,), frequencies=0, activation="gelu", rate_lambda=1e-3, iterations=60,
                 finetune_iterations=10, predicted_iterations=30, latent_learning_rate=0.03, initial_step=0.01,
                 decoder_learning_rate=0.01, weight_step=1 / 63)
FINE = dataclasses.replace(COARSE, levels=((4, 2), (2, 2)), hidden=(8, 8))


def test_low_also_tries_the_medium_lattices_at_its_own_rate_weights() -> None:
    low, medium = quality_preset("low"), quality_preset("medium")
    first, finer = keyframe_candidates("low")
    assert first == low
    assert (finer.levels, finer.hidden) == (medium.levels, medium.hidden)
    assert (finer.rate_lambda, finer.predicted_rate_scale) == (low.rate_lambda, low.predicted_rate_scale)
    assert keyframe_candidates("medium") == (medium,)


def test_the_keyframe_keeps_the_fit_of_least_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    ijk, values = gaussian_pair()
    monkeypatch.setattr(lattice_choice, "keyframe_candidates", lambda quality: (COARSE, FINE))
    fits = {}

    def fit(preset: Quality):
        fits[preset.levels] = encode_values(ijk, values, grid_class="fog volume", quality=preset, device="cpu",
                                            start=None)
        return fits[preset.levels]

    chosen = lattice_choice.fit_keyframe("low", fit)
    costs = {}
    for levels, encoded in fits.items():
        decoded = decode_values(ijk, encoded.header, encoded.streams, device="cpu")
        mse = error_stats(values, decoded, peak=value_range(values)).rmse ** 2 / value_range(values) ** 2
        bits = 8 * sum(len(data) for data in encoded.streams.values())
        costs[levels] = mse + COARSE.rate_lambda * bits / len(values)
    assert len(fits) == 2 and costs[COARSE.levels] != costs[FINE.levels]
    assert chosen is fits[min(costs, key=costs.get)]
    assert lattice_choice.rate_distortion_cost(chosen, COARSE.rate_lambda) == pytest.approx(min(costs.values()))


def test_a_frame_sharing_a_decoder_gets_the_candidate_with_its_architecture() -> None:
    for preset in keyframe_candidates("low"):
        assert lattice_choice.preset_of("low", architecture_of(preset, 3), 3) == preset
    with pytest.raises(ValueError, match="no lattices of quality 'medium'"):
        lattice_choice.preset_of("medium", architecture_of(quality_preset("low"), 1), 1)


def test_costs_are_finite_for_an_exact_constant_grid() -> None:
    ijk = np.zeros((4, 3), dtype=np.int32) + np.arange(4, dtype=np.int32)[:, None]
    encoded = encode_values(ijk, np.full(4, 2.0, np.float32), grid_class="fog volume", quality=COARSE, device="cpu")
    assert lattice_choice.rate_distortion_cost(encoded, 1e-3) == 0.0

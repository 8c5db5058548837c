"""The latents' context model (neuralvox-values/2): exact integer decode, clear errors on damaged streams, the CPU
torch and Warp decode paths, predicted frames sharing the keyframe's model, and the format name."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import gaussian_pair

from neuralvox.codec.context_coder import ContextStreamError
from neuralvox.codec.context_latents import (
    context_from_bytes,
    context_to_bytes,
    decode_context_latents,
    encode_context_latents,
    quantize_context,
)
from neuralvox.codec.header import NEURAL_CONTEXT_FORMAT, NeuralValueHeader, value_header_from_json
from neuralvox.codec.presets import Quality
from neuralvox.codec.values import decode_latents, decode_state, decode_values, decode_weights, encode_values
from neuralvox.container import ArchiveFormatError
from neuralvox.model import build_lattice
from neuralvox.model.latent_context import LatentContextModel, context_shapes

CONTEXT = Quality(levels=((4, 3), (2, 2)), hidden=(8,), frequencies=1, activation="gelu", rate_lambda=2e-4,
                  iterations=80, finetune_iterations=20, predicted_iterations=40, latent_learning_rate=0.03,
                  initial_step=0.01, decoder_learning_rate=0.01, weight_step=1 / 127, context_hidden=6)
CHANNELS = [3, 4, 2]


def random_model(seed: int) -> tuple[LatentContextModel, list[np.ndarray]]:
    """A context model with random weights over random lattices, and random integer latents with a few large ones
    (escapes)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ijk = torch.from_numpy(rng.integers(-20, 20, (1500, 3)))
    levels = [build_lattice(ijk, stride) for stride in (8, 4, 2)]
    model = LatentContextModel(levels, CHANNELS, 8)
    for parameter in model.parameters():
        parameter.data.normal_(0, 0.5)
    latents = [np.round(rng.laplace(0, 3, (level.point_count, c))).astype(np.int32)
               for level, c in zip(levels, CHANNELS, strict=True)]
    latents[1][rng.integers(0, len(latents[1]), 5), 0] = rng.integers(200, 5000, 5)
    return model, latents


@pytest.mark.parametrize("seed", [0, 1])
def test_context_decode_equals_the_encoders_integers(seed: int) -> None:
    model, latents = random_model(seed)
    weights = quantize_context(model)
    data = encode_context_latents(latents, model.contexts, weights)
    decoded = decode_context_latents(data, model.contexts, CHANNELS, weights)
    assert all(np.array_equal(a, b) and b.dtype == np.int32 for a, b in zip(latents, decoded, strict=True))
    # the model's bytes read back to the same integer layers
    shapes = context_shapes(CHANNELS, 8)
    again = context_from_bytes(context_to_bytes(weights), shapes)
    for level, read in zip(weights, again, strict=True):
        for a, b in zip(level.layers, read.layers, strict=True):
            assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias) and a.exponent == b.exponent


def test_damaged_context_streams_give_a_clear_error() -> None:
    model, latents = random_model(0)
    weights = quantize_context(model)
    data = encode_context_latents(latents, model.contexts, weights)
    with pytest.raises(ContextStreamError, match="truncated"):
        decode_context_latents(data[: len(data) // 2], model.contexts, CHANNELS, weights)
    more_escapes = (int.from_bytes(data[:4], "little") + 1).to_bytes(4, "little") + data[4:]
    with pytest.raises(ContextStreamError, match="escaped latents"):
        decode_context_latents(more_escapes, model.contexts, CHANNELS, weights)
    with pytest.raises(ContextStreamError, match="cannot hold"):
        decode_context_latents(data[:5], model.contexts, CHANNELS, weights)
    model_bytes = context_to_bytes(weights)
    with pytest.raises(ValueError, match="context model"):
        context_from_bytes(model_bytes[:10], context_shapes(CHANNELS, 8))


@pytest.fixture(scope="module")
def fitted():
    ijk, values = gaussian_pair()
    return ijk, values, encode_values(ijk, values, grid_class="fog volume", quality=CONTEXT, device="cpu")


def test_context_coded_frame_decodes_its_integers_on_both_backends(fitted) -> None:
    ijk, values, encoded = fitted
    header = value_header_from_json(json.loads(json.dumps(encoded.header.to_json())))
    assert header == encoded.header and header.to_json()["format"] == NEURAL_CONTEXT_FORMAT
    latents, _ = decode_latents(ijk, header, encoded.streams)
    assert all(np.array_equal(a, b) for a, b in zip(latents, encoded.latents, strict=True))
    stored = decode_weights(header, encoded.streams["weights"]).context
    assert context_to_bytes(stored) == context_to_bytes(encoded.decoder.context) and len(stored) == 2
    reference = decode_values(ijk, header, encoded.streams, device="cpu", backend="torch")
    fused = decode_values(ijk, header, encoded.streams, device="cpu", backend="warp")
    assert np.array_equal(fused, encoded.decoded)
    assert np.abs(fused - reference).max() <= 1e-5 * np.abs(reference).max()
    assert encoded.stats.psnr > 20  # a real fit: the comparison means something


def test_predicted_frame_uses_the_keyframes_context_model(fitted) -> None:
    ijk, values, keyframe = fitted
    moved = np.roll(values, 7)
    predicted = encode_values(ijk, moved, grid_class="fog volume", quality=CONTEXT, device="cpu",
                              shared_decoder=keyframe.decoder, reference=keyframe.state)
    assert set(predicted.streams) == {"motion", "residual"}
    state = decode_state(ijk, predicted.header, predicted.streams, keyframe.state, device="cpu",
                         shared_decoder=keyframe.decoder)
    assert all(np.array_equal(a, b) for a, b in zip(state.latents, predicted.state.latents, strict=True))
    with pytest.raises(ValueError, match="shared decoder"):
        decode_state(ijk, predicted.header, predicted.streams, keyframe.state, device="cpu")


def test_a_values_1_header_with_a_context_model_is_refused(fitted) -> None:
    from neuralvox.codec.schema import VALUE_VALIDATORS, _Checker  # noqa: PLC0415 - the schema's own checker

    _, _, encoded = fitted
    data = encoded.header.to_json()
    grid = {"value_type": "float", "voxels": encoded.header.voxels, "streams": ["latents", "weights"]}
    VALUE_VALIDATORS[NEURAL_CONTEXT_FORMAT](_Checker(Path("x.nvox")), dict(data), grid)
    old = {**data, "format": "neuralvox-values/1"}
    with pytest.raises(ArchiveFormatError, match="context_hidden"):
        VALUE_VALIDATORS["neuralvox-values/1"](_Checker(Path("x.nvox")), old, grid)
    plain = dataclasses.replace(encoded.header.model, context_hidden=0)
    assert NeuralValueHeader(1, 1, None, plain).to_json()["format"] == "neuralvox-values/1"

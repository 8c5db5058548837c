"""Tests of the neural value codec: round trips, determinism, stream format, edge cases, entropy coding."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from conftest import gaussian_pair

from neuralvox.codec.entropy import EntropyStreamError, decode_integer_arrays, encode_integer_arrays
from neuralvox.codec.entropy_models import LAPLACE, SHORTEST
from neuralvox.codec.header import NeuralValueHeader
from neuralvox.codec.latent_codecs import (
    compress_latents,
    compress_motion,
    compress_weights,
    decompress_motion,
    stream_models,
)
from neuralvox.codec.presets import Quality, quality_preset
from neuralvox.codec.values import decode_latents, decode_values, decode_weights, encode_values
from neuralvox.model import build_lattice
from neuralvox.model.motion import motion_lattice

TINY = Quality(levels=((4, 4), (2, 2)), hidden=(8,), frequencies=1, activation="gelu", rate_lambda=2e-4,
               iterations=80, finetune_iterations=20, predicted_iterations=40, latent_learning_rate=0.03,
               initial_step=0.01, decoder_learning_rate=0.01, weight_step=1 / 127)


def via_json(header: NeuralValueHeader) -> NeuralValueHeader:
    """The value header as the archive stores and reads it back."""
    return NeuralValueHeader.from_json(json.loads(json.dumps(header.to_json())))


def recomputed_stats(original: np.ndarray, decoded: np.ndarray) -> tuple[float, float, float]:
    error = decoded.astype(np.float64) - original.astype(np.float64)
    rmse = math.sqrt(float(np.mean(error**2)))
    psnr = 20 * math.log10(float(original.max() - original.min()) / rmse)
    return psnr, rmse, float(np.abs(error).max())


@pytest.fixture(scope="module")
def blob() -> tuple[np.ndarray, np.ndarray]:
    return gaussian_pair()


@pytest.fixture(scope="module")
def encoded(blob):
    torch.manual_seed(0)
    ijk, values = blob
    return encode_values(ijk, values, grid_class="fog volume", quality=TINY, device="cpu")


def test_decoded_values_match_recorded_stats(blob, encoded):
    ijk, values = blob
    decoded = decode_values(ijk, encoded.header, encoded.streams, device="cpu")
    assert decoded.dtype == np.float32 and decoded.shape == values.shape
    psnr, rmse, max_error = recomputed_stats(values, decoded)
    assert (encoded.stats.psnr, encoded.stats.rmse, encoded.stats.max_abs_error) == (psnr, rmse, max_error)
    assert 0 < encoded.stats.iterations <= TINY.iterations + TINY.finetune_iterations  # the caps; it may converge
    assert encoded.stats.psnr > 20


def test_encoding_is_reproducible_and_leaves_the_callers_random_state_alone(blob, encoded):
    ijk, values = blob
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    again = encode_values(ijk, values, grid_class="fog volume", quality=TINY, device="cpu")
    assert again.streams == encoded.streams and again.header == encoded.header
    assert torch.equal(torch.random.get_rng_state(), state)


def test_decoding_is_deterministic(blob, encoded):
    ijk, _ = blob
    first = decode_values(ijk, encoded.header, encoded.streams, device="cpu")
    second = decode_values(ijk, encoded.header, encoded.streams, device="cpu")
    assert np.array_equal(first, second)


def test_streams_are_bytes_and_header_survives_json(blob, encoded):
    ijk, _ = blob
    assert set(encoded.streams) == {"latents", "weights"}
    assert all(isinstance(data, bytes) and data for data in encoded.streams.values())
    header = via_json(encoded.header)
    streams = {name: bytes(bytearray(data)) for name, data in encoded.streams.items()}
    assert np.array_equal(decode_values(ijk, header, streams, device="cpu"),
                          decode_values(ijk, encoded.header, encoded.streams, device="cpu"))


def test_entropy_decoded_latents_are_the_encoders_integers(blob, encoded):
    ijk, _ = blob
    latents, steps = decode_latents(ijk, encoded.header, encoded.streams)
    assert len(latents) == len(encoded.latents) == 2
    for got, want, coords in zip(latents, encoded.latents, encoded.state.coords, strict=True):
        assert got.dtype == np.int32 and np.array_equal(got, want)
        assert got.shape[0] == coords.shape[0]
    assert all(np.array_equal(a, b) for a, b in zip(steps, encoded.state.steps, strict=True))
    assert any(np.abs(level).max() > 0 for level in latents)


def test_integer_arrays_round_trip_through_the_entropy_coder():
    rng = np.random.default_rng(1)
    arrays = [np.rint(rng.laplace(0, 2.0, 500)).astype(np.int32), np.zeros(7, dtype=np.int32),
              rng.integers(-300, 300, 50).astype(np.int32), np.array([], dtype=np.int32), np.array([-1, 1, 0])]
    data = encode_integer_arrays(arrays)
    decoded = decode_integer_arrays(data, [len(a) for a in arrays])
    assert all(np.array_equal(got, want) for got, want in zip(decoded, arrays, strict=True))
    with pytest.raises(EntropyStreamError, match="test stream"):
        decode_integer_arrays(data[:5], [len(a) for a in arrays], name="test stream")


def test_vector_grid_gives_three_channels(blob):
    ijk, values = blob
    vectors = np.stack([values, -2 * values, values**2 + 1], axis=1).astype(np.float32)
    calls = []
    encoded = encode_values(ijk, vectors, grid_class="staggered", quality=TINY, device="cpu",
                            progress=lambda done, total: calls.append((done, total)))
    done = encoded.stats.iterations
    assert calls[-1] == (done, done) and all(a < b for (a, _), (b, _) in zip(calls, calls[1:], strict=False))
    assert all(total == TINY.iterations + TINY.finetune_iterations for _, total in calls[:-1])
    decoded = decode_values(ijk, encoded.header, encoded.streams, device="cpu")
    assert decoded.shape == (len(ijk), 3) and decoded.dtype == np.float32
    assert (encoded.stats.psnr, encoded.stats.rmse, encoded.stats.max_abs_error) == recomputed_stats(vectors, decoded)
    assert encoded.stats.psnr > 15


@pytest.mark.parametrize("vector", [False, True])
def test_empty_grid(vector):
    ijk = np.zeros((0, 3), dtype=np.int32)
    values = np.zeros((0, 3) if vector else (0,), dtype=np.float32)
    encoded = encode_values(ijk, values, grid_class="fog volume", quality="low", device="cpu")
    decoded = decode_values(ijk, via_json(encoded.header), encoded.streams, device="cpu")
    assert decoded.shape == values.shape and decoded.dtype == np.float32
    assert encoded.stats.rmse == 0.0


def test_constant_grid_is_exact(blob):
    ijk, _ = blob
    values = np.full(len(ijk), 0.3, dtype=np.float32)
    encoded = encode_values(ijk, values, grid_class="fog volume", quality="medium", device="cpu")
    decoded = decode_values(ijk, via_json(encoded.header), encoded.streams, device="cpu")
    assert np.array_equal(decoded, values)
    assert encoded.stats.psnr == math.inf and encoded.stats.max_abs_error == 0.0


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
def test_non_finite_values_are_rejected(blob, bad, word):
    ijk, values = blob
    broken = values.copy()
    broken[3] = bad
    with pytest.raises(ValueError, match=word):
        encode_values(ijk, broken, grid_class="fog volume", quality=TINY, device="cpu")


@pytest.mark.parametrize(("scale", "sparsity", "groups", "mode"), [
    ([2.0, 2.0], 0.3, [0, 0], 2),  # alike and sparse: one zero-inflated law for both
    ([0.5, 40.0], 0.3, [0, 0], 1),  # sparse but of different scales: one each
])
def test_shortest_laws_keep_the_shortest_coding_and_round_trip(scale, sparsity, groups, mode):
    rng = np.random.default_rng(2)
    columns = [np.rint(rng.laplace(0, s, 4000) * (rng.random(4000) < sparsity)).astype(np.int32) for s in scale]
    data = SHORTEST.compress(columns, groups)
    assert data[0] == mode
    assert len(data) <= 1 + len(LAPLACE.compress(columns))
    decoded = SHORTEST.decompress(data, [len(c) for c in columns], groups=groups)
    assert all(got.dtype == np.int32 and np.array_equal(got, want) for got, want in zip(decoded, columns, strict=True))


def test_shortest_laws_edge_cases_and_damage():
    columns = [np.zeros(9, np.int32), np.array([], np.int32), np.array([40_000, -3], np.int32)]  # past MAX_CODE
    data = SHORTEST.compress(columns, [0, 0, 1])
    assert data[0] == 0  # only the geometric coder holds 40,000
    decoded = SHORTEST.decompress(data, [9, 0, 2], groups=[0, 0, 1])
    assert all(np.array_equal(got, want) for got, want in zip(decoded, columns, strict=True))
    sparse = [np.array([0] * 50 + [3, -1], np.int32)]
    data = SHORTEST.compress(sparse)
    for damaged in (data[:3], b"", bytes([7]) + data[1:]):
        with pytest.raises(EntropyStreamError, match="test stream"):
            SHORTEST.decompress(damaged, [52], name="test stream")
    with pytest.raises(ValueError, match="beyond"):
        SHORTEST.compress([np.array([1 << 16])])


def test_new_values_take_the_shortest_laws_and_older_formats_still_decode(blob, encoded):
    """/3 codes latents and weights with ``SHORTEST``; a /2 header (same fields) reads its weights per column, a /1
    header its latents too."""
    ijk, _ = blob
    assert encoded.header.format == "neuralvox-values/3" == encoded.header.to_json()["format"]
    assert (stream_models(encoded.header).latents, stream_models(encoded.header).weights) == (SHORTEST, SHORTEST)
    laplace_weights = compress_weights(encoded.decoder, LAPLACE)
    assert encoded.streams["weights"] != laplace_weights
    weights = decode_weights(encoded.header, encoded.streams["weights"])
    assert weights.steps == encoded.decoder.steps
    assert all(np.array_equal(got, want) for got, want in zip(weights.integers, encoded.decoder.integers, strict=True))
    new = decode_values(ijk, encoded.header, encoded.streams, device="cpu")
    v2 = dataclasses.replace(encoded.header, format="neuralvox-values/2")
    v1 = dataclasses.replace(encoded.header, format="neuralvox-values/1")
    for header, latents_model in ((v2, SHORTEST), (v1, LAPLACE)):
        streams = {"latents": compress_latents(encoded.latents, encoded.state.steps, latents_model),
                   "weights": laplace_weights}
        assert via_json(header).format == header.format
        assert np.array_equal(decode_values(ijk, via_json(header), streams, device="cpu"), new)


def test_predicted_motion_takes_the_shortest_laws_and_version_2_motion_still_decodes(blob, encoded):
    """A predicted frame's motion under /3 is ``SHORTEST`` (the three axes may share a law); /2 reads it per axis."""
    ijk, values = blob
    predicted = encode_values(ijk, values * 1.01, grid_class="fog volume", quality=TINY, device="cpu",
                              shared_decoder=encoded.decoder, reference=encoded.state,
                              motion_guess=lambda points: np.zeros((len(points), 3)))
    assert set(predicted.streams) == {"motion", "residual"} and predicted.header.format == "neuralvox-values/3"
    points = len(motion_lattice(torch.from_numpy(encoded.state.ijk), predicted.header.predicted.stride))
    motion = decompress_motion(predicted.streams["motion"], points, SHORTEST)
    laplace_motion = compress_motion(motion, LAPLACE)
    assert len(predicted.streams["motion"]) <= 1 + len(laplace_motion)
    v2 = via_json(dataclasses.replace(predicted.header, format="neuralvox-values/2"))
    decoded = decode_values(ijk, v2, {**predicted.streams, "motion": laplace_motion}, device="cpu",
                            shared_decoder=encoded.decoder, reference=encoded.state)
    assert np.array_equal(decoded, predicted.decoded)
    assert np.array_equal(decode_values(ijk, predicted.header, predicted.streams, device="cpu",
                                        shared_decoder=encoded.decoder, reference=encoded.state), predicted.decoded)


def test_sparse_motion_shares_one_law_across_axes():
    motion = np.zeros((400, 3), np.int32)
    motion[::37] = [1, -1, 2]
    data = compress_motion(motion, SHORTEST)
    assert data[0] == 2 and len(data) < len(compress_motion(motion, LAPLACE))
    assert np.array_equal(decompress_motion(data, 400, SHORTEST), motion)


def test_bad_arguments_are_named(blob, encoded):
    ijk, values = blob
    with pytest.raises(ValueError, match="grid class"):
        encode_values(ijk, values, grid_class="cloud", quality=TINY, device="cpu")
    with pytest.raises(ValueError, match="quality"):
        encode_values(ijk, values, grid_class="fog volume", quality="ultra", device="cpu")
    with pytest.raises(ValueError, match="voxels"):
        decode_values(ijk[:-1], encoded.header, encoded.streams, device="cpu")
    with pytest.raises(EntropyStreamError, match="weights"):
        decode_values(ijk, encoded.header, {"latents": encoded.streams["latents"]}, device="cpu")


@pytest.mark.slow
def test_higher_quality_gives_higher_psnr():
    ijk, values = gaussian_pair(size=16, seed=3)
    psnr = {}
    for name in ("low", "high"):
        torch.manual_seed(0)
        preset = dataclasses.replace(quality_preset(name), iterations=300, finetune_iterations=50)
        psnr[name] = encode_values(ijk, values, grid_class="fog volume", quality=preset, device="cpu").stats.psnr
    assert psnr["high"] > psnr["low"] + 3


def test_shared_decoder_sends_latents_only(blob, encoded):
    ijk, values = blob
    shifted = (values * 0.8 + 0.1).astype(np.float32)
    frame = encode_values(ijk, shifted, grid_class="fog volume", quality=TINY, device="cpu",
                          shared_decoder=encoded.decoder)
    assert set(frame.streams) == {"latents"}
    stored = decode_weights(via_json(encoded.header), encoded.streams["weights"])
    assert stored.architecture == encoded.decoder.architecture and stored.steps == encoded.decoder.steps
    assert all(np.array_equal(a, b) for a, b in zip(stored.integers, encoded.decoder.integers, strict=True))
    decoded = decode_values(ijk, frame.header, frame.streams, device="cpu", shared_decoder=encoded.decoder)
    assert (frame.stats.psnr, frame.stats.rmse, frame.stats.max_abs_error) == recomputed_stats(shifted, decoded)
    with pytest.raises(ValueError, match="shared decoder"):
        decode_values(ijk, frame.header, frame.streams, device="cpu")


def test_lattice_interpolation_reproduces_linear_fields():
    ijk = torch.from_numpy(gaussian_pair(size=10)[0])
    level = build_lattice(ijk, 4)
    assert torch.equal(level.coords, torch.unique(level.coords, dim=0))  # sorted, no duplicates
    slope = torch.tensor([0.5, -1.25, 2.0])
    latents = (level.coords.to(torch.float32) * 4) @ slope
    expected = ijk.to(torch.float32) @ slope
    gathered = level.interpolate(latents[:, None])[:, 0]
    sparse = level.interpolation_operator(torch.arange(len(ijk)))(latents[:, None])[:, 0]
    assert torch.allclose(gathered, expected, atol=1e-3) and torch.allclose(sparse, expected, atol=1e-3)
    assert torch.equal(level.lookup(level.coords), torch.arange(level.point_count))
    assert int(level.lookup(level.coords[:1] + 1000)[0]) == -1


def test_weight_step_search_with_one_candidate_is_that_step(blob, encoded):
    ijk, values = blob
    searched = encode_values(ijk, values, grid_class="fog volume", device="cpu",
                             quality=dataclasses.replace(TINY, weight_step=1 / 7, weight_steps=(TINY.weight_step,)))
    assert searched.streams == encoded.streams


def test_weight_step_search_keeps_one_candidate_and_what_it_stores_decodes(blob):
    ijk, values = blob
    preset = dataclasses.replace(TINY, weight_steps=(1 / 3, 1 / 255))
    coded = encode_values(ijk, values, grid_class="fog volume", quality=preset, device="cpu")
    largest = {int(np.abs(integers).max()) for integers in coded.decoder.integers}
    assert largest in ({3}, {255})
    decoded = decode_values(ijk, coded.header, coded.streams, device="cpu")
    assert (coded.stats.psnr, coded.stats.rmse, coded.stats.max_abs_error) == recomputed_stats(values, decoded)

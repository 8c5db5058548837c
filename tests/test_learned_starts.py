"""Learned starts: the shipped file covers every grid kind and keyframe candidate, is checked on load (a damaged
file is one clear error naming it), is looked up by the fit's rate weight too, changes where a fit begins, and an
archive fitted from it decodes without it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, soft_blob

import neuralvox.codec.starts as starts
from neuralvox.codec.neural_model import architecture_of
from neuralvox.codec.presets import ALTERNATIVE_LATTICES, QUALITY_PRESETS, keyframe_candidates, quality_preset
from neuralvox.codec.starts import (
    GRID_KINDS,
    FitRates,
    LearnedStart,
    LearnedStartError,
    find_start,
    grid_kind,
    load_starts,
)
from neuralvox.codec.values import encode_values
from neuralvox.train.corpus import CorpusGrid, SimSpec, held_back


@pytest.fixture
def damaged_copy(tmp_path: Path):
    """A copy of the shipped starts file with one byte changed at ``at`` (a fraction of its length)."""

    def damage(at: float) -> Path:
        copy = tmp_path / "learned_starts.bin"
        shutil.copyfile(starts.STARTS_FILE, copy)
        data = bytearray(copy.read_bytes())
        data[int(at * len(data))] ^= 0x5A
        copy.write_bytes(bytes(data))
        return copy

    return damage


def test_shipped_file_has_a_start_for_every_kind_and_candidate_unless_validation_kept_the_untrained_one() -> None:
    provenance = starts.starts_provenance(starts.STARTS_FILE)
    for quality in QUALITY_PRESETS:
        names = [quality, *(f"{quality}/{lattices}" for lattices in ALTERNATIVE_LATTICES.get(quality, ()))]
        for name, preset in zip(names, keyframe_candidates(quality), strict=True):
            for kind in GRID_KINDS:
                start = find_start(kind, architecture_of(preset, 3 if kind == "velocity" else 1), preset.rate_lambda)
                assert (start is not None) != (kind in provenance[name].get("untrained", [])), (name, kind)
                if name != quality:  # an alternative's starts are trained at its rate weight (files before /3: none)
                    assert start is None or start.rate_lambda == preset.rate_lambda, (name, kind)
    assert starts.STARTS_FILE.stat().st_size < 100_000


@pytest.mark.parametrize("at", [0.0, 0.002, 0.5, 0.999])
def test_damaged_file_is_refused_with_one_line_naming_it(damaged_copy, at: float) -> None:
    path = damaged_copy(at)
    with pytest.raises(LearnedStartError) as error:
        load_starts(path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message


def test_changed_values_in_a_well_formed_body_fail_the_checksum(tmp_path: Path) -> None:
    data = starts.STARTS_FILE.read_bytes()
    head = len(starts._MAGIC) + 32
    body = bytearray(zlib.decompress(data[head:]))
    body[-5] ^= 0x01  # one bit of the last tensor
    forged = tmp_path / "forged.bin"
    forged.write_bytes(data[:head] + zlib.compress(bytes(body)))
    with pytest.raises(LearnedStartError, match="checksum"):
        load_starts(forged)


def test_another_file_is_not_taken_for_a_starts_file(tmp_path: Path) -> None:
    other = tmp_path / "other.bin"
    other.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(LearnedStartError, match="not a neuralvox-starts/3 file"):
        load_starts(other)
    with pytest.raises(LearnedStartError, match="cannot read"):
        load_starts(tmp_path / "missing.bin")


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(starts.STARTS_FILE.read_bytes()[:1000])
    with pytest.raises(LearnedStartError, match=str(truncated)):
        load_starts(truncated)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    architecture = architecture_of(quality_preset("low"), 1)
    start = LearnedStart("density", architecture, {"decoder.layers.0.weight": np.arange(6, dtype=np.float32)
                                                   .reshape(2, 3), "latent_map.0": np.ones((4, 2), np.float32)})
    path = tmp_path / "starts.bin"
    starts.save_starts(path, [start], {"note": "test"})
    loaded = load_starts(path)[("density", architecture, None)]
    assert loaded.parameters.keys() == start.parameters.keys()
    assert all(np.array_equal(loaded.parameters[k], v) for k, v in start.parameters.items())


def test_learning_rates_round_trip_and_scale_the_preset(tmp_path: Path) -> None:
    preset = quality_preset("medium")
    start = LearnedStart("velocity", architecture_of(preset, 3), {"latent_map.0": np.ones((4, 4), np.float32)},
                         FitRates(latent=2.0, decoder=0.5))
    path = tmp_path / "starts.bin"
    starts.save_starts(path, [start], {})
    loaded = load_starts(path)[("velocity", start.architecture, None)]
    assert loaded.rates == FitRates(2.0, 0.5)
    tuned = loaded.tuned(preset)
    assert tuned.latent_learning_rate == 2.0 * preset.latent_learning_rate
    assert tuned.decoder_learning_rate == 0.5 * preset.decoder_learning_rate
    assert dataclasses.replace(tuned, latent_learning_rate=preset.latent_learning_rate,
                               decoder_learning_rate=preset.decoder_learning_rate) == preset


def test_a_start_without_decoder_weights_begins_from_the_untrained_decoder_with_its_own_steps(tmp_path: Path) -> None:
    import torch

    from neuralvox.codec.neural_model import build_field
    from neuralvox.model.field import LatentField

    ijk, values = soft_blob(np.arange(12), (6, 6, 6), 10.0, (0.2, 0.7, 0.0, 0.5))
    preset = quality_preset("low")
    architecture = architecture_of(preset, 1)
    header = encode_values(ijk, values, grid_class="fog volume", quality=dataclasses.replace(
        preset, iterations=2, finetune_iterations=1), device="cpu", start=None).header

    def field() -> LatentField:
        torch.manual_seed(0)
        return build_field(torch.from_numpy(ijk), header)

    trained = field()
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(0.25)
    full = LearnedStart.of_field("density", architecture, trained)
    starts.save_starts(tmp_path / "starts.bin", [dataclasses.replace(full.without_decoder(), rates=FitRates(16, 8))],
                       {})
    loaded = load_starts(tmp_path / "starts.bin")[("density", architecture, None)]
    assert loaded.rates == FitRates(16.0, 8.0)
    assert not any(name.startswith("decoder.") for name in loaded.parameters)
    assert any(name.startswith("log_steps.") for name in loaded.parameters)
    untrained, started = field(), field()
    loaded.apply(started, torch.zeros(len(ijk), 1))
    for (name, before), after in zip(untrained.named_parameters(), started.parameters(), strict=True):
        if name.startswith("decoder."):
            assert torch.equal(before, after), name
        elif name.startswith(("log_steps.", "priors.")):
            np.testing.assert_array_equal(after.detach().numpy(), full.parameters[name], err_msg=name)


def _starts_file(path: Path, manifest: dict, payload: bytes) -> Path:
    """A starts file with ``manifest`` and ``payload``, in the layout ``save_starts`` writes."""
    text = json.dumps(manifest).encode()
    body = zlib.compress(len(text).to_bytes(8, "little") + text + payload)
    path.write_bytes(starts._MAGIC + hashlib.sha256(body).digest() + body)
    return path


def test_a_format_1_file_still_loads_with_the_presets_rates(tmp_path: Path) -> None:
    architecture = architecture_of(quality_preset("low"), 1)
    weights = np.arange(6, dtype="<f4")
    manifest = {"format": "neuralvox-starts/1", "provenance": {}, "starts": [
        {"kind": "density", "architecture": architecture.to_json(),
         "tensors": {"decoder.layers.0.weight": {"offset": 0, "shape": [2, 3]}}}]}
    path = _starts_file(tmp_path / "v1.bin", manifest, weights.tobytes())
    loaded = load_starts(path)[("density", architecture, None)]
    assert loaded.rates == FitRates(1.0, 1.0)
    np.testing.assert_array_equal(loaded.parameters["decoder.layers.0.weight"], weights.reshape(2, 3))
    assert find_start("density", architecture, 1e-3, path) is loaded


def test_a_format_2_file_serves_every_rate_weight_and_ignores_later_fields(tmp_path: Path) -> None:
    """Files before /3 record no rate weight: their start is the one of its kind and architecture at any rate weight
    (as before), and a /2 entry's rate weight or untrained flag is not read."""
    architecture = architecture_of(quality_preset("medium"), 1)
    manifest = {"format": "neuralvox-starts/2", "provenance": {}, "starts": [
        {"kind": "density", "architecture": architecture.to_json(), "rates": {"latent": 4.0, "decoder": 2.0},
         "tensors": {"latent_map.0": {"offset": 0, "shape": [4, 2]}}, "rate_lambda": 1.6e-3, "untrained": True}]}
    path = _starts_file(tmp_path / "v2.bin", manifest, np.ones(8, "<f4").tobytes())
    assert list(load_starts(path)) == [("density", architecture, None)]
    for rate_lambda in (2e-4, 1.6e-3, 0.5):
        start = find_start("density", architecture, rate_lambda, path)
        assert start is not None and start.rates == FitRates(4.0, 2.0) and start.rate_lambda is None
    assert find_start("temperature", architecture, 2e-4, path) is None


def test_the_rate_weight_picks_the_start(tmp_path: Path) -> None:
    """The start trained at the fit's rate weight, else the one without a recorded rate weight, else the nearest;
    a recorded untrained start is None, not another rate weight's start."""
    architecture = architecture_of(quality_preset("medium"), 1)

    def start(kind: str, rate_lambda: float | None, latent: float) -> LearnedStart:
        return LearnedStart(kind, architecture, {"latent_map.0": np.full((4, 2), latent, np.float32)},
                            FitRates(latent, 1.0), rate_lambda)

    path = tmp_path / "starts.bin"
    starts.save_starts(path, [start("density", None, 1.0), start("density", 1.6e-3, 2.0),
                              start("velocity", 1e-3, 3.0), start("velocity", 1e-2, 4.0),
                              start("temperature", None, 5.0)], {},
                       untrained=(("temperature", architecture, 1.6e-3),))

    def latent_rate(kind: str, rate_lambda: float) -> float | None:
        found = find_start(kind, architecture, rate_lambda, path)
        return None if found is None else found.rates.latent

    assert latent_rate("density", 1.6e-3) == 2.0
    assert latent_rate("density", 2e-4) == 1.0
    assert latent_rate("density", 1.5e-3) == 1.0  # a start without a rate weight before the nearest recorded one
    assert latent_rate("velocity", 2e-3) == 3.0  # nearest in ratio: 2x from 1e-3, 5x from 1e-2
    assert latent_rate("velocity", 5e-3) == 4.0
    assert latent_rate("velocity", 1e-2) == 4.0
    assert latent_rate("temperature", 1.6e-3) is None
    assert latent_rate("temperature", 2e-4) == 5.0
    assert latent_rate("level set", 1.6e-3) is None
    loaded = load_starts(path)
    assert loaded[("density", architecture, 1.6e-3)].rate_lambda == 1.6e-3
    assert loaded[("temperature", architecture, 1.6e-3)] is None


@pytest.mark.parametrize("entry", [{"rate_lambda": -1e-3}, {"rate_lambda": float("inf")}, {"rate_lambda": "x"},
                                   {"untrained": True}])
def test_bad_rate_weights_are_refused(tmp_path: Path, entry: dict) -> None:
    architecture = architecture_of(quality_preset("low"), 1)
    manifest = {"format": "neuralvox-starts/3", "provenance": {}, "starts": [
        {"kind": "density", "architecture": architecture.to_json(), "tensors": {}, **entry}]}
    path = _starts_file(tmp_path / "bad.bin", manifest, b"")
    with pytest.raises(LearnedStartError, match=f"{path}: not a valid neuralvox-starts/3 file"):
        load_starts(path)


def test_two_starts_for_one_key_are_refused(tmp_path: Path) -> None:
    architecture = architecture_of(quality_preset("low"), 1)
    entry = {"kind": "density", "architecture": architecture.to_json(), "tensors": {}, "rate_lambda": 1.6e-3}
    manifest = {"format": "neuralvox-starts/3", "provenance": {}, "starts": [entry, {**entry, "untrained": True}]}
    with pytest.raises(LearnedStartError, match="two density starts"):
        load_starts(_starts_file(tmp_path / "twice.bin", manifest, b""))


def test_a_keyframe_fit_looks_its_start_up_at_its_own_rate_weight(monkeypatch: pytest.MonkeyPatch) -> None:
    import neuralvox.codec.values as values_module

    asked = []

    def record(kind, architecture, rate_lambda, path=None):
        asked.append((kind, architecture, rate_lambda))
        return None

    monkeypatch.setattr(values_module, "find_start", record)
    ijk, values = soft_blob(np.arange(12), (6, 6, 6), 10.0, (0.2, 0.7, 0.0, 0.5))
    for preset in keyframe_candidates("low"):
        quick = dataclasses.replace(preset, iterations=2, finetune_iterations=1)
        encode_values(ijk, values, grid_class="fog volume", quality=quick, device="cpu", grid_name="flame")
    low, finer = keyframe_candidates("low")
    assert finer.rate_lambda == low.rate_lambda != quality_preset("medium").rate_lambda
    assert asked == [("temperature", architecture_of(low, 1), low.rate_lambda),
                     ("temperature", architecture_of(finer, 1), low.rate_lambda)]


@pytest.mark.parametrize("rates", [{"latent": -1.0, "decoder": 1.0}, {"latent": 2.0, "decoder": float("nan")},
                                   {"latent": 2.0}])
def test_bad_learning_rates_are_refused(tmp_path: Path, rates: dict) -> None:
    architecture = architecture_of(quality_preset("low"), 1)
    manifest = {"format": "neuralvox-starts/2", "provenance": {}, "starts": [
        {"kind": "density", "architecture": architecture.to_json(), "tensors": {}, "rates": rates}]}
    path = _starts_file(tmp_path / "bad.bin", manifest, b"")
    with pytest.raises(LearnedStartError, match=f"{path}: not a valid neuralvox-starts/3 file"):
        load_starts(path)


def test_grid_kinds() -> None:
    assert grid_kind("surface", "level set", 1) == "level set"
    assert grid_kind("vel", "unknown", 3) == "velocity"
    assert grid_kind("flame", "fog volume", 1) == grid_kind("Temperature", "fog volume", 1) == "temperature"
    assert grid_kind("density", "fog volume", 1) == "density"


def test_held_back_grids_are_spread_over_resolutions_and_scenarios_and_not_trained_on() -> None:
    specs = [SimSpec(scenario, res, seed, (6, 12)) for scenario in ("plume", "plumes") for res in (32, 40, 48)
             for seed in (1, 2)]
    grids = [CorpusGrid("density", f"{spec.scenario}/{spec.res}/{spec.seed}/{frame}", spec, np.zeros((1, 3), np.int32),
                        np.zeros(1, np.float32), "fog volume") for spec in specs for frame in spec.frames]
    training, validation = held_back(grids, 4)
    assert len(validation) == 4 and len(training) == len(grids) - 4
    assert not any(grid is held for grid in training for held in validation)
    assert [grid.spec.res for grid in validation] == [32, 40, 48, 32]
    assert [grid.spec.scenario for grid in validation] == ["plume", "plumes", "plume", "plumes"]
    assert held_back(grids[:3], 4)[0] == grids[:1]  # at least one grid is left to train on


@pytest.mark.slow
def test_fit_from_a_damaged_file_is_one_clear_error(damaged_copy, monkeypatch: pytest.MonkeyPatch) -> None:
    path = damaged_copy(0.5)
    monkeypatch.setattr(starts, "STARTS_FILE", path)
    ijk, values = soft_blob(np.arange(12), (6, 6, 6), 10.0, (0.2, 0.7, 0.0, 0.5))
    with pytest.raises(LearnedStartError, match=str(path)):
        encode_values(ijk, values, grid_class="fog volume", quality="low", device="cpu")


@pytest.mark.slow
def test_a_starts_learning_rates_are_the_keyframe_fits() -> None:
    ijk, values = soft_blob(np.arange(12), (6, 6, 6), 10.0, (0.2, 0.7, 0.0, 0.5))
    preset = dataclasses.replace(quality_preset("low"), iterations=60, finetune_iterations=10)
    architecture = architecture_of(preset, 1)

    def streams(rates: FitRates, quality) -> dict:
        start = LearnedStart("density", architecture, {}, rates)
        return encode_values(ijk, values, grid_class="fog volume", quality=quality, device="cpu", start=start).streams

    faster = FitRates(latent=3.0, decoder=2.0)
    assert streams(faster, preset) == streams(FitRates(), LearnedStart("density", architecture, {}, faster)
                                              .tuned(preset))
    assert streams(faster, preset) != streams(FitRates(), preset)


DECODE_WITHOUT_STARTS = """
import json, sys
import numpy as np
import neuralvox.codec.starts as starts

def refuse(*args, **kwargs):
    raise AssertionError("decoding read the learned starts")

starts.STARTS_FILE = starts.STARTS_FILE.with_name("absent.bin")
starts.load_starts = starts.find_start = refuse
import neuralvox
with neuralvox.open(sys.argv[1], device="cpu") as archive:
    frames = {str(n): {name: grid.values.tolist() for name, grid in archive.frame(n).items()}
              for n in archive.frames}
print(json.dumps(frames))
"""


@pytest.mark.slow
def test_learned_start_archive_decodes_in_a_fresh_process_without_the_starts_file(tmp_path: Path) -> None:
    from neuralvox.codec.encoder import compress
    from neuralvox.grid import SparseGrid
    from neuralvox.vdb import write_vdb

    for t in range(2):  # a density at medium: a preset and kind that ship a learned start
        ijk, values = soft_blob(np.arange(16), (7 + t, 8, 8), 20.0, (0.2, 0.7, 0.3 * t, 0.5))
        write_vdb(tmp_path / f"blob.{t + 1:04d}.vdb", [SparseGrid(name="density", ijk=ijk, values=values,
                                                                   grid_class="fog volume")])
    archive = tmp_path / "blob.nvox"
    compress([str(tmp_path)], archive, quality="medium", base_only=True, device="cpu", gop=2, progress=False,
             workers=1)
    with_start = encode_values(ijk, values, grid_class="fog volume", quality="medium", device="cpu")
    without = encode_values(ijk, values, grid_class="fog volume", quality="medium", device="cpu", start=None)
    assert with_start.streams != without.streams  # the start did change the fit

    import neuralvox

    with neuralvox.open(archive, device="cpu") as opened:
        here = {str(n): {name: grid.values for name, grid in opened.frame(n).items()} for n in opened.frames}
    result = subprocess.run([sys.executable, "-c", DECODE_WITHOUT_STARTS, str(archive)], capture_output=True,
                            text=True, cwd=ROOT, check=True)
    fresh = json.loads(result.stdout)
    assert fresh.keys() == here.keys()
    for number, grids in here.items():
        for name, values in grids.items():
            np.testing.assert_allclose(np.asarray(fresh[number][name], dtype=np.float32), values, rtol=0, atol=0)


def test_dropping_the_finer_candidates_start_keeps_it_from_falling_back_on_mediums(tmp_path: Path) -> None:
    copy = tmp_path / "starts.bin"
    shutil.copyfile(starts.STARTS_FILE, copy)
    subprocess.run([sys.executable, str(ROOT / "train" / "train_starts.py"), "--out", str(copy), "--drop",
                    "low/medium:density"], check=True, capture_output=True, cwd=ROOT)
    _, finer = keyframe_candidates("low")
    medium = quality_preset("medium")
    architecture = architecture_of(medium, 1)
    assert architecture_of(finer, 1) == architecture
    assert find_start("density", architecture, finer.rate_lambda, copy) is None
    shipped_medium = find_start("density", architecture, medium.rate_lambda)
    kept_medium = find_start("density", architecture, medium.rate_lambda, copy)
    assert shipped_medium is not None and kept_medium is not None
    assert kept_medium.key == shipped_medium.key and kept_medium.rates == shipped_medium.rates
    assert all(np.array_equal(kept_medium.parameters[name], values)
               for name, values in shipped_medium.parameters.items())
    for kind in ("temperature", "level set"):
        assert find_start(kind, architecture, finer.rate_lambda, copy).key == \
            find_start(kind, architecture, finer.rate_lambda).key
    provenance = starts.starts_provenance(copy)["low/medium"]
    assert "density" in provenance["untrained"] and provenance["dropped"] == ["density"]


def test_taking_a_start_from_another_file_replaces_that_one_only(tmp_path: Path) -> None:
    """How a start trained elsewhere joins the shipped file (here a low density start without a recorded rate
    weight, as a /2 trainer writes it)."""
    low = quality_preset("low")
    architecture = architecture_of(low, 1)
    other = tmp_path / "other.bin"
    theirs = LearnedStart("density", architecture, {"latent_map.0": np.full((4, 2), 0.5, np.float32)},
                          FitRates(4.0, 2.0))
    starts.save_starts(other, [theirs], {"low": {"kinds": ["density"], "untrained": [], "seconds": 1}})
    copy = tmp_path / "starts.bin"
    shutil.copyfile(starts.STARTS_FILE, copy)
    subprocess.run([sys.executable, str(ROOT / "train" / "train_starts.py"), "--out", str(copy), "--take",
                    str(other), "low:density"], check=True, capture_output=True, cwd=ROOT)
    taken = find_start("density", architecture, low.rate_lambda, copy)
    assert taken is not None and taken.rates == FitRates(4.0, 2.0)
    np.testing.assert_array_equal(taken.parameters["latent_map.0"], theirs.parameters["latent_map.0"])
    shipped = {key: start for key, start in load_starts(starts.STARTS_FILE).items() if key[:2] != ("density",
                                                                                                  architecture)}
    kept = {key: start for key, start in load_starts(copy).items() if key[:2] != ("density", architecture)}
    assert kept.keys() == shipped.keys()
    assert all(kept[key].rates == start.rates for key, start in shipped.items() if start is not None)
    provenance = starts.starts_provenance(copy)
    assert provenance["low"] == {"kinds": ["density"], "untrained": [], "seconds": 1, "taken": ["density"]}
    assert provenance["low/medium"] == starts.starts_provenance(starts.STARTS_FILE)["low/medium"]

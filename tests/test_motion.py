"""Predicted frames: motion lattice and warp, motion guesses, residual coding, closed loop and random access."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import radial_blob

import neuralvox
from neuralvox.cli import main
from neuralvox.codec import decoder as decoder_module
from neuralvox.codec.encoder import coherent_aim, compress
from neuralvox.codec.groups import AutoGroup
from neuralvox.codec.header import FrameEntry, FrameStats, GridEntry, payload_key
from neuralvox.codec.lattice_choice import rate_distortion_cost
from neuralvox.codec.motion_guess import block_matching_guess, centred_velocity, velocity_guess
from neuralvox.codec.presets import quality_preset
from neuralvox.codec.values import decode_state, decode_values, encode_values
from neuralvox.grid import SparseGrid
from neuralvox.metrics import ErrorStats, error_stats
from neuralvox.model.motion import compensate_voxels, motion_lattice, sample_lattice, warp_latents
from neuralvox.vdb import read_vdb, write_vdb

pytestmark = pytest.mark.slow  # fits the neural base over sequences of frames


def full_lattice(n: int) -> torch.Tensor:
    return torch.stack(torch.meshgrid(*[torch.arange(n)] * 3, indexing="ij"), dim=-1).reshape(-1, 3)


def test_motion_lattice_covers_one_cell_around_the_reference() -> None:
    coords = motion_lattice(torch.tensor([[40, 40, 40]]), 16)
    got = {tuple(c) for c in coords.tolist()}
    # cell (2, 2, 2) grown by one cell each side, plus upper corners: lattice coordinates 1..4 on each axis
    assert got == {(a, b, c) for a in range(1, 5) for b in range(1, 5) for c in range(1, 5)}
    assert torch.equal(coords, torch.unique(coords, dim=0))


def test_sample_lattice_is_exact_on_linear_fields_and_renormalizes_at_holes() -> None:
    coords = full_lattice(4)
    values = (coords.to(torch.float32) @ torch.tensor([1.0, -2.0, 0.5])).unsqueeze(1)
    points = torch.tensor([[0.5, 1.25, 2.75], [2.0, 0.0, 1.5]])
    want = points @ torch.tensor([1.0, -2.0, 0.5])
    assert torch.allclose(sample_lattice(coords, values, points)[:, 0], want, atol=1e-6)
    # a single allocated point: any position touching it reads its value; far away reads zero
    single = sample_lattice(torch.tensor([[1, 1, 1]]), torch.tensor([[3.0]]), torch.tensor([[0.3, 0.9, 0.6],
                                                                                          [5.0, 5.0, 5.0]]))
    assert single[:, 0].tolist() == [3.0, 0.0]


def test_warp_with_integer_motion_shifts_latents_exactly() -> None:
    previous = full_lattice(8)
    latents = torch.randn(len(previous), 2)
    coords = previous[(previous[:, 0] >= 1)]
    motion_coords = motion_lattice(previous * 2, 16)
    motion = torch.tensor([2.0, 0.0, 0.0]).repeat(len(motion_coords), 1)  # two voxels = one stride-2 point along i
    warped = warp_latents(previous, latents, 2, coords, motion_coords, motion, 16)
    rows = (coords[:, 0] - 1) * 64 + coords[:, 1] * 8 + coords[:, 2]
    assert torch.allclose(warped, latents[rows], atol=1e-6)


def test_compensated_voxels_move_by_whole_voxels_on_every_machine() -> None:
    ijk = np.array([[0, 0, 0], [5, 6, 7], [31, 2, 9]], dtype=np.int32)
    coords = motion_lattice(torch.from_numpy(ijk), 16).numpy()
    motion = np.tile([1.25, -2.0, 0.5], (len(coords), 1))  # rounds to (1, -2, 0): half-way rounds to even
    moved = compensate_voxels(ijk, coords, motion, 16)
    assert moved.tolist() == sorted((ijk + [1, -2, 0]).tolist())
    assert moved.dtype == np.int32


def test_block_matching_finds_a_translation() -> None:
    previous, current = radial_blob(0.0), radial_blob(4.0)
    guess = block_matching_guess(previous, current, 16)(np.array([[16, 16, 16], [16, 8, 24], [24, 24, 24]]))
    assert np.allclose(guess, [[4.0, 0.0, 0.0]] * 3)  # a lattice point off the blob reads the motion near it


def test_velocity_guess_finds_the_unknown_scale() -> None:
    previous, current = radial_blob(0.0), radial_blob(3.0)
    transform = np.diag([0.1, 0.1, 0.1, 1.0])
    # 2 world units per second, one frame = 0.15 s would be 3 voxels: neither is in the files
    velocity = SparseGrid(name="vel", ijk=current[0], values=np.tile(np.float32([[2, 0, 0]]), (len(current[0]), 1)),
                          value_type="vec3s", transform=transform)
    guess = velocity_guess(velocity, transform, previous, current, 16)(np.array([[16, 16, 16]]))
    assert guess[0, 0] == pytest.approx(3.0, rel=0.2) and abs(guess[0, 1]) < 1e-6


def test_staggered_velocity_is_averaged_to_voxel_centres() -> None:
    ijk = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.int32)
    faces = ijk.astype(np.float32)  # component a equals the face coordinate along a: centre = i + 1/2
    grid = SparseGrid(name="vel", ijk=ijk, values=faces, value_type="vec3s", vector_type="staggered")
    _, centred = centred_velocity(grid)
    inner = np.all(ijk < 2, axis=1)
    assert np.allclose(centred[inner], ijk[inner] + 0.5)
    assert np.allclose(centred[~inner][ijk[~inner] == 2], 2.0)  # no upper face: the lower one is kept


@pytest.fixture(scope="module")
def keyframe():
    ijk, values = radial_blob(0.0)
    return encode_values(ijk, values, grid_class="fog volume", quality="low", device="cpu")


def test_predicted_frame_costs_less_than_coding_it_again(keyframe) -> None:
    ijk, values = radial_blob(2.0)
    # both at low's rate weight (a predicted frame's own is larger), so that only the prediction differs
    low = dataclasses.replace(quality_preset("low"), predicted_rate_scale=1.0)
    cold = encode_values(ijk, values, grid_class="fog volume", quality=low, device="cpu",
                         shared_decoder=keyframe.decoder)
    predicted = encode_values(ijk, values, grid_class="fog volume", quality=low, device="cpu",
                              shared_decoder=keyframe.decoder, reference=keyframe.state,
                              motion_guess=lambda points: np.tile([2.0, 0.0, 0.0], (len(points), 1)))
    assert set(predicted.streams) == {"motion", "residual"}
    assert sum(map(len, predicted.streams.values())) < 0.8 * sum(map(len, cold.streams.values()))
    # and it pays in rate-distortion terms, what the fit minimizes
    assert rate_distortion_cost(predicted, low.rate_lambda) < rate_distortion_cost(cold, low.rate_lambda)
    decoded = decode_values(ijk, predicted.header, predicted.streams, device="cpu", shared_decoder=keyframe.decoder,
                            reference=keyframe.state)
    assert np.array_equal(decoded, predicted.decoded)
    with pytest.raises(ValueError, match="predicted from the previous one"):
        decode_state(ijk, predicted.header, predicted.streams)


GROUP = 20


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    """A 20-frame sequence of a drifting, slowly changing blob (with a velocity grid) coded as one group."""
    folder = tmp_path_factory.mktemp("drift")
    transform = np.diag([0.1, 0.1, 0.1, 1.0])
    for t in range(GROUP):
        ijk, values = radial_blob(0.5 * t, size=28, radius=5.0 + 0.05 * t)
        velocity = np.tile([[0.5, 0.0, 0.0]], (len(ijk), 1)).astype(np.float32)
        write_vdb(folder / f"drift.{t + 1:04d}.vdb", [
            SparseGrid(name="density", ijk=ijk, values=values, grid_class="fog volume", transform=transform),
            SparseGrid(name="vel", ijk=ijk, values=velocity, value_type="vec3s", transform=transform)])
    out = tmp_path_factory.mktemp("drift_nvox") / "drift.nvox"
    report = compress([str(folder)], out, grids=["density"], quality="low", base_only=True, device="cpu", gop=GROUP,
                      progress=False)
    return folder, out, report


def test_closed_loop_group_decodes_without_drift(group) -> None:
    folder, out, report = group
    with neuralvox.open(out, device="cpu") as nvox:
        entries = nvox.header.frames
        assert [e.key for e in entries] == [True] + [False] * (GROUP - 1)
        assert all(e.grids["density"].latents_from == e.number - 1 for e in entries[1:])
        assert all(e.grids["density"].stats is None for e in entries)  # held while compressing, not stored
        psnr = []
        for entry, recorded in zip(entries, report.frame_errors["density"], strict=True):
            source = read_vdb(folder / f"drift.{entry.number:04d}.vdb").grids["density"].sorted()
            decoded = nvox.frame(entry.number)["density"]
            assert np.array_equal(decoded.ijk, source.ijk)
            stats = error_stats(source.values, decoded.values, peak=float(np.ptp(source.values)))
            # the decoder reproduces what the encoder measured, frame after frame: nothing drifts
            assert stats.max_abs_error == pytest.approx(recorded.max_abs_error, rel=1e-6, abs=1e-7)
            psnr.append(stats.psnr)
    assert min(psnr[-5:]) > min(psnr[:5]) - 1.5, psnr


def test_random_access_decodes_latents_only_and_equals_sequential(group, monkeypatch) -> None:
    _, out, _ = group
    with neuralvox.open(out, device="cpu") as nvox:
        sequential = {n: nvox.frame(n)["density"].values for n in nvox.frames}
    calls = []
    original = decoder_module.decode_values
    monkeypatch.setattr(decoder_module, "decode_values", lambda ijk, *a, **k: calls.append(len(ijk)) or
                        original(ijk, *a, **k))
    with neuralvox.open(out, device="cpu") as nvox:
        values = nvox.frame(GROUP - 1)["density"].values
    assert np.array_equal(values, sequential[GROUP - 1])
    assert len(calls) == 1  # one frame's voxels decoded; the 18 frames before it only through their latents


def test_predicted_frames_cost_less_than_keyframes(group) -> None:
    _, out, report = group
    with neuralvox.open(out, device="cpu") as nvox:
        sizes = [{stream: nvox.reader.nbytes(payload_key(e.number, "density", stream)) for stream in
                  e.grids["density"].streams} for e in nvox.header.frames]
    key = sizes[0]["latents"] + sizes[0]["weights"]
    assert all(s["motion"] + s["residual"] < 0.5 * key for s in sizes[1:])
    assert report.grids[0].stream_bytes["motion"] > 0


def test_gop_option_is_checked(group, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, _, _ = group
    assert main(["compress", str(folder), "-o", str(tmp_path / "x.nvox"), "--gop", "often", "--quiet"]) == 2
    assert "--gop must be 'auto' or a number of frames" in capsys.readouterr().err
    assert main(["compress", str(folder), "-o", str(tmp_path / "x.nvox"), "--coherence", "1", "--quiet"]) == 2
    assert "--coherence must be at least 0 and below 1, got 1.0" in capsys.readouterr().err
    assert not (tmp_path / "x.nvox").exists()


def test_coherent_aim_carries_the_previous_error_where_both_frames_have_voxels() -> None:
    previous = (np.array([[0, 0, 0], [0, 0, 1], [0, 0, 2]], np.int32), np.array([1.0, 2.0, 3.0], np.float32),
                np.array([1.5, 1.0, 3.0], np.float32))
    grid = SparseGrid(name="density", ijk=np.array([[0, 0, 1], [0, 0, 2], [0, 0, 3]], np.int32),
                      values=np.array([5.0, 6.0, 7.0], np.float32))
    assert coherent_aim(grid, previous, 0.5).tolist() == [4.5, 6.0, 7.0]  # (0,0,1) was decoded 1.0 too low
    moved = SparseGrid(name="density", ijk=grid.ijk + 10, values=grid.values)
    assert coherent_aim(moved, previous, 0.5) is None


def test_coherence_makes_errors_persist(group, tmp_path: Path) -> None:
    folder, _, plain = group
    coherent = compress([str(folder)], tmp_path / "coherent.nvox", grids=["density"], quality="low", base_only=True,
                        device="cpu", gop=GROUP, coherence=0.8, progress=False)
    assert coherent.grids[0].flicker < 0.8 * plain.grids[0].flicker, (coherent.grids[0], plain.grids[0])
    with neuralvox.open(tmp_path / "coherent.nvox", device="cpu") as nvox:
        assert nvox.info().summary.codec.coherence == 0.8


def _entry(key: bool, voxels: int, coded: int, psnr: float) -> FrameEntry:
    stats = FrameStats(ErrorStats(0.0, 0.0, psnr, 1.0, voxels), {"topology": 99, "residual": coded}, 0.0)
    grid = GridEntry("float", "fog volume", (), 0.0, False, None, {}, {}, voxels, None, None, None, (), None, stats)
    return FrameEntry(1, "f.vdb", key, {}, {}, {"density": grid})


@pytest.mark.parametrize(("voxels", "coded", "psnr", "ends"), [
    (1000, 400, 30.0, False),   # cheaper than the keyframe, as good, same size: the group goes on
    (1000, 1000, 30.0, True),   # as many bits per voxel as the keyframe: prediction stopped paying
    (1000, 400, 28.5, True),    # more than 1 dB worse: the keyframe's decoder no longer fits
    (1600, 400, 30.0, True),    # grown past 1.5x the keyframe's voxels
])
def test_auto_group_ends_when_prediction_stops_paying(voxels: int, coded: int, psnr: float, ends: bool) -> None:
    group = AutoGroup()
    assert not group.ends_after(_entry(True, 1000, 1000, 30.0))
    assert group.ends_after(_entry(False, voxels, coded, psnr)) is ends

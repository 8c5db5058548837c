"""On a CUDA device: the fused Warp kernel against torch, a CPU-encoded archive decoded on the GPU within its bound,
and the integer streams of a fit identical whichever device decodes them. Skipped where there is no CUDA device
(``benchmarks/gpu_check.sh`` runs them on a GPU machine)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from neuralvox.codec.decoder import open_archive
from neuralvox.codec.encoder import compress
from neuralvox.codec.presets import quality_preset
from neuralvox.codec.values import decode_state, decode_values, encode_values
from neuralvox.grid import SparseGrid
from neuralvox.sim.turbulence import turbulent_frame

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

FAST = dict(iterations=60, finetune_iterations=10)


def _host(array: object) -> np.ndarray:
    return torch.as_tensor(array).detach().cpu().numpy().astype(np.float32)


@pytest.fixture(scope="module")
def smoke() -> SparseGrid:
    return turbulent_frame(30_000, seed=4).sorted()


@pytest.fixture(scope="module")
def fitted(smoke: SparseGrid):
    quality = dataclasses.replace(quality_preset("low"), **FAST)
    return encode_values(smoke.ijk, smoke.values, grid_class="fog volume", quality=quality, device="cpu")


def test_fused_kernel_on_cuda_equals_torch_on_cuda_and_cpu(smoke: SparseGrid, fitted) -> None:
    on_cpu = decode_values(smoke.ijk, fitted.header, fitted.streams, device="cpu", backend="torch")
    torch_cuda = decode_values(smoke.ijk, fitted.header, fitted.streams, device="cuda", backend="torch")
    warp_cuda = decode_values(smoke.ijk, fitted.header, fitted.streams, device="cuda", backend="warp")
    scale = float(np.abs(on_cpu).max())
    assert np.abs(warp_cuda - torch_cuda).max() <= 1e-5 * scale
    assert np.abs(torch_cuda - on_cpu).max() <= 1e-4 * scale  # float32 sums in another order


def test_integer_streams_decode_identically_on_cuda(smoke: SparseGrid, fitted) -> None:
    on_cpu = decode_state(smoke.ijk, fitted.header, fitted.streams, device="cpu")
    on_cuda = decode_state(smoke.ijk, fitted.header, fitted.streams, device="cuda")
    assert len(on_cpu.latents) == len(on_cuda.latents) > 0
    for a, b, step_a, step_b in zip(on_cpu.latents, on_cuda.latents, on_cpu.steps, on_cuda.steps, strict=True):
        integers_a = np.rint(_host(a) / _host(step_a))
        integers_b = np.rint(_host(b) / _host(step_b))
        assert np.array_equal(integers_a, integers_b)
        assert np.array_equal(_host(a), _host(b))  # the dequantized latents too, bit for bit


def test_cpu_encoded_archive_decodes_on_cuda_within_its_bound(smoke: SparseGrid, tmp_path: Path) -> None:
    from neuralvox.vdb import binding_available, write_vdb

    if not binding_available():
        pytest.skip("the OpenVDB binding is not built on this machine")
    source = tmp_path / "smoke.0001.vdb"
    write_vdb(source, [smoke])
    archive = tmp_path / "smoke.nvox"
    compress([source], archive, max_error=1e-3, device="cpu", workers=1, progress=False)
    with open_archive(archive, device="cuda") as opened:
        decoded = opened.frame(opened.frames[0])["density"]
    assert np.array_equal(decoded.ijk, smoke.ijk)
    assert np.abs(decoded.values - smoke.values).max() <= 1e-3


def test_cuda_fit_reads_the_host_once_per_window_and_decodes_on_cpu(smoke: SparseGrid, monkeypatch) -> None:
    """The whole training state stays on the device: synchronizing calls inside the training loop are the
    convergence test's one loss read per window (plus a few for setting up the optimizer)."""
    import warnings

    from neuralvox.codec import fit as fit_module

    counted: list[tuple[int, int, int]] = []  # (iterations, synchronizing calls, window) per training phase
    train = fit_module._train

    def counting_train(*args, **kwargs):
        schedule = args[5]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                iterations = train(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = sum("synchronizing" in str(w.message) for w in caught)
        counted.append((iterations, syncs, schedule.window))
        return iterations

    monkeypatch.setattr(fit_module, "_train", counting_train)
    encoded = encode_values(smoke.ijk, smoke.values, grid_class="fog volume", quality="low", device="cuda")
    assert counted and all(syncs <= iterations // window + 4 for iterations, syncs, window in counted)
    on_cpu = decode_values(smoke.ijk, encoded.header, encoded.streams, device="cpu", backend="torch")
    assert np.abs(on_cpu - encoded.decoded).max() <= 1e-4 * float(np.abs(on_cpu).max())

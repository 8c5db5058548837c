"""Fitting the neural context model to a grid's sample frames: float training, int16 weights, the bytes it saves."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from neuralvox.codec.arm import FEATURES, FRACTION_BITS, MU_STEPS, SCALES, ZERO_LEVELS, ArmWeights, Layer
from neuralvox.codec.bounded import TrainingPass
from neuralvox.codec.context_coder import MAX_CODE

if TYPE_CHECKING:  # chunked codes a coarse layer with ``layer_model``
    from neuralvox.codec.chunked import SamplePiece

# hidden widths tried, from this many voxels in the sequence (measured: 8 pays from about 20k voxels; 16 saves
# 1.5-3% more than 8 at 200k)
HIDDEN_WIDTHS = ((8, 16_000), (16, 150_000))
GENERALIZATION = 0.75
ITERATIONS = 300
TRAINING_VOXELS = 1 << 16  # the fit looks at most at this many voxels (a fixed-seed sample)
LEARNING_RATE = 1e-2
_WEIGHT_MAX = 2047  # 12-bit weights: measured as good as 16-bit
_BIAS_MAX = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class ContextFit:
    """A fitted context model and what it measured on the samples: coded bytes with it and with the counting model
    (of a sample cut to a piece, the piece's bytes over its share of the grid's voxels)."""

    weights: ArmWeights
    neural_bytes: float
    counting_bytes: float
    samples: int

    @property
    def weight_bytes(self) -> int:
        return len(self.weights.to_bytes())

    def net_saving(self, frames: int) -> float:
        """Bytes the model is expected to save over ``frames`` frames, its own size paid: the samples' saving per
        frame, times ``GENERALIZATION`` because the samples are what it was trained on (measured: over the whole
        reference sequences the saving is 0.73-0.95 of the samples')."""
        per_frame = (self.counting_bytes - self.neural_bytes) / max(self.samples, 1)
        return per_frame * frames * GENERALIZATION - self.weight_bytes


def fit_context(samples: Sequence[SamplePiece], bound: float, frames: int, *, iterations: int = ITERATIONS,
                seed: int = 0) -> ContextFit | None:
    """The context model that saves the most over a sequence of ``frames`` frames, trained on the codes the bounded
    codec gives ``samples`` at ``bound``; None where none saves more than its size."""
    features, codes, counting_bytes = training_codes(samples, bound, seed)
    if len(codes) == 0:
        return None
    sequence_voxels = len(codes) / len(samples) * frames
    best = None
    for hidden in (width for width, least in HIDDEN_WIDTHS if sequence_voxels >= least):
        weights = train_context(features, codes, hidden, iterations, seed)
        neural_bytes = sum(len(p.encode(bound, weights).stream) / p.share for p in samples)
        fit = ContextFit(weights, neural_bytes, counting_bytes, len(samples))
        if fit.net_saving(frames) > 0 and (best is None or fit.net_saving(frames) > best.net_saving(frames)):
            best = fit
    return best


def training_codes(samples: Sequence[SamplePiece], bound: float, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, float]:
    """The context features and codes of ``samples`` coded at ``bound`` (escapes left out, at most
    ``TRAINING_VOXELS``, a fixed-seed sample), and the bytes the counting model takes for them."""
    record: list[TrainingPass] = []
    counting_bytes = sum(len(p.encode(bound, record=record).stream) / p.share for p in samples)
    return *recorded_rows(record, seed), counting_bytes


def recorded_rows(record: list[TrainingPass], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The features and codes of the recorded passes (escapes left out, at most ``TRAINING_VOXELS``, a fixed-seed
    sample)."""
    codes = np.concatenate([p.codes for p in record]) if record else np.zeros(0, np.int64)
    kept = np.flatnonzero(np.abs(codes) <= MAX_CODE)
    if len(kept) > TRAINING_VOXELS:
        kept = kept[np.sort(np.random.default_rng(seed).choice(len(kept), TRAINING_VOXELS, replace=False))]
    return _feature_rows(record, kept), codes[kept]


def layer_model(record: list[TrainingPass], seed: int = 0) -> ArmWeights | None:
    """A context model of one coding's own recorded passes (a chunked grid's coarse layer), of the widest
    ``HIDDEN_WIDTHS`` its voxels allow; None below the least. One width only: the fit runs once a grid, in the main
    process."""
    voxels = sum(len(p.codes) for p in record)
    widths = [width for width, least in HIDDEN_WIDTHS if voxels >= least]
    if not widths:
        return None
    features, codes = recorded_rows(record, seed)
    return train_context(features, codes, widths[-1], seed=seed)


def _feature_rows(record: list[TrainingPass], rows: np.ndarray) -> np.ndarray:
    """The features at ``rows`` (ascending) of the passes' features laid end to end, without laying them end to end
    (a chunk's record is ~120 bytes a voxel: one copy of it is enough)."""
    out = np.zeros((len(rows), FEATURES), record[0].features.dtype if record else np.int64)
    start = 0
    for training in record:
        low, high = np.searchsorted(rows, (start, start + len(training.codes)))
        out[low:high] = training.features[rows[low:high] - start]
        start += len(training.codes)
    return out


def train_context(features: np.ndarray, codes: np.ndarray, hidden: int, iterations: int = ITERATIONS,
                  seed: int = 0) -> ArmWeights:
    """The integer context model of ``hidden`` units per layer, trained on ``codes`` given ``features``."""
    with _deterministic(seed):
        layers = _train(features.astype(np.float32), codes.astype(np.float32), hidden, iterations)
    return _quantize(layers)


@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """One thread and a fixed seed, so the same input trains the same weights."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)


def code_bits(out: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Bits of each code under the lattice's law at the network's continuous outputs (mean in quarters, scale
    index, zero level): a Laplace law of that mean and scale, with extra mass ``1 - 2**-level`` at zero."""
    mu = out[:, 0].clamp(-MU_STEPS, MU_STEPS) / 4
    scale = torch.exp2(out[:, 1].clamp(0, SCALES - 1) / 2 - 4)
    zero = torch.exp2(-out[:, 2].clamp(0, ZERO_LEVELS - 1))  # the Laplace part's weight

    def cdf(x: torch.Tensor) -> torch.Tensor:
        z = (x - mu) / scale
        return torch.where(z < 0, 0.5 * torch.exp(z.clamp(max=0)), 1 - 0.5 * torch.exp(-z.clamp(min=0)))

    laplace = cdf(codes + 0.5) - cdf(codes - 0.5)
    p = zero * laplace + torch.where(codes == 0, 1 - zero, torch.zeros_like(zero))
    return -torch.log2(p.clamp(min=1e-12))


def _train(features: np.ndarray, codes: np.ndarray, hidden: int, iterations: int
           ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Float weights and biases of the MLP, inputs normalized inside the first layer."""
    x = torch.from_numpy(features)
    q = torch.from_numpy(codes)
    mean, std = x.mean(0), x.std(0).clamp(min=1.0)  # binary features stay unscaled
    net = torch.nn.Sequential(torch.nn.Linear(FEATURES, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                              torch.nn.ReLU(), torch.nn.Linear(hidden, 3))
    with torch.no_grad():
        net[-1].bias.copy_(torch.tensor([0.0, 8.0, 1.0]))
    optimizer = torch.optim.Adam(net.parameters(), LEARNING_RATE)
    normalized = (x - mean) / std
    for _ in range(iterations):
        optimizer.zero_grad()
        loss = code_bits(net(normalized), q).mean()
        loss.backward()
        optimizer.step()
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    first_w = linear[0].weight.detach().T / std[:, None]
    first_b = linear[0].bias.detach() - (mean / std) @ linear[0].weight.detach().T
    layers = [(first_w.numpy().astype(np.float64), first_b.numpy().astype(np.float64))]
    layers += [(m.weight.detach().T.numpy().astype(np.float64), m.bias.detach().numpy().astype(np.float64))
               for m in linear[1:]]
    return layers


def _quantize(layers: list[tuple[np.ndarray, np.ndarray]]) -> ArmWeights:
    """int16 weights with a power-of-two scale per layer; biases at the scale of the layer's accumulator."""
    out, input_scale = [], 0
    for weight, bias in layers:
        largest = float(np.abs(weight).max())
        exponent = math.floor(math.log2(_WEIGHT_MAX / largest)) if largest > 0 else 0
        largest_bias = float(np.abs(bias).max()) * 2.0**input_scale
        if largest_bias > 0:  # the bias must fit int32 at the accumulator's scale
            exponent = min(exponent, math.floor(math.log2(_BIAS_MAX / largest_bias)))
        exponent = int(np.clip(exponent, -16, 30))
        quantized = np.clip(np.rint(weight * 2.0**exponent), -_WEIGHT_MAX, _WEIGHT_MAX).astype(np.int16)
        scaled_bias = np.clip(np.rint(bias * 2.0 ** (input_scale + exponent)), -_BIAS_MAX, _BIAS_MAX)
        out.append(Layer(quantized, scaled_bias.astype(np.int32), exponent))
        input_scale = FRACTION_BITS
    return ArmWeights(tuple(out))

"""Latent codecs of the neural base: each stream's compress/decompress pair over an entropy model.

- latents (a keyframe) and residual (a predicted frame, over its prediction): per level the float16 step of each
  channel, then the integers column by column, a level's channels one group (``neuralvox-values/2`` codes them
  with ``SHORTEST``: a mode byte, then a law per column or per level; ``/1`` with ``LAPLACE``, one per column);
- motion: a predicted frame's motion integers, one column per axis;
- weights: the decoder MLP's float16 per-tensor steps, then its integers (``neuralvox.codec.weights``).
"""

from __future__ import annotations

import numpy as np

from neuralvox.codec.entropy import EntropyStreamError
from neuralvox.codec.entropy_models import LAPLACE, SHORTEST, EntropyModel
from neuralvox.codec.header import NEURAL_FORMATS, Architecture, NeuralValueHeader
from neuralvox.codec.weights import QuantizedDecoder
from neuralvox.model.decoder import DecoderMLP

_LATENT_MODELS = dict(zip(NEURAL_FORMATS, (LAPLACE, SHORTEST), strict=True))


def latent_model(header: NeuralValueHeader) -> EntropyModel:
    """The entropy model of a value header's latents (or residual) stream."""
    return _LATENT_MODELS[header.format]


def compress_latents(latents: list[np.ndarray], steps: list[np.ndarray], model: EntropyModel = LAPLACE) -> bytes:
    """The latents (or residual) stream of integer latents (M_l, C_l) per level and their per-channel steps."""
    head = np.concatenate(steps).astype("<f2").tobytes()
    groups = [index for index, level in enumerate(latents) for _ in range(level.shape[1])]
    return head + model.compress([level[:, c] for level in latents for c in range(level.shape[1])], groups)


def decompress_latents(data: bytes, point_counts: list[int], channels: list[int],
                       model: EntropyModel = LAPLACE) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Integer latents (M_l, C_l) int32 per level and their float16 steps, given each level's lattice points."""
    head = 2 * sum(channels)
    if len(data) < head:
        raise EntropyStreamError(f"latents stream: {len(data)} bytes cannot hold {sum(channels)} channel steps")
    flat_steps = np.frombuffer(data[:head], dtype="<f2")
    bounds = np.cumsum([0, *channels])
    steps = [flat_steps[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    lengths = [count for count, c in zip(point_counts, channels, strict=True) for _ in range(c)]
    groups = [index for index, c in enumerate(channels) for _ in range(c)]
    columns = iter(model.decompress(data[head:], lengths, name="latents stream", groups=groups))
    latents = [np.stack([next(columns) for _ in range(c)], axis=1) for c in channels]
    return latents, steps


def compress_motion(motion: np.ndarray, model: EntropyModel = LAPLACE) -> bytes:
    """The motion stream of integer motion (M, 3)."""
    return model.compress(list(np.asarray(motion).T))


def decompress_motion(data: bytes, points: int, model: EntropyModel = LAPLACE) -> np.ndarray:
    """Integer motion (points, 3)."""
    return np.stack(model.decompress(data, [points] * 3, name="motion stream"), axis=1)


def compress_weights(quantized: QuantizedDecoder, model: EntropyModel = LAPLACE) -> bytes:
    """The weights stream: float16 steps, then the integers of every tensor."""
    return np.asarray(quantized.steps, dtype="<f2").tobytes() + model.compress(quantized.integers)


def decompress_weights(data: bytes, decoder: DecoderMLP, architecture: Architecture,
                       model: EntropyModel = LAPLACE) -> QuantizedDecoder:
    """The weights of a decoder shaped like ``decoder``."""
    sizes = [parameter.numel() for parameter in decoder.state_dict().values()]
    head = 2 * len(sizes)
    if len(data) < head:
        raise EntropyStreamError(f"weights stream: {len(data)} bytes cannot hold {len(sizes)} tensor steps")
    steps = [float(s) for s in np.frombuffer(data[:head], dtype="<f2")]
    return QuantizedDecoder(architecture, steps, model.decompress(data[head:], sizes, name="weights stream"))

"""Latent codecs of the neural base: each stream's compress/decompress pair over an entropy model.

- latents (a keyframe) and residual (a predicted frame, over its prediction): per level the float16 step of each
  channel, then the integers column by column, a level's channels one group;
- motion: a predicted frame's motion integers, one column per axis, the three axes one group;
- weights: the decoder MLP's float16 per-tensor steps, then its integers (``neuralvox.codec.weights``), one column
  and one group per tensor.

The value format names each stream's entropy model (``StreamModels``): ``neuralvox-values/3`` codes all three with
``SHORTEST`` (a mode byte, then a law per column or per group), ``/2`` the latents only (motion and weights with
``LAPLACE``, one law per column), ``/1`` none.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from neuralvox.codec.entropy import EntropyStreamError
from neuralvox.codec.entropy_models import LAPLACE, SHORTEST, EntropyModel
from neuralvox.codec.header import NEURAL_FORMAT, NEURAL_FORMATS, Architecture, NeuralValueHeader
from neuralvox.codec.weights import QuantizedDecoder
from neuralvox.model.decoder import DecoderMLP


@dataclasses.dataclass(frozen=True)
class StreamModels:
    """The entropy model of each stream of one value format."""

    latents: EntropyModel  # and the residual
    motion: EntropyModel
    weights: EntropyModel


_FORMAT_MODELS = dict(zip(NEURAL_FORMATS, (StreamModels(LAPLACE, LAPLACE, LAPLACE),
                                           StreamModels(SHORTEST, LAPLACE, LAPLACE),
                                           StreamModels(SHORTEST, SHORTEST, SHORTEST)), strict=True))
WRITTEN = _FORMAT_MODELS[NEURAL_FORMAT]  # the models of the format new archives are written in


def stream_models(header: NeuralValueHeader) -> StreamModels:
    """The entropy models of a value header's streams."""
    return _FORMAT_MODELS[header.format]


def compress_latents(latents: list[np.ndarray], steps: list[np.ndarray], model: EntropyModel) -> bytes:
    """The latents (or residual) stream of integer latents (M_l, C_l) per level and their per-channel steps."""
    head = np.concatenate(steps).astype("<f2").tobytes()
    groups = [index for index, level in enumerate(latents) for _ in range(level.shape[1])]
    return head + model.compress([level[:, c] for level in latents for c in range(level.shape[1])], groups)


def decompress_latents(data: bytes, point_counts: list[int], channels: list[int],
                       model: EntropyModel) -> tuple[list[np.ndarray], list[np.ndarray]]:
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


def compress_motion(motion: np.ndarray, model: EntropyModel) -> bytes:
    """The motion stream of integer motion (M, 3)."""
    return model.compress(list(np.asarray(motion).T), _MOTION_GROUPS)


def decompress_motion(data: bytes, points: int, model: EntropyModel) -> np.ndarray:
    """Integer motion (points, 3)."""
    return np.stack(model.decompress(data, [points] * 3, name="motion stream", groups=_MOTION_GROUPS), axis=1)


_MOTION_GROUPS = [0, 0, 0]


def compress_weights(quantized: QuantizedDecoder, model: EntropyModel) -> bytes:
    """The weights stream: float16 steps, then the integers of every tensor."""
    return np.asarray(quantized.steps, dtype="<f2").tobytes() + model.compress(quantized.integers)


def decompress_weights(data: bytes, decoder: DecoderMLP, architecture: Architecture,
                       model: EntropyModel) -> QuantizedDecoder:
    """The weights of a decoder shaped like ``decoder``."""
    sizes = [parameter.numel() for parameter in decoder.state_dict().values()]
    head = 2 * len(sizes)
    if len(data) < head:
        raise EntropyStreamError(f"weights stream: {len(data)} bytes cannot hold {len(sizes)} tensor steps")
    steps = [float(s) for s in np.frombuffer(data[:head], dtype="<f2")]
    return QuantizedDecoder(architecture, steps, model.decompress(data[head:], sizes, name="weights stream"))

"""Decoder weight quantization: integers times a per-tensor float16 step (the stream: ``latent_codecs``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from neuralvox.codec.header import Architecture
from neuralvox.model.decoder import DecoderMLP


@dataclasses.dataclass
class QuantizedDecoder:
    """Decoder MLP weights as integers times a per-tensor step, tensors in ``state_dict`` order.

    Pass one to ``encode_values(shared_decoder=...)`` to reuse a decoder across frames; ``architecture`` says which
    MLP it fits (checked on use).
    """

    architecture: Architecture
    steps: list[float]
    integers: list[np.ndarray]

    def tensors(self) -> list[np.ndarray]:
        """The dequantized float32 tensors, flat, in ``state_dict`` order."""
        return [(q.astype(np.float32) * np.float32(s)) for q, s in zip(self.integers, self.steps, strict=True)]

    def load_into(self, decoder: DecoderMLP) -> None:
        """Copy the dequantized weights into ``decoder`` (whose shapes must match)."""
        with torch.no_grad():
            for parameter, values in zip(decoder.state_dict().values(), self.tensors(), strict=True):
                parameter.copy_(torch.from_numpy(values.reshape(tuple(parameter.shape))))


def quantize_decoder(decoder: DecoderMLP, step_fraction: float, architecture: Architecture) -> QuantizedDecoder:
    """Quantize each tensor of ``decoder`` with step ``step_fraction * max|w|`` (rounded to float16)."""
    steps, integers = [], []
    for parameter in decoder.state_dict().values():
        values = parameter.detach().cpu().numpy().astype(np.float32).ravel()
        step = float(np.float16(step_fraction * float(np.abs(values).max(initial=0.0))))
        steps.append(step)
        integers.append(np.rint(values / np.float32(step)).astype(np.int32) if step > 0 else
                        np.zeros(values.size, dtype=np.int32))
    return QuantizedDecoder(architecture, steps, integers)

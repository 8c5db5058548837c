"""Latents coded under their context model (``neuralvox-values/2``): the model's integer layers, and the latents
range-coded half-level by half-level on the bounded codec's law lattice (``neuralvox.codec.arm``).

The decoder computes each half's features from the integers decoded so far (``level_features``: integer
torch operations, the same on any device) and each row's law with the integer MLP on the host, so encoder and decoder
pick the same tables everywhere; a whole half is decoded at once. A latent beyond its law's support is sent as the
escape symbol and its value in a separate column coded before the range stream.
"""

from __future__ import annotations

import struct

import numpy as np
import torch

from neuralvox.codec.arm import FRACTION_BITS, ArmWeights, CodeDecoder, Layer, encode_codes, supports
from neuralvox.codec.arm_fit import quantize_layers
from neuralvox.codec.context_coder import ContextStreamError
from neuralvox.codec.entropy import decode_integer_arrays, encode_integer_arrays
from neuralvox.model.latent_context import LatentContextModel, LevelContext, level_features

_HEAD = struct.Struct("<III")  # escaped latents, bytes of their column, bytes of the range stream
MAX_ESCAPE = 1 << 24
WEIGHT_MAX = 255  # 9-bit weights (the bounded codec's 12 bits cost more than they save here)


def quantize_context(model: LatentContextModel) -> tuple[ArmWeights, ...]:
    """The integer layers of each level's MLP."""
    return tuple(quantize_layers([(w.cpu().numpy().astype(np.float64), b.cpu().numpy().astype(np.float64))
                                  for w, b in level], WEIGHT_MAX) for level in model.layers())


def dequantized(weights: tuple[ArmWeights, ...]) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Float (weight, bias) pairs computing what the integer layers compute (up to their roundings)."""
    out = []
    for level in weights:
        layers, input_bits = [], 0
        for layer in level.layers:
            weight = torch.from_numpy(layer.weight.astype(np.float64) * 2.0**-layer.exponent).float()
            bias = torch.from_numpy(layer.bias.astype(np.float64) * 2.0 ** -(input_bits + layer.exponent)).float()
            layers.append((weight, bias))
            input_bits = FRACTION_BITS
        out.append(layers)
    return out


def context_to_bytes(weights: tuple[ArmWeights, ...]) -> bytes:
    """Each level's layers: their exponents (int8) and biases (int32), then every weight integer, range coded."""
    layers = [layer for level in weights for layer in level.layers]
    exponents = np.array([layer.exponent for layer in layers], np.int8).tobytes()
    biases = np.concatenate([layer.bias for layer in layers]).astype("<i4").tobytes()
    return exponents + biases + encode_integer_arrays([layer.weight.ravel().astype(np.int64) for layer in layers])


def context_from_bytes(data: bytes, shapes: list[list[tuple[int, int]]]) -> tuple[ArmWeights, ...]:
    """``context_to_bytes`` read back for levels of layers (inputs, outputs) ``shapes`` (ContextStreamError or
    EntropyStreamError if malformed)."""
    layers = [shape for level in shapes for shape in level]
    head = len(layers) + 4 * sum(outputs for _, outputs in layers)
    if len(data) < head:
        raise ContextStreamError(f"latent context model: {len(data)} bytes cannot hold its {head}-byte head")
    exponents = iter(np.frombuffer(data[:len(layers)], np.int8).tolist())
    biases = np.frombuffer(data[len(layers):head], "<i4").astype(np.int32)
    weights = iter(decode_integer_arrays(data[head:], [inputs * outputs for inputs, outputs in layers],
                                         name="latent context model"))
    out, start = [], 0
    for level in shapes:
        parsed = []
        for inputs, outputs in level:
            exponent, weight = next(exponents), next(weights)
            if not -16 <= exponent <= 30 or np.abs(weight).max(initial=0) > WEIGHT_MAX:
                raise ContextStreamError(f"latent context model: exponent {exponent} or a weight is out of range")
            parsed.append(Layer(weight.reshape(inputs, outputs).astype(np.int16), biases[start:start + outputs],
                                exponent))
            start += outputs
        out.append(ArmWeights(tuple(parsed)))
    return tuple(out)


def _halves(context: LevelContext, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows (point-major, channel-minor) of the even and the odd half."""
    odd = np.repeat(context.odd.cpu().numpy(), channels)
    return np.flatnonzero(~odd), np.flatnonzero(odd)


def encode_context_latents(latents: list[np.ndarray], contexts: list[LevelContext],
                           weights: tuple[ArmWeights, ...]) -> bytes:
    """Integer latents (M_l, C_l) per level, coded under the context model ``weights``."""
    device = contexts[0].odd.device
    integers = [torch.from_numpy(level.astype(np.int64)).to(device) for level in latents]
    passes, escaped = [], []
    for index, (context, level) in enumerate(zip(contexts, weights, strict=True)):
        lattice = level.lattice(level_features(context, index, integers).cpu().numpy())
        codes = latents[index].reshape(-1).astype(np.int64)
        for rows in _halves(context, latents[index].shape[1]):
            passes.append((codes[rows], lattice[rows]))
            beyond = np.abs(codes[rows]) > supports(lattice[rows])
            escaped.append(codes[rows][beyond])
    escapes = np.concatenate(escaped) if escaped else np.zeros(0, np.int64)
    escape_stream = encode_integer_arrays([escapes]) if len(escapes) else b""
    codes = encode_codes(passes)
    return _HEAD.pack(len(escapes), len(escape_stream), len(codes)) + escape_stream + codes


def decode_context_latents(data: bytes, contexts: list[LevelContext], channels: list[int],
                           weights: tuple[ArmWeights, ...]) -> list[np.ndarray]:
    """The integer latents (M_l, C_l) int32 per level from ``encode_context_latents``'s bytes (ContextStreamError
    when they are truncated or inconsistent)."""
    if len(data) < _HEAD.size:
        raise ContextStreamError(f"latents stream: {len(data)} bytes cannot hold its {_HEAD.size}-byte head")
    count, size, coded = _HEAD.unpack_from(data)
    if _HEAD.size + size + coded != len(data):
        raise ContextStreamError(f"latents stream is {len(data)} bytes, its head says {_HEAD.size + size + coded} "
                                 f"(truncated or damaged)")
    if count > MAX_ESCAPE or (size == 0) != (count == 0):
        raise ContextStreamError(f"latents stream: {count} escapes in {size} bytes")
    body = data[_HEAD.size:]
    escapes = decode_integer_arrays(body[:size], [count], name="latent escapes")[0] if count else np.zeros(0)
    decoder = CodeDecoder(body[size:])
    device = contexts[0].odd.device
    integers = [torch.zeros((len(c.odd), ch), dtype=torch.int64, device=device)
                for c, ch in zip(contexts, channels, strict=True)]
    used = 0
    for index, (context, level) in enumerate(zip(contexts, weights, strict=True)):
        flat = integers[index].reshape(-1)
        for rows in _halves(context, channels[index]):
            lattice = level.lattice(level_features(context, index, integers).cpu().numpy()[rows])
            codes = decoder.decode(lattice)
            escape_rows = np.flatnonzero(codes == CodeDecoder.ESCAPE)
            if used + len(escape_rows) > count:
                raise ContextStreamError(f"latents stream: more escaped latents than the {count} it holds")
            codes[escape_rows] = escapes[used:used + len(escape_rows)]
            used += len(escape_rows)
            flat[torch.from_numpy(rows).to(device)] = torch.from_numpy(codes).to(device)
    if used != count:
        raise ContextStreamError(f"latents stream: {count} escaped latents stored, {used} used")
    return [values.cpu().numpy().astype(np.int32) for values in integers]

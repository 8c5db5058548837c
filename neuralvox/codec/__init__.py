"""Value codec: fit a latent field to one grid's values, quantize, entropy-code; and decode it back."""

from neuralvox.codec.entropy import EntropyStreamError
from neuralvox.codec.presets import QUALITY_PRESETS, Quality, quality_preset
from neuralvox.codec.values import (
    EncodedValues,
    LatentState,
    ValueStats,
    decode_latents,
    decode_state,
    decode_values,
    decode_weights,
    encode_values,
    resolve_device,
)
from neuralvox.codec.weights import QuantizedDecoder

__all__ = ["QUALITY_PRESETS", "EncodedValues", "EntropyStreamError", "LatentState", "Quality", "QuantizedDecoder",
           "ValueStats", "decode_latents", "decode_state", "decode_values", "decode_weights", "encode_values",
           "quality_preset", "resolve_device"]

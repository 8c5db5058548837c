"""Quality presets of the value codec: model size, rate weight and fitting schedule."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Quality:
    """Knobs of one quality level.

    ``levels`` lists (stride, channels) of each latent lattice; ``hidden`` the decoder's hidden widths;
    ``frequencies`` the sin/cos octaves of the in-cell position fed to the decoder; ``rate_lambda`` weighs estimated
    bits per voxel against the mean squared error of range-normalized values; ``weight_step`` is the decoder weight
    quantization step as a fraction of each tensor's largest magnitude. ``iterations`` (main phase) and
    ``finetune_iterations`` (after weight quantization) schedule a keyframe's fit; a predicted frame, warm-started
    from the previous one, runs ``predicted_iterations`` in its main phase. ``weight_steps``, when given, are
    the candidate weight steps tried after the main phase, the one of least distortion plus rate (weights bits
    counted) kept (else ``weight_step``). A predicted frame's fit weighs rate by ``rate_lambda`` times
    ``predicted_rate_scale``: its residual is coded coarser than a keyframe's latents, as video codecs quantize inter
    frames coarser than intra frames.
    """

    levels: tuple[tuple[int, int], ...]
    hidden: tuple[int, ...]
    frequencies: int
    activation: str
    rate_lambda: float
    iterations: int
    finetune_iterations: int
    predicted_iterations: int
    latent_learning_rate: float
    initial_step: float
    decoder_learning_rate: float
    weight_step: float
    weight_steps: tuple[float, ...] = ()
    predicted_rate_scale: float = 1.0


# Candidate decoder weight steps: the search measured 1-4% fewer whole-archive bits at equal PSNR than the fixed step
# on the default sequence (benchmarks/RESULTS.md, issue 16).
WEIGHT_STEPS = (1 / 15, 1 / 31, 1 / 63, 1 / 127, 1 / 255)

QUALITY_PRESETS: dict[str, Quality] = {
    "low": Quality(levels=((8, 4), (4, 2)), hidden=(16,), frequencies=0, activation="gelu", rate_lambda=1.6e-3,
                   iterations=600, finetune_iterations=100, predicted_iterations=250,
                   latent_learning_rate=0.03, initial_step=0.01, decoder_learning_rate=0.01, weight_step=1 / 63,
                   weight_steps=WEIGHT_STEPS, predicted_rate_scale=4.0),
    "medium": Quality(levels=((8, 4), (4, 4), (2, 2)), hidden=(16, 16), frequencies=0, activation="gelu",
                      rate_lambda=2e-4, iterations=1000, finetune_iterations=150, predicted_iterations=400,
                      latent_learning_rate=0.03, initial_step=0.01, decoder_learning_rate=0.01, weight_step=1 / 127,
                      weight_steps=WEIGHT_STEPS, predicted_rate_scale=8.0),
    "high": Quality(levels=((8, 8), (4, 8), (2, 4)), hidden=(24, 24), frequencies=0, activation="gelu",
                    rate_lambda=4e-5, iterations=1500, finetune_iterations=200, predicted_iterations=600,
                    latent_learning_rate=0.03, initial_step=0.01, decoder_learning_rate=0.01, weight_step=1 / 255,
                    weight_steps=WEIGHT_STEPS),
}

# A keyframe at quality key is also fitted with the lattices and decoder of the presets listed, at its own rate
# weights, and the fit of least rate-distortion cost kept: at low the coarse lattices alone levelled off near 19 dB on
# smoke128 however little they weighed rate, while a liquid's level set did better with them than with the finer ones
# (benchmarks/RESULTS.md, issue 16).
ALTERNATIVE_LATTICES: dict[str, tuple[str, ...]] = {"low": ("medium",)}


def quality_preset(name: str) -> Quality:
    """The preset called ``name``; raise ValueError listing the choices otherwise."""
    try:
        return QUALITY_PRESETS[name]
    except KeyError:
        raise ValueError(f"quality {name!r} is not one of {sorted(QUALITY_PRESETS)}") from None


def keyframe_candidates(name: str) -> tuple[Quality, ...]:
    """What a keyframe at quality ``name`` is fitted with: its preset, then its alternative lattices."""
    preset = quality_preset(name)
    return (preset, *(dataclasses.replace(quality_preset(other), rate_lambda=preset.rate_lambda,
                                          predicted_rate_scale=preset.predicted_rate_scale)
                      for other in ALTERNATIVE_LATTICES.get(name, ())))

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
    counted) kept (else ``weight_step``).
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


# Candidate decoder weight steps: the search measured 1-4% fewer whole-archive bits at equal PSNR than the fixed step
# on the default sequence (benchmarks/RESULTS.md, issue 16).
WEIGHT_STEPS = (1 / 15, 1 / 31, 1 / 63, 1 / 127, 1 / 255)

QUALITY_PRESETS: dict[str, Quality] = {
    "low": Quality(levels=((8, 4), (4, 2)), hidden=(16,), frequencies=0, activation="gelu", rate_lambda=1e-3,
                   iterations=600, finetune_iterations=100, predicted_iterations=250,
                   latent_learning_rate=0.03, initial_step=0.01, decoder_learning_rate=0.01, weight_step=1 / 63,
                   weight_steps=WEIGHT_STEPS),
    "medium": Quality(levels=((8, 4), (4, 4), (2, 2)), hidden=(16, 16), frequencies=0, activation="gelu",
                      rate_lambda=2e-4, iterations=1000, finetune_iterations=150, predicted_iterations=400,
                      latent_learning_rate=0.03, initial_step=0.01, decoder_learning_rate=0.01, weight_step=1 / 127,
                      weight_steps=WEIGHT_STEPS),
    "high": Quality(levels=((8, 8), (4, 8), (2, 4)), hidden=(24, 24), frequencies=0, activation="gelu",
                    rate_lambda=4e-5, iterations=1500, finetune_iterations=200, predicted_iterations=600,
                    latent_learning_rate=0.03, initial_step=0.01, decoder_learning_rate=0.01, weight_step=1 / 255,
                    weight_steps=WEIGHT_STEPS),
}


def quality_preset(name: str) -> Quality:
    """The preset called ``name``; raise ValueError listing the choices otherwise."""
    try:
        return QUALITY_PRESETS[name]
    except KeyError:
        raise ValueError(f"quality {name!r} is not one of {sorted(QUALITY_PRESETS)}") from None

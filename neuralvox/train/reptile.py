"""Reptile-style training of a learned start: fit corpus grids from the current start, move the start towards the
mean of where the fits ended, repeat."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from neuralvox.codec.fit import fit_field
from neuralvox.codec.header import NeuralValueHeader
from neuralvox.codec.neural_model import architecture_of, build_field, normalization
from neuralvox.codec.presets import Quality
from neuralvox.codec.starts import FitRates, LearnedStart, latent_features
from neuralvox.codec.values import encode_values
from neuralvox.train.corpus import CorpusGrid, held_back

_RIDGE = 1e-4  # relative ridge of the latent map's regression: keeps it defined when a feature is constant
_UNTRAINED_NAME = "untrained x{:g}/{:g}"
_FIT_SEED = 0  # the seed encode_values fits with: the untrained start is the one the codec would use
_ORDER_SEED = 0  # of the training grids' shuffled order, so that each round sees several scenarios and resolutions


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one start is trained: ``rounds`` outer steps, each fitting ``batch`` corpus grids (in turn) for at most
    ``fit_share`` of the preset's main-phase iterations (taken in a fixed shuffled order) and moving the start by
    ``outer_rate`` (the first round all the way) towards the mean of the fitted parameters. ``validation`` grids of
    the kind, spread over its resolutions and scenarios (``corpus.held_back``), are held back to choose between the
    ``bases`` (the untrained start, the learned one, the learned one without its decoder weights), each with every
    learning rate multiples of ``rates`` (latents, decoder): by how many held-back grids a short fit (every cap
    scaled by ``short_share``) brings to the loss of the untrained start's full fit at the preset's rates, then by
    the mean ratio of the two losses; the choice must also end a full fit at most ``full_fit_limit`` times the
    untrained start's loss (else the next best is tried)."""

    rounds: int = 6
    batch: int = 3
    fit_share: float = 0.25
    outer_rate: float = 0.5
    validation: int = 2
    short_share: float = 0.25
    rates: tuple[tuple[float, float], ...] = ((1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (4.0, 2.0), (8.0, 4.0),
                                              (16.0, 8.0))
    full_fit_limit: float = 1.0
    bases: tuple[str, ...] = ("untrained", "learned", "learned without decoder")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


PRESET_RECIPES: dict[str, Recipe] = {
    # A corpus up to 56 cells gives more grids to see (8 rounds) and 4 to hold back. The learned start without its
    # decoder never won at medium, and faster rates (8x/4x density, 4x/2x temperature) cost whole archives at medium
    # 5.4% more bytes at 0.5 dB less (smoke128) and 1.24 dB (Blender temperature) in predicted frames, which a
    # keyframe validation does not see (benchmarks/RESULTS.md, third pass and part 8).
    "medium": Recipe(rounds=8, validation=4, rates=((1.0, 1.0), (2.0, 1.0), (2.0, 2.0)),
                     bases=("untrained", "learned")),
}


def recipe_for(quality: str) -> Recipe:
    """The recipe ``quality``'s starts are trained with."""
    return PRESET_RECIPES.get(quality, Recipe())


def train_start(kind: str, preset: Quality, grids: Sequence[CorpusGrid], recipe: Recipe,
                log: Callable[[str], None] = print) -> LearnedStart | None:
    """The learned start of ``kind`` for ``preset``'s architecture and rate weight (recorded in it), trained on
    ``grids`` (all of that kind) but ``recipe.validation`` held back (``corpus.held_back``), on which it (or the
    untrained start with other learning rates) must beat the untrained start's short fit, else None: the fit keeps
    its untrained start and the preset's rates."""
    training, validation = held_back(grids, recipe.validation)
    grids = [training[index] for index in np.random.default_rng(_ORDER_SEED).permutation(len(training))]
    channels = 1 if grids[0].values.ndim == 1 else 3
    architecture = architecture_of(preset, channels)
    untrained = start = _untrained(grids[0], preset)
    cap = max(1, int(recipe.fit_share * preset.iterations))
    cursor = 0
    for round_number in range(recipe.rounds):
        began = time.perf_counter()
        fits = []
        for _ in range(min(recipe.batch, len(grids))):
            fits.append(_fit_from(grids[cursor % len(grids)], preset, start, cap))
            cursor += 1
        rate = 1.0 if round_number == 0 else recipe.outer_rate
        start = LearnedStart(kind, architecture, {
            name: values + rate * (np.mean([fit.start.parameters[name] for fit in fits], axis=0) - values)
            for name, values in start.parameters.items() if name in fits[0].start.parameters})
        start = start.with_latent_maps(_latent_maps(fits))
        log(f"{kind} {architecture.hidden}: round {round_number + 1}/{recipe.rounds} "
            f"({len(fits)} fits, {time.perf_counter() - began:.1f} s)")
    chosen = _validated(start, untrained, preset, validation, recipe, log)
    return None if chosen is None else dataclasses.replace(chosen, rate_lambda=preset.rate_lambda)


def _validated(start: LearnedStart, untrained: LearnedStart, preset: Quality, grids: Sequence[CorpusGrid],
               recipe: Recipe, log: Callable[[str], None]) -> LearnedStart | None:
    """The best of ``recipe.bases``, each with each of ``recipe.rates``: by the number of ``grids`` whose short fit
    reaches the loss of the untrained start's full fit at the preset's rates (what the keyframe benchmark counts),
    then by the mean ratio of the two losses, among those whose full fits end within ``recipe.full_fit_limit`` of
    that start's; None when that untrained start is the one."""
    short = dataclasses.replace(preset, iterations=max(1, round(recipe.short_share * preset.iterations)),
                                finetune_iterations=max(1, round(recipe.short_share * preset.finetune_iterations)))
    bases = {"untrained": untrained, "learned": start, "learned without decoder": start.without_decoder()}
    candidates = {f"{name} x{latent:g}/{decoder:g}": dataclasses.replace(bases[name], rates=FitRates(latent, decoder))
                  for name in recipe.bases for latent, decoder in recipe.rates}
    reference = _UNTRAINED_NAME.format(*recipe.rates[0])
    full_reference = [_coded_loss(grid, preset, candidates[reference]) for grid in grids]
    log(f"{start.kind} {start.architecture.hidden}: held back "
        + ", ".join(f"{grid.source} (full fit {loss:.5f})" for grid, loss in zip(grids, full_reference, strict=True)))
    ratios = {name: np.divide([_coded_loss(grid, short, candidate) for grid in grids], full_reference)
              for name, candidate in candidates.items()}
    score = {name: (-int(np.sum(values <= 1.0)), float(np.mean(values))) for name, values in ratios.items()}
    log(f"{start.kind} {start.architecture.hidden}: short fits reaching the untrained full fit, mean short/full loss: "
        + ", ".join(f"{name} {-reached}/{len(grids)} {mean:.3f}" for name, (reached, mean) in score.items()))
    for name in sorted(score, key=score.get):
        if name == reference:
            break
        full = float(np.mean(np.divide([_coded_loss(grid, preset, candidates[name]) for grid in grids],
                                       full_reference)))
        log(f"{start.kind} {start.architecture.hidden}: {name} full-fit loss vs untrained {full:.3f}")
        if full <= recipe.full_fit_limit:
            log(f"{start.kind} {start.architecture.hidden}: keeping {name}")
            return candidates[name]
    log(f"{start.kind} {start.architecture.hidden}: keeping {reference}")
    return None


def _coded_loss(grid: CorpusGrid, preset: Quality, start: LearnedStart | None) -> float:
    """Range-normalized mean squared error plus lambda times the value streams' bits per voxel, as coded."""
    encoded = encode_values(grid.ijk, grid.values, grid_class=grid.grid_class, quality=preset, device="cpu",
                            start=start)  # a start's rates apply to the preset it is given
    columns = grid.values.reshape(len(grid.values), -1)
    peak = float(columns.max() - columns.min())
    mse = float(np.mean(((encoded.decoded.reshape(columns.shape) - columns) / peak) ** 2))
    bits = 8 * sum(len(data) for data in encoded.streams.values())
    return mse + preset.rate_lambda * bits / len(columns)


def _untrained(grid: CorpusGrid, preset: Quality) -> LearnedStart:
    field, _, header = _field(grid, preset)
    field.set_steps([torch.full_like(step, preset.initial_step) for step in field.steps()])
    return LearnedStart.of_field(grid.kind, header.model, field)


@dataclasses.dataclass
class _Fit:
    """Where one corpus fit ended: its parameters as a start, and per level the latent map's features and the
    fitted latents."""

    start: LearnedStart
    features: list[np.ndarray]
    latents: list[np.ndarray]


def _fit_from(grid: CorpusGrid, preset: Quality, start: LearnedStart, cap: int) -> _Fit:
    """A keyframe fit of ``grid`` from ``start`` (its decoder as quantized, steps before rounding)."""
    field, target, header = _field(grid, preset)
    start.apply(field, target)
    fit_field(field, target, preset, header.model, initial_steps=[step.detach().clone() for step in field.steps()],
              iterations=(cap, 0))
    features = [f.numpy() for f in latent_features(field, target)]
    return _Fit(LearnedStart.of_field(grid.kind, header.model, field), features,
                [latents.detach().numpy() for latents in field.latents])


def _latent_maps(fits: list[_Fit]) -> list[np.ndarray]:
    """Per level, the least-squares (lightly ridged) map from features to the fitted latents over all fits."""
    maps = []
    for level in range(len(fits[0].latents)):
        features = np.concatenate([fit.features[level] for fit in fits]).astype(np.float64)
        latents = np.concatenate([fit.latents[level] for fit in fits]).astype(np.float64)
        gram = features.T @ features + _RIDGE * len(features) * np.eye(features.shape[1])
        maps.append(np.linalg.solve(gram, features.T @ latents).T)
    return maps


def _field(grid: CorpusGrid, preset: Quality):
    """The latent field and normalized target of a keyframe of ``grid``, as ``encode_values`` builds them."""
    columns = grid.values.reshape(len(grid.values), -1)
    architecture = architecture_of(preset, columns.shape[1])
    header = NeuralValueHeader(len(columns), columns.shape[1], None, architecture,
                               tuple(float(v) for v in columns.min(axis=0)),
                               tuple(float(v) for v in columns.max(axis=0)), False, None)
    offset, scale = normalization(header)
    target = torch.from_numpy((columns - offset) / scale)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_FIT_SEED)
        field = build_field(torch.from_numpy(grid.ijk), header)
    return field, target, header

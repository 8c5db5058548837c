"""Fit loop: rate-distortion training of a latent field, then decoder weight quantization and latent fine-tuning."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from neuralvox.codec.convergence import ConvergenceMonitor, Schedule
from neuralvox.codec.header import Architecture
from neuralvox.codec.latent_codecs import WRITTEN, compress_weights
from neuralvox.codec.presets import Quality
from neuralvox.codec.weights import QuantizedDecoder, quantize_decoder
from neuralvox.model.field import LatentField
from neuralvox.model.motion import LatentPredictor

Progress = Callable[[int, int], None]
"""Called as ``progress(iterations_done, iterations_total)`` while fitting."""

_BATCH_VOXELS = {"cpu": 1 << 16, "cuda": 1 << 20}  # voxels per training step; large frames cycle through batches
_PRIOR_LEARNING_RATE = 0.05
_STEP_LEARNING_RATE = 0.02
_FINETUNE_RATE = 0.2  # learning rates after weight quantization, as a fraction of the main phase's
_MIN_STEP = 2.0**-14  # smallest normal float16: steps are stored as float16
_MOTION_LEARNING_RATE = 0.02  # voxels per Adam step
_WORTHWHILE_BITS = 0.02  # bits per voxel: a window of iterations gaining less (in rate-distortion loss) has converged


@dataclasses.dataclass
class FitResult:
    """Integer latents (one (M_l, C_l) int32 array per level), their quantization steps (float16 values, (C_l,) per
    level), the quantized decoder, the coded motion ((K, 3) int32, predicted frames only), and what the fit cost.

    For a predicted frame the latents are the residual: the decoder uses the prediction plus latents times steps.
    """

    latents: list[np.ndarray]
    steps: list[np.ndarray]
    decoder: QuantizedDecoder | None
    iterations: int
    seconds: float
    motion: np.ndarray | None = None


def fit_field(field: LatentField, target: torch.Tensor, quality: Quality, architecture: Architecture,
              shared_decoder: QuantizedDecoder | None = None, progress: Progress | None = None,
              predictor: LatentPredictor | None = None, initial_steps: list[torch.Tensor] | None = None,
              iterations: tuple[int, int] | None = None) -> FitResult:
    """Fit ``field`` to ``target`` (N, out) range-normalized values; the decoder too unless ``shared_decoder``.

    Main phase: latents, steps, priors and decoder with noisy then straight-through rounded latents. Then the steps
    are rounded to float16 and the decoder quantized (or the shared one loaded), and the latents fine-tuned against
    exactly what the decoder will use. With a ``predictor`` the latents are a residual over its prediction (starting
    at zero: the fit is warm-started from the previous frame) and its motion is refined in the main phase, then
    rounded and held. ``initial_steps`` (default: the preset's) and ``iterations`` (main, fine-tune; default: the
    preset's) set the schedule.
    """
    with _single_threaded(target.device):
        return _fit(field, target, quality, architecture, shared_decoder, progress, predictor, initial_steps,
                    iterations or (quality.iterations, quality.finetune_iterations))


def _fit(field: LatentField, target: torch.Tensor, quality: Quality, architecture: Architecture,
         shared_decoder: QuantizedDecoder | None, progress: Progress | None, predictor: LatentPredictor | None,
         initial_steps: list[torch.Tensor] | None, iterations: tuple[int, int]) -> FitResult:
    start = time.perf_counter()
    main_cap, finetune_cap = iterations
    total = main_cap + finetune_cap
    batches = field.make_batches(_BATCH_VOXELS.get(target.device.type, _BATCH_VOXELS["cpu"]))
    targets = [target[rows] for rows in batches]

    reported = [(0, total)]

    def report(done: int, out_of: int = total) -> None:
        if progress is not None and (done, out_of) != reported[-1]:
            progress(done, out_of)
            reported.append((done, out_of))

    if shared_decoder is not None:
        shared_decoder.load_into(field.decoder)
    field.decoder.requires_grad_(shared_decoder is None)
    field.set_steps(initial_steps or [torch.full_like(step, quality.initial_step) for step in field.steps()])
    groups = [{"params": list(field.latents), "lr": quality.latent_learning_rate},
              {"params": list(field.log_steps), "lr": _STEP_LEARNING_RATE},
              {"params": list(field.priors.parameters()), "lr": _PRIOR_LEARNING_RATE}]
    if shared_decoder is None:
        groups.append({"params": list(field.decoder.parameters()), "lr": quality.decoder_learning_rate})
    if predictor is not None:
        groups += [{"params": [predictor.motion], "lr": _MOTION_LEARNING_RATE},
                   {"params": list(predictor.prior.parameters()), "lr": _PRIOR_LEARNING_RATE}]
    resolution = quality.rate_lambda * _WORTHWHILE_BITS
    main_done = _train(field, targets, quality.rate_lambda, groups, None, Schedule(main_cap, resolution), True,
                       report, predictor)

    if not all(torch.isfinite(parameter).all() for parameter in field.parameters()):
        raise FloatingPointError("value fit diverged: the latent field holds NaN or infinite parameters")
    steps = [step.detach().clamp(min=_MIN_STEP).cpu().numpy().astype(np.float16) for step in field.steps()]
    fixed_steps = [torch.from_numpy(step.astype(np.float32)).to(target.device) for step in steps]
    decoder = shared_decoder
    if decoder is None:
        decoder = _quantized_decoder(field, targets, fixed_steps, quality, architecture)
        decoder.load_into(field.decoder)
        field.decoder.requires_grad_(False)
    motion = None
    base = None
    if predictor is not None:
        motion = predictor.integers()
        predictor.set_integers(motion)
        with torch.no_grad():
            base = predictor()
    groups = [{"params": list(field.latents), "lr": _FINETUNE_RATE * quality.latent_learning_rate},
              {"params": list(field.priors.parameters()), "lr": _FINETUNE_RATE * _PRIOR_LEARNING_RATE}]
    finetune_done = _train(field, targets, quality.rate_lambda, groups, fixed_steps,
                           Schedule(finetune_cap, resolution), False, lambda done: report(main_done + done), base)
    done = main_done + finetune_done
    report(done, done)  # finished: a phase that converged ends before its cap

    latents = [torch.round(values.detach() / step).to(torch.int32).cpu().numpy()
               for values, step in zip(field.latents, fixed_steps, strict=True)]
    return FitResult(latents, steps, decoder, done, time.perf_counter() - start,
                     None if motion is None else motion.cpu().numpy())


def _quantized_decoder(field: LatentField, targets: list[torch.Tensor], steps: list[torch.Tensor], quality: Quality,
                       architecture: Architecture) -> QuantizedDecoder:
    """The decoder quantized with the preset's weight step, or with whichever of its candidate ``weight_steps``
    gives the least distortion (rounded latents, no prediction) plus rate_lambda times the weights' bits per voxel."""
    if not quality.weight_steps:
        return quantize_decoder(field.decoder, quality.weight_step, architecture)
    trained = {name: values.clone() for name, values in field.decoder.state_dict().items()}
    voxel_count = sum(target.shape[0] for target in targets)
    best, best_cost = None, math.inf
    for fraction in quality.weight_steps:
        candidate = quantize_decoder(field.decoder, fraction, architecture)
        candidate.load_into(field.decoder)
        with torch.no_grad():
            rounded = [torch.round(values / step) for values, step in zip(field.latents, steps, strict=True)]
            squared = sum(float(((field(rounded, steps, batch) - target) ** 2).sum())
                          for batch, target in enumerate(targets))
        cost = (squared + quality.rate_lambda * 8 * len(compress_weights(candidate, WRITTEN.weights))) / voxel_count
        if cost < best_cost:
            best, best_cost = candidate, cost
        field.decoder.load_state_dict(trained)
    return best


@contextlib.contextmanager
def _single_threaded(device: torch.device) -> Iterator[None]:
    """Run CPU fitting on one thread: its operations are small (one batch of a tiny MLP), so extra threads gain
    little, and on a busy machine OpenMP's spin-waiting threads made a fit 10-20x slower than one thread."""
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train(field: LatentField, targets: list[torch.Tensor], rate_lambda: float, groups: list[dict],
           fixed_steps: list[torch.Tensor] | None, schedule: Schedule, noisy: bool,
           report: Callable[[int], None], prediction: LatentPredictor | list[torch.Tensor] | None = None) -> int:
    """Adam on distortion + lambda * bits per voxel, one batch per iteration, until converged; returns the
    iterations run.

    The decoder sees latents plus uniform noise while ``noisy``, then rounded latents with a straight-through gradient;
    the rate is always that of the noisy latents. The quantization steps are learned unless ``fixed_steps`` are given.
    ``prediction`` is added to the latents: a predictor (its motion refined, and its bits counted, until the noise
    ends, then held) or fixed tensors. ``schedule`` says when the noise ends, when the learning rate drops and when
    the phase stops; the only host round trip is one loss value per window of iterations.
    """
    voxel_count = sum(target.shape[0] for target in targets)
    if schedule.cap == 0 or voxel_count == 0:
        return 0
    optimizer = torch.optim.Adam(groups)
    initial_rates = [group["lr"] for group in groups]
    report_every = max(1, schedule.cap // 20)
    monitor = ConvergenceMonitor(schedule, noisy)
    frozen = None
    iteration = 0
    while not monitor.stopped(iteration):
        for group, rate in zip(optimizer.param_groups, initial_rates, strict=True):
            group["lr"] = rate * monitor.rate_scale(iteration)
        steps = field.steps() if fixed_steps is None else fixed_steps
        latents = [values / step for values, step in zip(field.latents, steps, strict=True)]
        noisy_latents = [values + torch.empty_like(values).uniform_(-0.5, 0.5) for values in latents]
        if monitor.noisy:
            decoded_from = noisy_latents
        else:
            decoded_from = [values + (torch.round(values) - values).detach() for values in latents]
        batch = iteration % len(targets)
        bits = field.bits(noisy_latents)
        base = prediction
        if isinstance(prediction, LatentPredictor):
            if monitor.noisy:
                base = prediction()
                bits = bits + prediction.bits()
            else:
                if frozen is None:
                    with torch.no_grad():
                        frozen = prediction()
                base = frozen
        distortion = torch.mean((field(decoded_from, steps, batch, base) - targets[batch]) ** 2)
        loss = distortion + rate_lambda * bits / voxel_count
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        iteration += 1
        monitor.record(loss.detach(), iteration)
        if iteration % report_every == 0:
            report(iteration)
    return iteration

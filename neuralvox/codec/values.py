"""Value codec of one grid of one frame: values at known active voxels to a small header and byte streams, and back."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch

from neuralvox.codec.entropy import EntropyStreamError
from neuralvox.codec.fit import FitResult, Progress, fit_field
from neuralvox.codec.header import LATENTS, MOTION, RESIDUAL, WEIGHTS, MotionSpec, NeuralValueHeader
from neuralvox.codec.latent_codecs import (
    compress_latents,
    compress_motion,
    compress_weights,
    decompress_latents,
    decompress_motion,
    decompress_weights,
    stream_models,
)
from neuralvox.codec.neural_model import (
    MOTION_STEP,
    MOTION_STRIDE,
    LatentState,
    architecture_of,
    build_field,
    decoder_module,
    guided_predictor,
    motion_spec,
    normalization,
    predictor_at,
)
from neuralvox.codec.presets import Quality, quality_preset
from neuralvox.codec.starts import LearnedStart, find_start, grid_kind
from neuralvox.codec.weights import QuantizedDecoder
from neuralvox.device import resolve_device
from neuralvox.grid import GRID_CLASSES
from neuralvox.kernels.fused import FieldArrays, FusedDecoder
from neuralvox.metrics import error_stats, value_range
from neuralvox.model.decoder import DecoderMLP
from neuralvox.model.geometry import lattice_points
from neuralvox.model.motion import MotionGuess, compensate_voxels, motion_lattice

FORMAT = NeuralValueHeader.FORMAT
_FIT_SEED = 0
_DECODE_CHUNK = 1 << 18  # voxels per decoder batch; fixed so that encoder and decoder compute identically
BACKENDS = ("auto", "torch", "warp")
STATE_STREAMS = (LATENTS, RESIDUAL, MOTION)  # what decode_state reads; decoding voxels adds "weights"


@dataclasses.dataclass
class ValueStats:
    """Quality of the decoded values (as ``decode_values`` returns them) against the input, and the fit's cost.

    ``psnr`` uses the frame's own value range as peak (inf when exact); ``rmse`` and ``max_abs_error`` are over all
    channels of all voxels.
    """

    psnr: float
    rmse: float
    max_abs_error: float
    fit_seconds: float
    iterations: int


@dataclasses.dataclass
class EncodedValues:
    """The coded values of one grid: ``header`` (small JSON-serializable dict) and ``streams`` (name -> bytes).

    ``latents`` are the coded integers (int32 (M_l, C_l) per level, rows ordered like ``state.coords``; the decoder's
    input is ``latents * state.steps``, plus the prediction for a predicted frame, whose ``latents`` are the residual)
    and ``decoder`` the decoder weights, kept for sharing with later frames, not to be stored (an empty list and None
    for a constant grid). ``state`` holds the decoded latents, what the next frame is predicted from (None for a
    constant grid), and ``decoded`` the values exactly as ``decode_values`` returns them (what ``stats`` measured).
    """

    header: NeuralValueHeader
    streams: dict[str, bytes]
    stats: ValueStats
    latents: list[np.ndarray]
    decoder: QuantizedDecoder | None
    decoded: np.ndarray
    state: LatentState | None = None


def encode_values(ijk: np.ndarray, values: np.ndarray, *, grid_class: str, quality: str | Quality = "medium",
                  device: str = "auto", progress: Progress | None = None,
                  shared_decoder: QuantizedDecoder | None = None, reference: LatentState | None = None,
                  motion_guess: MotionGuess | None = None, aim: np.ndarray | None = None, grid_name: str = "",
                  start: LearnedStart | Literal["shipped"] | None = "shipped") -> EncodedValues:
    """Fit and code ``values`` (N,) or (N, 3) float32 at voxels ``ijk`` (N, 3) int32 in canonical order.

    ``decode_values`` must be given the same ``ijk`` in the same order. ``stats`` are measured on exactly what
    ``decode_values`` returns on the same device. ``quality`` is a preset name (low, medium, high) or a Quality.
    With ``shared_decoder`` (for example the ``decoder`` of an earlier frame's EncodedValues) only latents are
    fitted and sent: the caller stores the shared weights once and passes them to ``decode_values`` too.
    With ``reference`` (the previous frame's ``state``, coded with the same decoder) the frame is predicted: a motion
    field (started from ``motion_guess``, else zero) warps the reference latents and a residual is coded; pass the
    same reference to ``decode_values``. ``aim`` (shaped like ``values``) is what the fit aims at instead of
    ``values`` (the encoder's temporal coherence moves it towards the previous frame's error); the normalization and
    ``stats`` still come from ``values``. ``progress(done, total)`` is called with fitting iterations.
    A keyframe's fit begins from ``start``: by default the shipped learned start for the grid's kind (from
    ``grid_name``, ``grid_class`` and channels; see ``neuralvox.codec.starts``), architecture and rate weight where
    there is one, None for the untrained initialization; the archive does not depend on it to decode.
    """
    ijk, values = _check_inputs(ijk, values, grid_class)
    preset = quality_preset(quality) if isinstance(quality, str) else quality
    channels = 1 if values.ndim == 1 else 3
    columns = values.reshape(len(values), channels)
    if len(values) == 0 or float(columns.max()) == float(columns.min()):
        constant = tuple(_json_float32(v) for v in (columns[0] if len(values) else np.zeros(channels)))
        header = NeuralValueHeader(len(values), channels, constant=constant)
        decoded = decode_values(ijk, header, {}, device="cpu")
        return EncodedValues(header, {}, _stats(values, decoded, FitResult([], [], None, 0, 0.0)), [], None, decoded)

    architecture = architecture_of(preset, channels)
    if shared_decoder is not None and shared_decoder.architecture != architecture:
        raise ValueError(f"shared decoder architecture {shared_decoder.architecture} does not match quality "
                         f"{architecture}")
    if reference is not None and shared_decoder is None:
        raise ValueError("a predicted frame must share its reference frame's decoder")
    header = NeuralValueHeader(
        len(values), channels, None, architecture, tuple(_json_float32(v) for v in columns.min(axis=0)),
        tuple(_json_float32(v) for v in columns.max(axis=0)), shared_decoder is not None,
        None if reference is None else MotionSpec(MOTION_STRIDE, MOTION_STEP))
    torch_device = resolve_device(device)
    offset, scale = normalization(header)
    aimed = columns if aim is None else np.asarray(aim, dtype=np.float32).reshape(columns.shape)
    target = torch.from_numpy((aimed - offset) / scale).to(torch_device)
    # Same input, same archive: the decoder's initial weights and the training noise come from a fixed seed, without
    # touching the caller's random state.
    with torch.random.fork_rng(devices=[torch_device] if torch_device.type == "cuda" else []):
        torch.manual_seed(_FIT_SEED)
        field = build_field(torch.from_numpy(ijk).to(torch_device), header)
        predictor, initial_steps, iterations = None, None, None
        if start == "shipped":
            start = find_start(grid_kind(grid_name, grid_class, channels), architecture, preset.rate_lambda)
        if reference is None and start is not None:
            start.apply(field, target)
            initial_steps = [step.detach().clone() for step in field.steps()]
            preset = start.tuned(preset)
        if reference is not None:
            predictor = guided_predictor(field, header, reference, torch_device, motion_guess)
            initial_steps = [torch.from_numpy(step.astype(np.float32)).to(torch_device) for step in reference.steps]
            iterations = (preset.predicted_iterations, preset.finetune_iterations)
            preset = dataclasses.replace(preset, rate_lambda=preset.rate_lambda * preset.predicted_rate_scale)
        result = fit_field(field, target, preset, architecture, shared_decoder, progress,
                           predictor, initial_steps, iterations)
        models = stream_models(header)
        streams = {header.latent_stream: compress_latents(result.latents, result.steps, models.latents)}
        if result.motion is not None:
            streams[MOTION] = compress_motion(result.motion, models.motion)
        if shared_decoder is None:
            streams[WEIGHTS] = compress_weights(result.decoder, models.weights)
        state = decode_state(ijk, header, streams, reference, device=device)
        decoded = decode_values(ijk, header, streams, device=device, shared_decoder=shared_decoder, state=state)
    return EncodedValues(header, streams, _stats(values, decoded, result), result.latents, result.decoder, decoded,
                         state)


def decode_state(ijk: np.ndarray, header: NeuralValueHeader, streams: dict[str, bytes],
                 reference: LatentState | None = None, device: str = "auto") -> LatentState | None:
    """The decoded latents of a non-constant grid (None for a constant one) from its topology and streams; a
    predicted frame needs the ``reference`` state it was coded against. No voxel is decoded."""
    if header.constant is not None:
        return None
    ijk = np.ascontiguousarray(ijk, dtype=np.int32).reshape(-1, 3)
    torch_device = resolve_device(device)
    voxels = torch.from_numpy(ijk).to(torch_device)
    coords = [lattice_points(voxels, stride) for stride in header.model.strides]
    integers, steps = decompress_latents(_stream(streams, header.latent_stream), [len(c) for c in coords],
                                         header.model.level_channels, stream_models(header).latents)
    latents = [torch.from_numpy(values.astype(np.float32)).to(torch_device)
               * torch.from_numpy(step.astype(np.float32)).to(torch_device)
               for values, step in zip(integers, steps, strict=True)]
    if header.predicted is not None:
        if reference is None:
            raise ValueError("this frame is predicted from the previous one: pass its decoded state as reference")
        predictor = predictor_at(coords, header, reference, torch_device)
        motion = decompress_motion(_stream(streams, MOTION), predictor.motion.shape[0], stream_models(header).motion)
        predictor.set_integers(torch.from_numpy(motion))
        with torch.no_grad():
            latents = [base + residual for base, residual in zip(predictor(), latents, strict=True)]
    return LatentState(ijk, [c.cpu().numpy() for c in coords], [values.cpu().numpy() for values in latents], steps)


def decode_values(ijk: np.ndarray, header: NeuralValueHeader, streams: dict[str, bytes], device: str = "auto",
                  shared_decoder: QuantizedDecoder | None = None, backend: str = "auto",
                  reference: LatentState | None = None, state: LatentState | None = None) -> np.ndarray:
    """Values (N,) or (N, 3) float32 at voxels ``ijk`` from what ``encode_values`` produced for the same voxels.

    A predicted frame needs its ``reference`` (or its own decoded ``state``, from ``decode_state``). ``backend``
    "torch" is the reference decode, "warp" the fused Warp kernel (equal within float32 rounding), "auto" the faster
    one (see ``resolve_backend``).
    """
    if not isinstance(header, NeuralValueHeader):
        raise ValueError(f"value header {type(header).__name__} is not the neural base's {FORMAT!r}")
    ijk = np.ascontiguousarray(ijk, dtype=np.int32).reshape(-1, 3)
    channels = header.channels
    if len(ijk) != header.voxels:
        raise ValueError(f"value header is for {header.voxels} voxels, topology gives {len(ijk)}")
    shape = (len(ijk),) if channels == 1 else (len(ijk), channels)
    if header.constant is not None:
        return np.repeat(np.asarray(header.constant, dtype=np.float32)[None], len(ijk), axis=0).reshape(shape)

    torch_device = resolve_device(device)
    state = state or decode_state(ijk, header, streams, reference, device=str(torch_device))
    if resolve_backend(backend) == "warp":
        return fused_decoder(ijk, header, streams, torch_device, shared_decoder, state).decode(ijk).reshape(shape)
    field = build_field(torch.from_numpy(ijk).to(torch_device), header)
    decoder = _decoder_weights(header, streams, field.decoder, shared_decoder)
    decoder.load_into(field.decoder)
    latents = [torch.from_numpy(values).to(torch_device) for values in state.latents]
    offset, scale = normalization(header)
    low = torch.tensor(header.low, dtype=torch.float32, device=torch_device)
    high = torch.tensor(header.high, dtype=torch.float32, device=torch_device)
    out = torch.empty((len(ijk), channels), dtype=torch.float32, device=torch_device)
    with torch.no_grad():
        for start in range(0, len(ijk), _DECODE_CHUNK):
            rows = slice(start, start + _DECODE_CHUNK)
            out[rows] = torch.minimum(torch.maximum(field.decode(latents, rows) * scale + offset, low), high)
    return out.cpu().numpy().reshape(shape)


def resolve_backend(backend: str) -> str:
    """'auto' is the fused Warp kernel on every device: on CUDA by design, and on CPU because the torch reference's
    per-voxel lattice tables cost more than Warp's single thread (benchmarks/decode_throughput.py measures both)."""
    if backend not in BACKENDS:
        raise ValueError(f"decode backend {backend!r} is not one of {BACKENDS}")
    return "warp" if backend == "auto" else backend


def fused_decoder(ijk: np.ndarray, header: NeuralValueHeader, streams: dict[str, bytes], device: torch.device,
                  shared_decoder: QuantizedDecoder | None = None, state: LatentState | None = None) -> FusedDecoder:
    """The fused Warp decoder of a non-constant grid's values, built from its topology ``ijk`` (canonical order) and
    streams (and its decoded ``state``, required for a predicted frame): it decodes the values of any of those voxels
    (all of them, or a few for random access)."""
    state = state or decode_state(ijk, header, streams, device=str(device))
    model = header.model
    decoder = decoder_module(model)
    weights = _decoder_weights(header, streams, decoder, shared_decoder)
    offset, scale = normalization(header)
    field = FieldArrays(
        strides=model.strides,
        points=[torch.from_numpy(coords).to(device) for coords in state.coords], latents=state.latents,
        tensors=weights.tensors(), widths=[decoder.layers[0].in_features, *model.hidden, model.channels],
        activation=model.activation, frequencies=model.frequencies, offset=float(offset), scale=float(scale),
        low=np.asarray(header.low, dtype=np.float32), high=np.asarray(header.high, dtype=np.float32))
    return FusedDecoder(field, device)


def decode_latents(ijk: np.ndarray, header: NeuralValueHeader, streams: dict[str, bytes]) -> tuple[list[np.ndarray],
                                                                                    list[np.ndarray]]:
    """The integer latents (int32 (M_l, C_l) per level, rows in lattice order) and their float16 steps, as the
    decoder reads them; empty lists for a constant grid."""
    if header.constant is not None:
        return [], []
    voxels = torch.from_numpy(np.ascontiguousarray(ijk, dtype=np.int32))
    return decompress_latents(_stream(streams, header.latent_stream),
                              [len(lattice_points(voxels, stride)) for stride in header.model.strides],
                              header.model.level_channels, stream_models(header).latents)


def decode_weights(header: NeuralValueHeader, data: bytes) -> QuantizedDecoder:
    """The decoder weights in a ``weights`` stream, given the header of the frame that sent them (no topology
    needed): what later frames coded with ``shared_decoder`` need."""
    if not isinstance(header, NeuralValueHeader) or header.constant is not None:
        raise ValueError("weights can only be read with the header of a frame coded with its own decoder")
    return decompress_weights(data, decoder_module(header.model), header.model, stream_models(header).weights)


def motion_compensated_voxels(header: NeuralValueHeader, streams: dict[str, bytes],
                              reference_ijk: np.ndarray) -> np.ndarray:
    """The reference frame's voxels moved by a predicted frame's coded motion (see
    ``neuralvox.model.motion.compensate_voxels``): a context for this frame's topology, decodable before it."""
    motion = motion_spec(header)
    coords = motion_lattice(torch.from_numpy(np.ascontiguousarray(reference_ijk, dtype=np.int32)),
                            motion.stride).numpy()
    moves = decompress_motion(_stream(streams, MOTION), len(coords), stream_models(header).motion) * motion.step
    return compensate_voxels(reference_ijk, coords, moves, motion.stride)


def _decoder_weights(header: NeuralValueHeader, streams: dict[str, bytes], decoder: DecoderMLP,
                     shared_decoder: QuantizedDecoder | None) -> QuantizedDecoder:
    architecture = header.model
    if not header.shared_decoder:
        return decompress_weights(_stream(streams, WEIGHTS), decoder, architecture, stream_models(header).weights)
    if shared_decoder is None:
        raise ValueError("these values were coded with a shared decoder: pass it as shared_decoder")
    if shared_decoder.architecture != architecture:
        raise ValueError(f"shared decoder architecture {shared_decoder.architecture} does not match {architecture}")
    return shared_decoder


def _stream(streams: dict[str, bytes], name: str) -> bytes:
    if name not in streams:
        raise EntropyStreamError(f"{name} stream is missing (have {sorted(streams)})")
    return bytes(streams[name])


def _json_float32(value: float) -> float:
    """A float whose JSON text is the shortest decimal that reads back as the same float32."""
    return float(str(np.float32(value)))


def _check_inputs(ijk: np.ndarray, values: np.ndarray, grid_class: str) -> tuple[np.ndarray, np.ndarray]:
    if grid_class not in GRID_CLASSES:
        raise ValueError(f"grid class {grid_class!r} is not one of {GRID_CLASSES}")
    ijk = np.asarray(ijk)
    values = np.asarray(values)
    if ijk.ndim != 2 or ijk.shape[1] != 3 or not np.issubdtype(ijk.dtype, np.integer):
        raise ValueError(f"ijk must be an integer array of shape (N, 3), got {ijk.dtype} {ijk.shape}")
    if values.shape not in ((len(ijk),), (len(ijk), 3)):
        raise ValueError(f"values must have shape ({len(ijk)},) or ({len(ijk)}, 3), got {values.shape}")
    values = np.ascontiguousarray(values, dtype=np.float32)
    for problem, bad in (("NaN", np.isnan(values)), ("infinite", np.isinf(values))):
        if bad.any():
            raise ValueError(f"values hold {int(bad.sum())} {problem} entries; the value codec needs finite values")
    return np.ascontiguousarray(ijk, dtype=np.int32), values


def _stats(values: np.ndarray, decoded: np.ndarray, result: FitResult) -> ValueStats:
    error = error_stats(values, decoded, peak=value_range(values))
    return ValueStats(error.psnr, error.rmse, error.max_abs_error, result.seconds, result.iterations)

"""Learned starting points of the fit, per grid kind and model architecture: the decoder's initial weights, the
latents' initial quantization steps and prior scales, and the fit's learning rates, trained offline over simulated
sequences (``train/``) and shipped with the package as one checksummed file (``save_starts`` gives its layout).

A start only sets where a keyframe's fit begins: the fitted weights and steps are stored in the archive, so decoding
never needs this file.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralvox.atomic import atomic_output
from neuralvox.codec.header import Architecture
from neuralvox.codec.presets import Quality
from neuralvox.model.field import LatentField

FILE_FORMAT = "neuralvox-starts/3"
# /1: no learning rates (the preset's are used); /1 and /2: no rate weights (a start serves every rate weight)
_READABLE_FORMATS = ("neuralvox-starts/1", "neuralvox-starts/2", FILE_FORMAT)
STARTS_FILE = Path(__file__).with_name("learned_starts.bin")
_MAGIC = b"neuralvox-starts\n"
_DIGEST = 32  # bytes of SHA-256
_ADVICE = "reinstall neuralvox or rebuild it with train/train_starts.py"
GRID_KINDS = ("density", "temperature", "velocity", "level set")
_TEMPERATURE_NAMES = ("temperature", "flame", "heat", "fuel", "flames")
_LATENTS = "latents."  # the field's latents are not copied: they start from the latent map (or zero)
_LATENT_MAP = "latent_map."
_DECODER = "decoder."


StartKey = tuple[str, Architecture, float | None]  # kind, architecture, rate weight trained at (None: unrecorded)


class LearnedStartError(ValueError):
    """The learned-start file is missing parts, damaged or of another format."""


def grid_kind(name: str, grid_class: str, channels: int) -> str:
    """The kind of grid a start is learned for: a level set, a velocity (three channels), a temperature-like fog
    (temperature, flame, heat, fuel by name) or a density (any other fog or scalar)."""
    if grid_class == "level set":
        return "level set"
    if channels == 3:
        return "velocity"
    return "temperature" if name.lower() in _TEMPERATURE_NAMES else "density"


@dataclasses.dataclass(frozen=True)
class FitRates:
    """A keyframe fit's learning rates as multiples of its preset's: of the latents and of the decoder."""

    latent: float = 1.0
    decoder: float = 1.0

    def to_json(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FitRates:
        rates = cls(float(data["latent"]), float(data["decoder"]))
        if not all(np.isfinite(value) and 0 < value <= 100 for value in (rates.latent, rates.decoder)):
            raise ValueError(f"learning rate multiples {rates} out of range")
        return rates


@dataclasses.dataclass(frozen=True)
class LearnedStart:
    """Initial values of a latent field's parameters (by ``LatentField`` parameter name, latents excluded) for grids
    of ``kind`` coded with ``architecture``, the latent map: per level ``l`` a matrix ``latent_map.l`` (C_l,
    channels + 1) taking the target's local means at each lattice point (and a 1) to its initial latents, and the
    learning ``rates`` the fit runs with. Any parameter may be left out (it keeps its untrained initial value): a
    start without decoder weights is how the file says "untrained decoder, learned steps, map and rates".
    ``rate_lambda`` is the rate weight it was trained at (None: not recorded, as in files before
    ``neuralvox-starts/3``)."""

    kind: str
    architecture: Architecture
    parameters: dict[str, np.ndarray]
    rates: FitRates = FitRates()
    rate_lambda: float | None = None

    @property
    def key(self) -> StartKey:
        """Where the starts file files it: kind, architecture and rate weight."""
        return self.kind, self.architecture, self.rate_lambda

    @classmethod
    def of_field(cls, kind: str, architecture: Architecture, field: LatentField) -> LearnedStart:
        """The start a field's current parameters make."""
        return cls(kind, architecture, {name: parameter.detach().cpu().numpy().astype(np.float32).copy()
                                        for name, parameter in field.named_parameters()
                                        if not name.startswith(_LATENTS)})

    def apply(self, field: LatentField, target: torch.Tensor) -> None:
        """Copy the start into ``field``'s parameters of the same name and shape (others keep their initial value)
        and start its latents from the latent map of ``target`` (N, channels), the normalized values it will fit."""
        with torch.no_grad():
            for name, parameter in field.named_parameters():
                values = self.parameters.get(name)
                if values is not None and tuple(values.shape) == tuple(parameter.shape):
                    parameter.copy_(torch.from_numpy(values).to(parameter))
            for number, (latents, features) in enumerate(zip(field.latents, latent_features(field, target),
                                                             strict=True)):
                matrix = self.parameters.get(f"{_LATENT_MAP}{number}")
                if matrix is not None and matrix.shape == (latents.shape[1], features.shape[1]):
                    latents.copy_(features @ torch.from_numpy(matrix).to(features).T)

    def tuned(self, preset: Quality) -> Quality:
        """``preset`` with this start's learning rates."""
        return dataclasses.replace(preset, latent_learning_rate=self.rates.latent * preset.latent_learning_rate,
                                   decoder_learning_rate=self.rates.decoder * preset.decoder_learning_rate)

    def without_decoder(self) -> LearnedStart:
        """This start less its decoder weights: the fit begins from the untrained decoder, with this start's steps,
        prior scales, latent map and learning rates."""
        return dataclasses.replace(self, parameters={name: values for name, values in self.parameters.items()
                                                     if not name.startswith(_DECODER)})

    def with_latent_maps(self, maps: list[np.ndarray]) -> LearnedStart:
        """This start with the latent maps ``maps`` (one (C_l, channels + 1) matrix per level)."""
        return dataclasses.replace(self, parameters={**self.parameters, **{
            f"{_LATENT_MAP}{number}": matrix.astype(np.float32) for number, matrix in enumerate(maps)}})


def latent_features(field: LatentField, target: torch.Tensor) -> list[torch.Tensor]:
    """What the latent map reads at each lattice point of each level: the target's mean over the voxels it
    interpolates to, weighted like the interpolation, and a 1: (M_l, channels + 1) per level."""
    rows = torch.arange(target.shape[0], device=target.device)
    ones = torch.ones((target.shape[0], 1), dtype=target.dtype, device=target.device)
    features = []
    for level in field.levels:
        spread = level.interpolation_operator(rows).transpose
        weight = (spread @ ones).clamp(min=1e-6)
        features.append(torch.cat([(spread @ target) / weight, torch.ones_like(weight)], dim=1))
    return features


def find_start(kind: str, architecture: Architecture, rate_lambda: float,
               path: str | os.PathLike | None = None) -> LearnedStart | None:
    """The learned start for a keyframe fit of grids of ``kind`` coded with ``architecture`` at rate weight
    ``rate_lambda``: the one trained at that rate weight; else the one trained without a recorded rate weight (files
    before ``neuralvox-starts/3``: it serves every rate weight); else the one trained at the rate weight nearest in
    ratio. None when there is none, or when the one found is a record that training kept the untrained start."""
    found = load_starts(Path(path) if path is not None else STARTS_FILE)
    if (kind, architecture, rate_lambda) in found:
        return found[(kind, architecture, rate_lambda)]
    if (kind, architecture, None) in found:
        return found[(kind, architecture, None)]
    trained_at = [rate for (k, a, rate) in found if (k, a) == (kind, architecture) and rate is not None]
    if not trained_at:
        return None
    nearest = min(trained_at, key=lambda rate: (abs(np.log(rate / rate_lambda)), rate))
    return found[(kind, architecture, nearest)]


@functools.lru_cache(maxsize=4)
def load_starts(path: Path = STARTS_FILE) -> dict[StartKey, LearnedStart | None]:
    """Every start in a starts file by kind, architecture and rate weight (None where the file records that training
    kept the untrained start), checked against its checksum; LearnedStartError (one line naming the file) when it
    is missing, damaged or not a starts file."""
    manifest, payload = _read(path)
    try:
        return _parse(manifest, payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise LearnedStartError(f"{path}: not a valid {FILE_FORMAT} file ({exc}); {_ADVICE}") from None


def starts_provenance(path: Path = STARTS_FILE) -> dict[str, Any]:
    """How a starts file's starts were trained, as ``train/train_starts.py`` recorded it."""
    return dict(_read(path)[0].get("provenance", {}))


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    """A starts file's manifest and tensor payload, checked."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise LearnedStartError(f"{path}: cannot read the learned starts ({exc.strerror}); {_ADVICE}") from None
    head = len(_MAGIC) + _DIGEST
    if not data.startswith(_MAGIC) or len(data) < head:
        raise LearnedStartError(f"{path}: not a {FILE_FORMAT} file; {_ADVICE}")
    body = data[head:]
    if hashlib.sha256(body).digest() != data[len(_MAGIC):head]:
        raise LearnedStartError(f"{path}: learned starts are damaged (checksum mismatch); {_ADVICE}")
    try:
        text = zlib.decompress(body)
        manifest_size = int.from_bytes(text[:8], "little")
        manifest = json.loads(text[8:8 + manifest_size])
        if not isinstance(manifest, dict):
            raise ValueError("the manifest is not an object")
    except (ValueError, zlib.error) as exc:
        raise LearnedStartError(f"{path}: not a valid {FILE_FORMAT} file ({exc}); {_ADVICE}") from None
    return manifest, text[8 + manifest_size:]


def save_starts(path: str | os.PathLike, starts: list[LearnedStart], provenance: dict[str, Any],
                force: bool = False, untrained: tuple[StartKey, ...] = ()) -> None:
    """Write ``starts`` (and a record of how they were trained) to ``path``, checksummed, atomically; ``untrained``
    lists the (kind, architecture, rate weight) for which training kept the untrained start (``find_start`` gives
    None there rather than a start trained at another rate weight).

    Layout: magic, SHA-256 of the rest, then zlib of (manifest length (8 bytes, little-endian), JSON manifest,
    float32 little-endian tensors end to end); the manifest gives each start's learning rates, rate weight (when
    recorded) and each tensor's offset and shape, and each untrained key as an entry with ``"untrained": true`` and
    no tensors (``neuralvox-starts/2``: no rate weights nor untrained entries; ``/1``: no learning rates either)."""
    entries, blobs, offset = [], [], 0
    for kind, architecture, rate_lambda in untrained:
        entries.append({"kind": kind, "architecture": architecture.to_json(), "rate_lambda": rate_lambda,
                        "untrained": True})
    for start in starts:
        tensors = {}
        for name, values in sorted(start.parameters.items()):
            blob = np.ascontiguousarray(values, dtype="<f4").tobytes()
            tensors[name] = {"offset": offset, "shape": list(np.shape(values))}
            blobs.append(blob)
            offset += len(blob)
        entries.append({"kind": start.kind, "architecture": start.architecture.to_json(), "tensors": tensors,
                        "rates": start.rates.to_json(), "rate_lambda": start.rate_lambda})
    manifest = json.dumps({"format": FILE_FORMAT, "provenance": provenance, "starts": entries},
                          sort_keys=True).encode()
    body = zlib.compress(len(manifest).to_bytes(8, "little") + manifest + b"".join(blobs), 9)
    with atomic_output(path, force=force) as tmp:
        tmp.write_bytes(_MAGIC + hashlib.sha256(body).digest() + body)
    load_starts.cache_clear()


def _parse(manifest: dict[str, Any], payload: bytes) -> dict[StartKey, LearnedStart | None]:
    if manifest.get("format") not in _READABLE_FORMATS:
        raise ValueError(f"format {manifest.get('format')!r}")
    recorded = manifest["format"] == FILE_FORMAT
    starts: dict[StartKey, LearnedStart | None] = {}
    for entry in manifest["starts"]:
        kind = str(entry["kind"])
        if kind not in GRID_KINDS:
            raise ValueError(f"unknown grid kind {kind!r}")
        architecture = Architecture.from_json(entry["architecture"])
        rate_lambda = _rate_weight(entry.get("rate_lambda")) if recorded else None
        key = (kind, architecture, rate_lambda)
        if key in starts:
            raise ValueError(f"two {kind} starts for one architecture and rate weight")
        if recorded and entry.get("untrained", False) is True:
            if rate_lambda is None:
                raise ValueError(f"an untrained {kind} entry without a rate weight")
            starts[key] = None
            continue
        parameters = {}
        for name, tensor in entry["tensors"].items():
            shape = tuple(int(n) for n in tensor["shape"])
            start, count = int(tensor["offset"]), int(np.prod(shape, dtype=np.int64))
            if start < 0 or start + 4 * count > len(payload):
                raise ValueError(f"tensor {name!r} lies outside the payload")
            parameters[str(name)] = np.frombuffer(payload, "<f4", count, start).astype(np.float32).reshape(shape)
        if not all(np.isfinite(values).all() for values in parameters.values()):
            raise ValueError(f"the {kind} start holds non-finite values")
        rates = FitRates.from_json(entry["rates"]) if "rates" in entry else FitRates()
        starts[key] = LearnedStart(kind, architecture, parameters, rates, rate_lambda)
    return starts


def _rate_weight(value: Any) -> float | None:
    if value is None:
        return None
    rate_lambda = float(value)
    if not (np.isfinite(rate_lambda) and rate_lambda > 0):
        raise ValueError(f"rate weight {value!r} out of range")
    return rate_lambda

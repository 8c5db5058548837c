"""The compiled per-pass loops of the bounded codec give the numpy reference's bits: streams, values, features."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import without_compiled
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bounded import random_grid
from test_time_mode import rough_pair

from neuralvox.codec import arm, bounded, context_coder, interpolation, kernels, temporal
from neuralvox.codec.arm import FEATURES, ArmWeights, Layer
from neuralvox.codec.bounded import TrainingPass, decode_bounded, encode_bounded
from neuralvox.codec.temporal import TimeReference

USERS = (interpolation, bounded, arm, context_coder, temporal)


def test_the_compiled_loops_are_built() -> None:
    assert kernels.compiled is not None, "neuralvox._bounded is not built: run make setup"


def reference(monkeypatch: pytest.MonkeyPatch, run):
    """``run()`` with the compiled loops switched off: the numpy reference throughout."""
    return without_compiled(monkeypatch, USERS, run)


def random_weights(seed: int, hidden: int, exponents: tuple[int, int] = (9, 13)) -> ArmWeights:
    """An integer MLP (a fitted one would take seconds); its exponents drawn from ``exponents``: the default spreads its
    outputs over much of the lattice."""
    rng = np.random.default_rng(seed)
    widths = [FEATURES, hidden, hidden, 3]
    return ArmWeights(tuple(Layer(rng.integers(-2000, 2000, (a, b)).astype(np.int16),
                                  rng.integers(-1000, 1000, b).astype(np.int32), int(rng.integers(*exponents)))
                            for a, b in zip(widths[:-1], widths[1:], strict=True)))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), box=st.integers(1, 18), fill=st.floats(0.05, 1.0),
       scale=st.sampled_from([1e-6, 1.0, 3e4]), relative=st.sampled_from([1e-1, 1e-3, 1e-5]),
       channels=st.sampled_from([1, 3]), level_set=st.booleans(), neural=st.booleans())
def test_compiled_and_numpy_paths_write_and_read_the_same_bits(monkeypatch: pytest.MonkeyPatch, seed: int, box: int,
                                                               fill: float, scale: float, relative: float,
                                                               channels: int, level_set: bool, neural: bool) -> None:
    ijk, values = random_grid(seed, box, fill, scale, channels)
    background = 3.0 * scale if level_set else 0.1 * scale * (seed % 2)
    context = random_weights(seed, 8) if neural else None

    def encode() -> tuple[bounded.BoundedCode, list[TrainingPass]]:
        record: list[TrainingPass] = []
        code = encode_bounded(ijk, values, relative * scale, background=background, inactive_known=not level_set,
                              context=context, record=record)
        return code, record

    fast, fast_record = encode()
    slow, slow_record = reference(monkeypatch, encode)
    assert fast.stream == slow.stream and fast.header == slow.header
    assert np.array_equal(fast.decoded.view(np.uint32), slow.decoded.view(np.uint32))
    for a, b in zip(fast_record, slow_record, strict=True):
        assert np.array_equal(a.features, b.features) and np.array_equal(a.codes, b.codes)
    header = dataclasses.replace(slow.header, context_frame=0 if neural else None)
    decoded = decode_bounded(ijk, header, slow.stream, context)
    assert np.array_equal(decoded.view(np.uint32), slow.decoded.view(np.uint32))


def test_lattice_equals_the_float_matrix_product_on_extreme_features(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    features = rng.integers(-40, 40, (50_000, FEATURES))
    for weights in (random_weights(7, 32), random_weights(8, 32, (-6, 4))):  # right and left shifts
        lattice = weights.lattice(features)
        assert np.array_equal(lattice, reference(monkeypatch, lambda weights=weights: weights.lattice(features)))
    assert len(np.unique(random_weights(7, 32).lattice(features))) > 150  # outputs spread: a real comparison


def test_grouping_by_context_matches_a_stable_argsort(monkeypatch: pytest.MonkeyPatch) -> None:
    contexts = np.random.default_rng(2).integers(3, 5000, 100_000)
    fast = context_coder.group_by_context(contexts)
    slow = reference(monkeypatch, lambda: context_coder.group_by_context(contexts))
    assert [key for key, _ in fast] == [key for key, _ in slow]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(fast, slow, strict=True))


@pytest.mark.parametrize("box", [7, 40])
def test_the_visiting_plan_matches_the_reference(monkeypatch: pytest.MonkeyPatch, box: int) -> None:
    ijk, _ = random_grid(box, box, 0.3, 1.0, 1)
    fast = interpolation.plan_levels(ijk)
    slow = reference(monkeypatch, lambda: interpolation.plan_levels(ijk))
    assert fast.shape == slow.shape and np.array_equal(fast.flat, slow.flat)
    assert [(p.level, p.axes) for p in fast.passes] == [(p.level, p.axes) for p in slow.passes]
    assert all(np.array_equal(a.rows, b.rows) for a, b in zip(fast.passes, slow.passes, strict=True))
    assert len(fast.passes) > 7  # several levels: a real comparison


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), box=st.integers(2, 14), fill=st.floats(0.1, 1.0),
       scale=st.sampled_from([1e-6, 1.0, 3e4]), relative=st.sampled_from([1e-1, 1e-3, 1e-5]),
       channels=st.sampled_from([1, 3]), change=st.sampled_from([0.0, 1e-3, 1.0]))
def test_the_time_mode_writes_the_same_bits_on_both_paths(monkeypatch: pytest.MonkeyPatch, seed: int, box: int,
                                                          fill: float, scale: float, relative: float, channels: int,
                                                          change: float) -> None:
    """The compiled leaf choice charges the same costs as numpy's, so the same leaves are picked."""
    first, values, second, next_values = rough_pair(seed, box, fill, scale, channels, (1, -1, 2), change)
    bound = relative * scale
    previous = encode_bounded(first, values, bound)
    moved = TimeReference(0, first, previous.decoded)
    code = encode_bounded(second, next_values, bound, reference=moved)
    again = reference(monkeypatch, lambda: encode_bounded(second, next_values, bound, reference=moved))
    assert code.stream == again.stream and code.header == again.header

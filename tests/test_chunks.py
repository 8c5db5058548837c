"""Spatial chunks: the split of a voxel set, and bounded values coded chunk by chunk."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neuralvox.codec import bounded, chunked
from neuralvox.codec.chunks import ChunkLimits, split_voxels
from neuralvox.codec.interpolation import block_region, plan_levels
from neuralvox.grid import SparseGrid
from neuralvox.sim.turbulence import turbulent_frame

SMALL = ChunkLimits(max_voxels=6000, max_box=1 << 22, block_shift=3)


@pytest.fixture(scope="module")
def smoke() -> SparseGrid:
    return turbulent_frame(40_000, seed=3).sorted()


def test_a_small_grid_is_one_chunk(smoke: SparseGrid) -> None:
    chunks = split_voxels(smoke.ijk)
    assert len(chunks) == 1
    assert np.array_equal(chunks.rows[0], np.arange(smoke.voxel_count))


def test_split_partitions_the_voxels_into_compact_block_aligned_chunks(smoke: SparseGrid) -> None:
    chunks = split_voxels(smoke.ijk, SMALL)
    assert len(chunks) > 3
    every = np.concatenate(chunks.rows)
    assert np.array_equal(np.sort(every), np.arange(smoke.voxel_count))
    block_chunk: dict[tuple[int, ...], int] = {}
    for index, rows in enumerate(chunks.rows):
        assert np.all(np.diff(rows) > 0)
        blocks = np.unique(smoke.ijk[rows] >> SMALL.block_shift, axis=0)
        assert len(rows) <= SMALL.max_voxels or len(blocks) == 1
        for block in map(tuple, blocks):
            assert block_chunk.setdefault(block, index) == index  # a block never straddles two chunks
        low, high = chunks.boxes[index]
        assert np.array_equal(smoke.ijk[rows].min(axis=0), low) and np.array_equal(smoke.ijk[rows].max(axis=0), high)


def test_split_depends_on_the_voxel_set_not_its_order(smoke: SparseGrid) -> None:
    order = np.random.default_rng(1).permutation(smoke.voxel_count)
    first = split_voxels(smoke.ijk, SMALL)
    second = split_voxels(smoke.ijk[order], SMALL)
    as_sets = [{tuple(v) for v in smoke.ijk[r]} for r in first.rows]
    assert as_sets == [{tuple(v) for v in smoke.ijk[order][r]} for r in second.rows]


def test_touching_finds_the_chunks_a_box_meets(smoke: SparseGrid) -> None:
    chunks = split_voxels(smoke.ijk, SMALL)
    voxel = smoke.ijk[len(smoke.ijk) // 2]
    touched = chunks.touching(tuple(voxel), tuple(voxel))
    holding = [i for i, rows in enumerate(chunks.rows) if np.any(np.all(smoke.ijk[rows] == voxel, axis=1))]
    assert holding and set(holding) <= set(touched) and len(touched) < len(chunks)
    assert chunks.touching((10**6,) * 3, (10**6 + 1,) * 3) == []


def _code(grid: SparseGrid, limits: ChunkLimits, bound: float):
    chunks = split_voxels(grid.ijk, limits)
    coarse = chunked.encode_coarse(grid, bound) if len(chunks) > 1 else None
    layer = None if coarse is None else coarse.layer
    codes = [chunked.encode_chunk(grid, chunks, i, bound, coarse=layer) for i in reversed(range(len(chunks)))]
    return chunks, chunked.assemble(grid, chunks, codes, limits, coarse)


def test_one_chunk_codes_exactly_as_the_bounded_codec(smoke: SparseGrid) -> None:
    _, (header, streams, decoded) = _code(smoke, ChunkLimits(), 1e-3)
    reference = bounded.encode_grid(smoke, 1e-3)
    assert header == reference.header and streams == {"values": reference.stream}
    assert np.array_equal(decoded, reference.decoded)


def test_chunks_decode_alone_within_the_bound(smoke: SparseGrid) -> None:
    chunks, (header, streams, decoded) = _code(smoke, SMALL, 1e-3)
    assert header.to_dict()["format"] == chunked.FORMAT and sorted(streams) == sorted(chunked.stream_names(header))
    assert np.abs(decoded - smoke.values).max() <= 1e-3
    found = chunked.chunks_of(smoke.ijk, header)
    layer = chunked.decode_coarse(smoke.ijk, header, streams[chunked.COARSE_STREAM], None)
    coarse = chunked.coarse_rows(smoke.ijk)
    assert len(coarse) == header.coarse.voxels and np.array_equal(layer.values, decoded[coarse])
    for index in reversed(range(len(found))):  # any chunk alone, in any order, from the coarse layer
        values = chunked.decode_chunk(smoke.ijk, header, found, index, streams[chunked.chunk_stream(index)],
                                      coarse=layer)
        assert np.array_equal(values, decoded[chunks.rows[index]])
    with pytest.raises(ValueError, match="coarse layer"):
        chunked.decode_chunk(smoke.ijk, header, found, 0, streams[chunked.chunk_stream(0)])


def test_the_coarse_layer_saves_bits_at_chunk_faces(smoke: SparseGrid) -> None:
    chunks, (header, streams, _) = _code(smoke, SMALL, 1e-3)
    alone = [bounded.encode_bounded(smoke.ijk[r], smoke.values[r], 1e-3, background=smoke.background,
                                    known_blocks=SMALL.block_shift) for r in chunks.rows]  # neuralvox-chunked/2
    assert sum(map(len, streams.values())) < sum(len(code.stream) for code in alone)
    assert header.coarse.max_level == 2 and header.coarse.bounds[0] < 1e-3  # the coarse levels' tighter pass bounds


def test_chunks_know_the_inactive_voxels_of_their_own_blocks(smoke: SparseGrid) -> None:
    chunks = split_voxels(smoke.ijk, SMALL)
    rows = chunks.rows[1]
    part = smoke.ijk[rows]
    plan = plan_levels(part)
    region = block_region(plan, part, SMALL.block_shift).reshape(plan.shape)
    cells = np.argwhere(region) + np.array(plan.corner)
    own_blocks = {tuple(b) for b in np.unique(part >> SMALL.block_shift, axis=0)}
    assert {tuple(b) for b in np.unique(cells >> SMALL.block_shift, axis=0)} == own_blocks
    assert len(cells) < region.size  # the box reaches into blocks of other chunks, left unknown
    # knowing them saves bits over leaving every inactive voxel unknown (neuralvox-chunked/1)
    known = bounded.encode_bounded(part, smoke.values[rows], 1e-3, background=smoke.background,
                                   known_blocks=SMALL.block_shift)
    unknown = bounded.encode_bounded(part, smoke.values[rows], 1e-3, background=smoke.background,
                                     inactive_known=False)
    assert len(known.stream) < len(unknown.stream)


def test_chunks_of_the_first_format_still_decode(smoke: SparseGrid) -> None:
    chunks = split_voxels(smoke.ijk, SMALL)
    codes = [bounded.encode_bounded(smoke.ijk[r], smoke.values[r], 1e-3, background=smoke.background,
                                    inactive_known=False) for r in chunks.rows]
    header = chunked.ChunkedHeader.from_dict({
        "format": "neuralvox-chunked/1", "voxels": smoke.voxel_count, "max_voxels": SMALL.max_voxels,
        "max_box": SMALL.max_box, "block_shift": SMALL.block_shift, "chunks": [c.header.to_dict() for c in codes]})
    assert chunked.known_blocks(header) is None
    for index, code in enumerate(codes):
        values = chunked.decode_chunk(smoke.ijk, header, chunks, index, code.stream)
        assert np.array_equal(values, code.decoded)


def test_chunks_of_the_second_format_still_decode(smoke: SparseGrid) -> None:
    chunks = split_voxels(smoke.ijk, SMALL)
    codes = [bounded.encode_bounded(smoke.ijk[r], smoke.values[r], 1e-3, background=smoke.background,
                                    known_blocks=SMALL.block_shift) for r in chunks.rows]
    header = chunked.ChunkedHeader.from_dict({
        "format": "neuralvox-chunked/2", "voxels": smoke.voxel_count, "max_voxels": SMALL.max_voxels,
        "max_box": SMALL.max_box, "block_shift": SMALL.block_shift, "chunks": [c.header.to_dict() for c in codes]})
    assert header.coarse is None and chunked.known_blocks(header) == SMALL.block_shift
    assert chunked.COARSE_STREAM not in chunked.stream_names(header)
    for index, code in enumerate(codes):
        values = chunked.decode_chunk(smoke.ijk, header, chunks, index, code.stream)
        assert np.array_equal(values, code.decoded)


def test_a_vector_grid_codes_in_chunks() -> None:
    base = turbulent_frame(20_000, seed=5).sorted()
    values = np.stack([base.values, -base.values, 2 * base.values], axis=1)
    grid = SparseGrid(name="vel", ijk=base.ijk, values=values, value_type="vec3s", background=(0.0, 0.0, 0.0))
    _, (header, _, decoded) = _code(grid, ChunkLimits(4000, 1 << 22, 3), 0.01)
    assert len(header.chunks) > 1 and decoded.shape == values.shape
    assert np.abs(decoded - values).max() <= 0.01


def test_a_header_that_disagrees_with_the_topology_is_refused(smoke: SparseGrid) -> None:
    _, (typed, _, _) = _code(smoke, SMALL, 1e-3)
    header = typed.to_dict()
    parse = chunked.ChunkedHeader.from_dict
    with pytest.raises(ValueError, match="chunks"):
        chunked.chunks_of(smoke.ijk, parse({**header, "chunks": header["chunks"][:-1]}))
    with pytest.raises(ValueError, match="voxels"):
        chunked.chunks_of(smoke.ijk[:-1], typed)
    with pytest.raises(ValueError, match="max_voxels"):
        chunked.chunks_of(smoke.ijk, parse({**header, "max_voxels": -4}))
    with pytest.raises(ValueError, match="chunks"):
        chunked.chunks_of(smoke.ijk, parse({**header, "chunks": "many"}))
    with pytest.raises(ValueError, match="context frames"):
        parse({**header, "chunks": [{**header["chunks"][0], "context_frame": 3}, *header["chunks"][1:]]})
    with pytest.raises(ValueError, match="no coarse layer"):
        parse({k: v for k, v in header.items() if k != "coarse"})
    with pytest.raises(ValueError, match="coarse layer names another context frame"):
        parse({**header, "coarse": {**header["coarse"], "context_frame": 3}})
    with pytest.raises(ValueError, match="voxels"):  # a coarse layer the topology does not give
        chunked.decode_coarse(np.delete(smoke.ijk, chunked.coarse_rows(smoke.ijk)[0], axis=0), typed, b"", None)


def test_a_fit_sample_of_a_chunked_grid_is_its_middle_chunk_coded_as_the_archive_codes_it(smoke: SparseGrid) -> None:
    assert chunked.sample_piece(smoke).grid is smoke and chunked.sample_piece(smoke).share == 1.0
    chunks = split_voxels(smoke.ijk, SMALL)
    piece = chunked.sample_piece(smoke, SMALL)
    middle = chunks.rows[len(chunks) // 2]
    assert np.array_equal(piece.grid.ijk, smoke.ijk[middle]) and piece.share == len(middle) / smoke.voxel_count
    layer = chunked.encode_coarse(smoke, 1e-3).layer
    assert piece.encode(1e-3).stream == chunked.encode_chunk(smoke, chunks, len(chunks) // 2, 1e-3, coarse=layer).stream


def test_the_coarse_layer_takes_the_shorter_of_the_two_context_models(smoke: SparseGrid) -> None:
    from neuralvox.codec.arm_fit import train_context, training_codes

    features, codes, _ = training_codes([chunked.sample_piece(smoke, SMALL)], 1e-3)
    weights = train_context(features, codes, 8, iterations=20)
    counting = chunked.encode_coarse(smoke, 1e-3)
    chosen = chunked.encode_coarse(smoke, 1e-3, chunked.ChunkContext(weights, 7))
    rows = chunked.coarse_rows(smoke.ijk)
    neural = bounded.encode_bounded(smoke.ijk[rows] >> chunked.COARSE_LEVEL, smoke.values[rows],
                                    counting.header.bounds, shrink=counting.header.shrink, context=weights,
                                    max_level=counting.header.max_level)
    assert counting.header.context_frame is None
    assert len(chosen.stream) == min(len(counting.stream), len(neural.stream))
    assert chosen.header.context_frame == (None if len(counting.stream) <= len(neural.stream) else 7)
    _, (header, _, _) = _code(smoke, SMALL, 1e-3)
    header = dataclasses.replace(header, coarse=chosen.header)
    layer = chunked.decode_coarse(smoke.ijk, header, chosen.stream, weights)
    assert np.array_equal(layer.ijk, smoke.ijk[rows]) and np.array_equal(layer.values, chosen.layer.values)


@pytest.fixture(scope="module")
def chunk_model(smoke: SparseGrid):
    """A neural context model fitted (briefly) to a chunk's codes, as compress fits the grid's."""
    from neuralvox.codec.arm_fit import train_context, training_codes

    features, codes, _ = training_codes([chunked.sample_piece(smoke, SMALL)], 1e-3)
    return train_context(features, codes, 8, iterations=20)


def _coarse_options(grid: SparseGrid, bound: float, weights, own):
    """The coarse layer's codings under the counting model, the grid's model and its own, coded independently."""
    rows = chunked.coarse_rows(grid.ijk)
    counting = chunked.encode_coarse(grid, bound)
    return [bounded.encode_bounded(grid.ijk[rows] >> chunked.COARSE_LEVEL, grid.values[rows], counting.header.bounds,
                                   shrink=counting.header.shrink, context=model, max_level=counting.header.max_level,
                                   background=grid.background)
            for model in (None, weights, own)]


def test_the_coarse_layer_takes_the_shortest_of_three_models_its_own_counted(
        smoke: SparseGrid, chunk_model, monkeypatch: pytest.MonkeyPatch) -> None:
    from neuralvox.codec import arm_fit

    monkeypatch.setattr(arm_fit, "HIDDEN_WIDTHS", ((8, 0),))  # the smoke's layer is below the least width's voxels
    chosen = chunked.encode_coarse(smoke, 1e-3, chunked.ChunkContext(chunk_model, 7))
    record: list[bounded.TrainingPass] = []
    rows = chunked.coarse_rows(smoke.ijk)
    counting = chunked.encode_coarse(smoke, 1e-3)
    bounded.encode_bounded(smoke.ijk[rows] >> chunked.COARSE_LEVEL, smoke.values[rows], counting.header.bounds,
                           shrink=counting.header.shrink, max_level=counting.header.max_level, record=record,
                           background=smoke.background)
    own = arm_fit.layer_model(record)
    assert own is not None
    sizes = [len(c.stream) for c in _coarse_options(smoke, 1e-3, chunk_model, own)]
    sizes[2] += len(own.to_bytes())
    assert chosen.size == min(sizes)
    expected = sizes.index(min(sizes))
    assert (chosen.model is not None) == (expected == 2) and chosen.header.context_frame == (None if expected == 0
                                                                                              else 7)
    if chosen.model is not None:
        assert chosen.model.to_bytes() == own.to_bytes()
    # the grid's own fit is never repeated for the layer where the grid has no neural model, nor where it is not asked
    assert chunked.encode_coarse(smoke, 1e-3).model is None
    assert chunked.encode_coarse(smoke, 1e-3, chunked.ChunkContext(chunk_model, 7), own_model=False).model is None
    monkeypatch.setattr(arm_fit, "HIDDEN_WIDTHS", ((8, 10**9),))
    assert arm_fit.layer_model(record) is None


def test_a_coarse_layer_under_its_own_model_decodes(smoke: SparseGrid, chunk_model,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from neuralvox.codec import arm_fit

    monkeypatch.setattr(arm_fit, "HIDDEN_WIDTHS", ((8, 0),))
    chunks = split_voxels(smoke.ijk, SMALL)
    counting = chunked.encode_coarse(smoke, 1e-3)
    record: list[bounded.TrainingPass] = []
    rows = chunked.coarse_rows(smoke.ijk)
    args = (smoke.ijk[rows] >> chunked.COARSE_LEVEL, smoke.values[rows], counting.header.bounds)
    options = dict(shrink=counting.header.shrink, max_level=counting.header.max_level, background=smoke.background)
    bounded.encode_bounded(*args, **options, record=record)
    own = arm_fit.layer_model(record)
    code = bounded.encode_bounded(*args, **options, context=own)
    coarse = chunked.CoarseCode(dataclasses.replace(code.header, context_frame=7), code.stream,
                                chunked.CoarseLayer(smoke.ijk[rows], code.decoded), model=own)
    context = chunked.ChunkContext(chunk_model, 7)
    codes = [chunked.encode_chunk(smoke, chunks, i, 1e-3, context, coarse.layer) for i in range(len(chunks))]
    header, streams, decoded = chunked.assemble(smoke, chunks, codes, SMALL, coarse)
    assert header.coarse_own_model and chunked.COARSE_MODEL_STREAM in streams
    assert sorted(streams) == sorted(chunked.stream_names(header))
    parsed = chunked.ChunkedHeader.from_dict(header.to_dict())
    assert parsed == header and parsed.to_dict()["format"] == "neuralvox-chunked/4"
    layer = chunked.decode_coarse(smoke.ijk, parsed, streams[chunked.COARSE_STREAM], chunk_model,
                                  streams[chunked.COARSE_MODEL_STREAM])
    assert np.array_equal(layer.values, code.decoded) and np.array_equal(layer.values, decoded[rows])
    for index in range(len(chunks)):
        values = chunked.decode_chunk(smoke.ijk, parsed, chunks, index, streams[chunked.chunk_stream(index)],
                                      chunk_model, layer)
        assert np.array_equal(values, decoded[chunks.rows[index]])
    assert np.abs(decoded - smoke.values).max() <= 1e-3
    with pytest.raises(ValueError, match="own context model"):  # the header says own, no model stream given
        chunked.decode_coarse(smoke.ijk, parsed, streams[chunked.COARSE_STREAM], chunk_model)
    as_dict = header.to_dict()
    with pytest.raises(ValueError, match="coarse_own_model"):
        chunked.ChunkedHeader.from_dict({**as_dict, "coarse_own_model": 1})
    with pytest.raises(ValueError, match="own model but names no context frame"):
        chunked.ChunkedHeader.from_dict({**as_dict, "coarse": {**as_dict["coarse"], "context_frame": None},
                                         "chunks": [{**c, "context_frame": None} for c in as_dict["chunks"]]})


def test_chunks_of_the_third_format_still_decode(smoke: SparseGrid) -> None:
    chunks, (header, streams, decoded) = _code(smoke, SMALL, 1e-3)
    as_dict = header.to_dict()
    assert as_dict.pop("coarse_own_model") is False
    third = chunked.ChunkedHeader.from_dict({**as_dict, "format": "neuralvox-chunked/3"})
    assert not third.coarse_own_model and "coarse_own_model" not in third.to_dict()
    assert chunked.stream_names(third) == chunked.stream_names(header)
    layer = chunked.decode_coarse(smoke.ijk, third, streams[chunked.COARSE_STREAM], None)
    for index in range(len(chunks)):
        values = chunked.decode_chunk(smoke.ijk, third, chunks, index, streams[chunked.chunk_stream(index)],
                                      coarse=layer)
        assert np.array_equal(values, decoded[chunks.rows[index]])


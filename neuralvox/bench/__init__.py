"""Benchmark: neuralvox against classic baselines on the same frames, with tables and rate-distortion plots.

``baselines``: OpenVDB, NanoVDB, ZFP, SZ3 and zstd codings of one frame; ``runner``: runs them and neuralvox with the
same metric code; ``compare``: rates at matched PSNR; ``result``/``table``/``plots``: the views of a run.
"""

from neuralvox.bench.baselines import BASELINE_METHODS, TOLERANCES, Baseline, Coded, baselines
from neuralvox.bench.compare import Comparison, bpv_at_psnr, compare_at_psnr, pareto_front
from neuralvox.bench.plots import plot
from neuralvox.bench.result import NEURALVOX, BenchPoint, BenchResult, GridBench, Match
from neuralvox.bench.runner import METHODS, BenchError, run_bench

__all__ = ["BASELINE_METHODS", "METHODS", "NEURALVOX", "TOLERANCES", "Baseline", "BenchError", "BenchPoint",
           "BenchResult", "Coded", "Comparison", "GridBench", "Match", "baselines", "bpv_at_psnr", "compare_at_psnr",
           "pareto_front", "plot", "run_bench"]

#!/usr/bin/env bash
# GPU readiness in one go: the cuda-marked tests, encode/decode throughput at 1M/10M/50M voxels, peak GPU memory.
#
# On a machine with a GPU and this project installed (make setup):   bash benchmarks/gpu_check.sh
# On the project's borrowed GPU machine (Python 3.12 with torch+CUDA, no OpenVDB, no warp-lang/constriction/zfpy/
# zstandard/pysz), carry their cp312 wheels in .whl/ first, from the repository root here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl warp-lang constriction zfpy zstandard pysz
# and run it with carry [".whl"]: the script installs them into /tmp/site. Without the OpenVDB binding the archive
# test (it writes a .vdb) is skipped and says so; the kernel and integer-stream tests and the benchmarks run.
# Results go to $OUT (or benchmarks/results/gpu): nvidia-smi, the test log, the throughput JSON lines.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
status=0
{ nvidia-smi; "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } \
  2>&1 | tee "$OUT/device.txt"
"$PYTHON" -m pytest -q -m cuda -rs -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/cuda_tests.log" \
  || status=1
timeout 420 "$PYTHON" benchmarks/gpu_throughput.py --sizes 1000000 10000000 50000000 --iterations 50 2>&1 \
  | tee "$OUT/gpu_throughput.jsonl" || status=1
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>&1 | tee -a "$OUT/device.txt"
exit $status

#!/usr/bin/env bash
# Installs everything neuralvox needs on Debian/Ubuntu: OpenVDB (apt), a .venv with torch (CPU pin) and the package.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libopenvdb-dev libboost-iostreams-dev libnanovdb-dev libopenvdb-tools cmake g++ python3-dev python3-venv)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "neuralvox needs Python >= 3.11"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch is pinned: 2.13.0 is the CPU build on the project's machines; an unpinned torch pulls GBs of CUDA packages.
"${PIP[@]}" "torch==${TORCH_VERSION:-2.13.0}"
"${PIP[@]}" "scikit-build-core>=0.10" "nanobind>=2.4"
# Ray is an optional extra for users (compress --ray); the test suite runs its Ray engine, so setup installs it.
"${PIP[@]}" --no-build-isolation -e ".[test,sim,bench,ray]"
.venv/bin/python -c "import neuralvox._bounded, neuralvox._topology, neuralvox._vdb as v; print('setup: neuralvox ready, OpenVDB', v.openvdb_version)"

#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the whole test suite. Tests that launch
# mpirun use the release executables built by setup.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DDP_BIN_DIR="$(swift build -c release --show-bin-path)"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
swift test "$@"

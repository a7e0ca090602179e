#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the whole test suite. Tests that launch
# mpirun use the release executables built by setup.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Test-only packages: a throwaway Slurm cluster on simulated nodes (MultiNodeTests).
test_packages=(slurmctld slurmd slurm-client munge)
missing=()
for p in "${test_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" -eq 0 ]; then
    echo "test: installing ${missing[*]}"
    # not fatal: without them the Slurm test is skipped (and says why)
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
        || echo "test: could not install ${missing[*]}; the Slurm test will be skipped" >&2
fi
export DDP_BIN_DIR="$(swift build -c release --show-bin-path)"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
swift test "$@"

#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh --torch: PyTorch is the reference the comparisons run
# against), then runs the whole test suite. Tests that launch mpirun use the release executables
# built by setup. Fails on any compiler warning in the project's own files.
set -euo pipefail
cd "$(dirname "$0")/.."
build_log="$(mktemp)"
trap 'rm -f "$build_log"' EXIT
scripts/setup.sh --torch 2>&1 | tee "$build_log"
# Test-only packages: a throwaway Slurm cluster on simulated nodes (MultiNodeTests).
test_packages=(slurmctld slurmd slurm-client munge)
missing=()
for p in "${test_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" -eq 0 ]; then
    echo "test: installing ${missing[*]}"
    # not fatal: without them the Slurm test is skipped (and says why)
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null; } \
        || echo "test: could not install ${missing[*]}; the Slurm test will be skipped" >&2
fi
if ! swift build --build-tests >>"$build_log" 2>&1; then
    grep -E "error:" "$build_log" | sort -u >&2 || true
    echo "test: the test build failed" >&2
    exit 1
fi
# Examples/: a package of its own on top of this one (ExampleTests runs its executables)
if ! swift build --package-path Examples >>"$build_log" 2>&1; then
    grep -E "error:" "$build_log" | sort -u >&2 || true
    echo "test: the build of Examples/ failed" >&2
    exit 1
fi
# A warning is only printed when its file compiles: a clean clone (CI) sees every one.
warnings="$(grep -F ": warning:" "$build_log" | grep -F "$PWD/" | grep -E "/(Sources|Tests|Examples)/" \
    | sort -u || true)"
if [ -n "$warnings" ]; then
    echo "$warnings" >&2
    echo "test: the build has $(echo "$warnings" | wc -l) compiler warning(s); the project stays warning-free" >&2
    exit 1
fi
export DDP_BIN_DIR="$(swift build -c release --show-bin-path)"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
swift test "$@"

#!/usr/bin/env bash
# Installs what SwiftDDP needs (only the Debian packages that are missing) and builds it in
# release mode. Idempotent: a second run installs nothing and rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(pkgconf openmpi-bin libopenmpi-dev libopenblas-dev libdnnl-dev zlib1g-dev dataset-fashion-mnist gnuplot-nox
          python3-venv python3-numpy)
# --torch: also Debian's PyTorch, the reference the comparisons and checkpoint interop run against.
if [ "${1:-}" = "--torch" ]; then packages+=(python3-torch); fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The project's Python: Debian's python3 (where python3-torch lives) in a virtual environment
# that sees its system packages, plus pip's safetensors and tensorboard (Debian has no package
# for them; Debian's python refuses pip installs of its own, PEP 668). Tests and Docs run
# .venv/bin/python.
pip_install() { .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@"; }
if ! .venv/bin/python -c "import safetensors.numpy, numpy" 2>/dev/null; then
    echo "setup: creating .venv (Debian's python3 with its packages, and safetensors from pip)"
    /usr/bin/python3 -m venv --system-site-packages .venv
    if ! pip_install safetensors; then
        # --torch asks for the PyTorch comparisons: without safetensors they would be skipped
        if [ "${1:-}" = "--torch" ]; then echo "setup: pip could not install safetensors into .venv" >&2; exit 1; fi
        echo "setup: warning: pip could not install safetensors into .venv" >&2
    fi
fi
# tensorboard: only the test that reads --tensorboard's event files back needs it
if [ -x .venv/bin/python ] && ! .venv/bin/python -c "import tensorboard.backend.event_processing.event_accumulator" \
        2>/dev/null; then
    echo "setup: installing tensorboard into .venv (pip)"
    pip_install tensorboard || echo "setup: warning: pip could not install tensorboard into .venv" >&2
fi

command -v swift >/dev/null || { echo "setup: the Swift toolchain (6.x) is not on PATH" >&2; exit 1; }
swift build -c release 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Linking|Write|Applying)' || true
test -x "$(swift build -c release --show-bin-path)/ddp" || { echo "setup: release build failed" >&2; exit 1; }
touch "$(swift build -c release --show-bin-path)/.launch-built"  # scripts/launch.sh: up to date
echo "setup: release build ready in $(swift build -c release --show-bin-path)"

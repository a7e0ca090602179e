#!/usr/bin/env bash
# Installs what SwiftDDP needs (only the Debian packages that are missing) and builds it in
# release mode. Idempotent: a second run installs nothing and rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(pkgconf openmpi-bin libopenmpi-dev libopenblas-dev zlib1g-dev dataset-fashion-mnist gnuplot-nox)
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

# Python's reference safetensors implementation, for the interoperability tests.
if ! python3 -c "import safetensors.numpy, numpy" 2>/dev/null; then
    echo "setup: installing the Python packages safetensors and numpy"
    python3 -m pip install --quiet safetensors numpy || echo "setup: warning: pip could not install safetensors" >&2
fi

command -v swift >/dev/null || { echo "setup: the Swift toolchain (6.x) is not on PATH" >&2; exit 1; }
swift build -c release 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Linking|Write|Applying)' || true
test -x "$(swift build -c release --show-bin-path)/ddp" || { echo "setup: release build failed" >&2; exit 1; }
touch "$(swift build -c release --show-bin-path)/.launch-built"  # scripts/launch.sh: up to date
echo "setup: release build ready in $(swift build -c release --show-bin-path)"

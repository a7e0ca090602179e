#!/usr/bin/env bash
# Measures how closely N ranks × batch B reproduce 1 rank × batch N·B (SyncBN), and how far
# local BN lands: 12 SGD-momentum steps on synthetic data, then the relative difference of all
# parameters and running statistics, and of the per-step losses.
# Usage: scripts/equivalence.sh [OUT_DIR]    (needs python3 with numpy and safetensors)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
common=(--synthetic --synthetic-train 512 --synthetic-test 256 --depth 2 --width 32 --activation tanh
        --lr 0.05 --momentum 0.9 --schedule constant --seed 3 --max-steps 12 --log-every 1)
for np in 1 2 4; do
    scripts/launch.sh -np "$np" -- train "${common[@]}" --batch-size $((32 / np)) --norm syncbn \
        --save "$out/sync$np.safetensors" --metrics "$out/sync$np.jsonl" >/dev/null
done
scripts/launch.sh -np 2 -- train "${common[@]}" --batch-size 16 --norm bn --save "$out/bn2.safetensors" >/dev/null
python3 - "$out" <<'PY'
import json, sys
import numpy as np
from safetensors.numpy import load_file
out = sys.argv[1]
def flat(name):
    t = load_file(f"{out}/{name}.safetensors")
    return np.concatenate([t[k].astype(np.float64).ravel() for k in sorted(t) if t[k].dtype == np.float32])
def losses(name):
    return np.array([json.loads(l)["loss"] for l in open(f"{out}/{name}.jsonl") if '"step"' in l])
ref, lref = flat("sync1"), losses("sync1")
for name, label in [("sync2", "SyncBN 2 ranks × 16"), ("sync4", "SyncBN 4 ranks × 8"),
                    ("bn2", "local BN 2 ranks × 16")]:
    x = flat(name)
    line = (f"{label} vs 1 rank × 32: parameters+buffers relative difference "
            f"{np.linalg.norm(x - ref) / np.linalg.norm(ref):.2e}")
    if name.startswith("sync"):
        l = losses(name)
        line += f", losses {np.linalg.norm(l - lref) / np.linalg.norm(lref):.2e}"
    print(line)
PY

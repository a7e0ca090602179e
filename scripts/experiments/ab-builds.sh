#!/usr/bin/env bash
# Two builds of `ddp` against each other: `ddp bench train` with the same options from build A and build B,
# alternating within each of ROUNDS rounds (default 5); prints the medians and B/A within each round. One rank,
# or NP ranks through scripts/launch.sh (then SyncBN's exchange and the gradient sync are printed too).
#   [NP=2] scripts/experiments/ab-builds.sh A_BIN_DIR B_BIN_DIR OUT_DIR [ddp bench train options…]
# e.g. keep a build with `mkdir /tmp/a && cp -L .build/release/ddp /tmp/a/`, change the code, rebuild, then
#   scripts/experiments/ab-builds.sh /tmp/a .build/release runs/ab --model cnn --batch-size 64 --steps 100
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 3 ] || { sed -n '2,7p' "$0" >&2; exit 64; }
a="$1" b="$2" out="$3"; shift 3
for dir in "$a" "$b"; do [ -x "$dir/ddp" ] || { echo "ab-builds: no ddp executable in $dir" >&2; exit 64; }; done
mkdir -p "$out"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
for round in $(seq 1 "${ROUNDS:-5}"); do
    echo "ab-builds: round $round" >&2
    # A first in odd rounds, B first in even ones: neither always runs on a machine the other warmed up
    order="a b"; [ $((round % 2)) -eq 0 ] && order="b a"
    for which in $order; do
        dir="$a"; [ "$which" = b ] && dir="$b"
        if [ "${NP:-1}" -gt 1 ]; then
            DDP_BIN_DIR="$dir" scripts/launch.sh -np "$NP" -- bench train --repeats 3 "$@" \
                --json "$out/$which.r$round.json" >/dev/null 2>&1 </dev/null
        else
            "$dir/ddp" bench train --repeats 3 "$@" --json "$out/$which.r$round.json" >/dev/null 2>&1 </dev/null
        fi
    done
done
python3 - "$out" "$a" "$b" <<'PY'
import glob, json, statistics, sys
out, a_dir, b_dir = sys.argv[1:]
rounds = sorted(int(f.split(".r")[1].split(".")[0]) for f in glob.glob(f"{out}/b.r*.json"))
runs = {w: [json.load(open(f"{out}/{w}.r{r}.json")) for r in rounds] for w in "ab"}
med = statistics.median
def kinds(run):
    l = run["layers_ms"]
    return {k: l["forward"][k] + l["backward"][k] for k in l["forward"]}
ratio = [b["samples_per_second"] / a["samples_per_second"] for a, b in zip(runs["a"], runs["b"])]
print(f"A = {a_dir}, B = {b_dir}; {len(rounds)} rounds, medians")
for w in "ab":
    r = runs[w]
    by_kind = {k: med(kinds(x)[k] for x in r) for k in kinds(r[0])}
    print(f"{w.upper()}: {med(x['samples_per_second'] for x in r):,.0f} samples/s, "
          f"step {med(x['step_ms'] for x in r):.2f} ms, "
          f"step / layer floor {med(x['step_over_layer_floor'] for x in r):.2f}; ms per step (fwd + bwd): "
          + ", ".join(f"{k} {v:.2f}" for k, v in by_kind.items() if v > 0)
          + (f"; SyncBN exchange {med(x['breakdown_ms']['syncbn_communication'] for x in r):.2f}, gradient sync "
             f"{med(x['breakdown_ms']['gradient_sync'] for x in r):.2f}" if r[0]["world_size"] > 1 else ""))
print(f"B / A samples/s: median {med(ratio):.3f} [{min(ratio):.3f}–{max(ratio):.3f}], per round "
      + " ".join(f"{x:.3f}" for x in ratio))
json.dump({"a": a_dir, "b": b_dir, "rounds": rounds, "b_over_a": ratio}, open(f"{out}/ab.json", "w"), indent=2)
PY

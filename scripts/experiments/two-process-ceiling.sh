#!/usr/bin/env bash
# How fast can two ranks be on this machine? Runs `ddp bench train` as one process alone, as two independent
# processes at once (one per core, nothing exchanged: the machine's ceiling for two ranks), and as a 2-rank job
# with SyncBN, interleaved over ROUNDS rounds; prints the medians and each round's ratios.
#   scripts/experiments/two-process-ceiling.sh OUT_DIR [ddp bench train options…]
# e.g. ROUNDS=5 scripts/experiments/two-process-ceiling.sh runs/ceiling --model resnet --batch-size 64 --steps 30
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$1"; shift
mkdir -p "$out"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bin="${DDP_BIN_DIR:-$PWD/.build/release}"
# an MPI singleton each, with its own session directory (two at once must not share one)
alone() {
    local dir; dir=$(mktemp -d)
    OMPI_MCA_orte_tmpdir_base="$dir" taskset -c "$1" "$bin/ddp" bench train --repeats 3 "${@:3}" --json "$2" \
        >/dev/null 2>&1 </dev/null
    rm -rf "$dir"
}
for round in $(seq 1 "${ROUNDS:-5}"); do
    echo "two-process-ceiling: round $round" >&2
    alone 0 "$out/one.r$round.json" "$@"
    alone 0 "$out/pair-a.r$round.json" "$@" & alone 1 "$out/pair-b.r$round.json" "$@" & wait
    DDP_BIN_DIR="$bin" scripts/launch.sh -np 2 -- bench train --repeats 3 "$@" --json "$out/ranks.r$round.json" \
        >/dev/null 2>&1 </dev/null
done
python3 - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
def sps(kind, r): return json.load(open(f"{out}/{kind}.r{r}.json"))["samples_per_second"]
rounds = sorted(int(f.split(".r")[1].split(".")[0]) for f in glob.glob(f"{out}/ranks.r*.json"))
one = [sps("one", r) for r in rounds]
pair = [sps("pair-a", r) + sps("pair-b", r) for r in rounds]
ranks = [sps("ranks", r) for r in rounds]
med = statistics.median
print(f"samples/s, median of {len(rounds)} rounds: one process {med(one):,.0f}; two independent processes "
      f"{med(pair):,.0f} ({med(p / o for p, o in zip(pair, one)):.2f}× one); 2 ranks with SyncBN {med(ranks):,.0f} "
      f"({med(k / o for k, o in zip(ranks, one)):.2f}× one, {med(k / p for k, p in zip(ranks, pair)):.2f}× the two "
      "independent processes)")
for r, o, p, k in zip(rounds, one, pair, ranks):
    print(f"round {r}: one {o:,.0f}, two independent {p:,.0f} ({p / o:.2f}×), 2 ranks {k:,.0f} ({k / o:.2f}×)")
PY

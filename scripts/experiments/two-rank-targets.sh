#!/usr/bin/env bash
# Issue #18's two-rank targets in one interleaved run: `ddp bench train` as one process, as two independent
# processes (one per core, nothing exchanged: the ceiling for two ranks here), as a 2-rank job with SyncBN and as
# one with local BN, ROUNDS rounds (default 5). Prints each ratio's median over rounds [min–max] and, per round,
# where the SyncBN job's exchange time went (communication_split_ms: transfer against waiting for the other rank).
# OUT_DIR must be new or empty; each run's stderr goes to a .log file beside its JSON.
#   scripts/experiments/two-rank-targets.sh OUT_DIR [ddp bench train options…]
# e.g. ROUNDS=5 scripts/experiments/two-rank-targets.sh runs/targets --model resnet --batch-size 64 --steps 30
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$1"; shift
mkdir -p "$out"
[ -z "$(ls -A "$out")" ] || { echo "two-rank-targets: $out is not empty" >&2; exit 2; }
rounds="${ROUNDS:-5}"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bin="${DDP_BIN_DIR:-$PWD/.build/release}"
# an MPI singleton each, with its own session directory (two at once must not share one)
alone() {
    local dir; dir=$(mktemp -d)
    local status=0
    OMPI_MCA_orte_tmpdir_base="$dir" taskset -c "$1" "$bin/ddp" bench train --repeats 3 "${@:3}" --json "$2" \
        >/dev/null 2>"${2%.json}.log" </dev/null || status=$?
    rm -rf "$dir"
    return "$status"
}
job() {
    DDP_BIN_DIR="$bin" scripts/launch.sh -np 2 -- bench train --repeats 3 "${@:2}" --json "$1" \
        >/dev/null 2>"${1%.json}.log" </dev/null
}
run() {  # one configuration of round $2
    case "$1" in
        one) alone 0 "$out/one.r$2.json" "${@:3}" ;;
        pair) alone 0 "$out/pair-a.r$2.json" "${@:3}" & local a=$!
              alone 1 "$out/pair-b.r$2.json" "${@:3}" & local b=$!
              wait "$a" && wait "$b" ;;
        sync) job "$out/sync.r$2.json" "${@:3}" --norm syncbn ;;
        local) job "$out/local.r$2.json" "${@:3}" --norm bn ;;
    esac
}
# Each round starts one configuration later, so that over 4 rounds every configuration runs once in each
# position (a VM's speed can drift within a round, e.g. under sustained load on both vCPUs).
configurations=(one pair sync local)
for round in $(seq 1 "$rounds"); do
    echo "two-rank-targets: round $round" >&2
    for k in 0 1 2 3; do run "${configurations[$(((round - 1 + k) % 4))]}" "$round" "$@"; done
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], range(1, int(sys.argv[2]) + 1)
med = statistics.median
def load(kind, r): return json.load(open(f"{out}/{kind}.r{r}.json"))
rows = []
for r in rounds:
    one, a, b, sync, local = (load(k, r) for k in ("one", "pair-a", "pair-b", "sync", "local"))
    sps = lambda j: j["samples_per_second"]
    split = sync["communication_split_ms"]
    bn, grad, lgrad = split["syncbn"], split["gradient_sync"], local["communication_split_ms"]["gradient_sync"]
    mean = lambda v: sum(v) / len(v)  # over the ranks
    rows.append(dict(round=r, one=sps(one), pair=sps(a) + sps(b), slower=2 * min(sps(a), sps(b)), sync=sps(sync),
                     local=sps(local), step=sync["step_ms"], bn_transfer=mean(bn["transfer_per_rank"]),
                     bn_waiting=mean(bn["waiting_per_rank"]), bn_stalls=mean(bn["waiting_in_stalls_per_rank"]),
                     grad_waiting=mean(grad["waiting_per_rank"]), local_grad_waiting=mean(lgrad["waiting_per_rank"]),
                     exchanges=bn["entries_per_step"]))
def ratio(f): return med(f(x) for x in rows), min(f(x) for x in rows), max(f(x) for x in rows)
def show(label, f, fmt="{:.2f}×"):
    m, lo, hi = ratio(f)
    print(f"{label}: {fmt.format(m)} [{fmt.format(lo)}–{fmt.format(hi)}]")
print(f"samples/s, medians of {len(rows)} rounds: one process {med(x['one'] for x in rows):,.0f}, two independent "
      f"{med(x['pair'] for x in rows):,.0f}, 2 ranks SyncBN {med(x['sync'] for x in rows):,.0f}, "
      f"2 ranks local BN {med(x['local'] for x in rows):,.0f}")
show("two independent processes / one", lambda x: x["pair"] / x["one"])
show("twice the slower independent process / one", lambda x: x["slower"] / x["one"])
show("2 ranks SyncBN / one", lambda x: x["sync"] / x["one"])
show("2 ranks SyncBN / twice the slower independent", lambda x: x["sync"] / x["slower"])
show("2 ranks local BN / one", lambda x: x["local"] / x["one"])
show("SyncBN's cost over local BN (step time)", lambda x: (x["local"] / x["sync"] - 1) * 100, "{:+.1f}%")
print("ms per step, mean over ranks (SyncBN job: its exchanges' transfer, waiting, waiting in stalls over 0.5 ms; "
      "gradient-sync waiting; local BN job: gradient-sync waiting):")
for x in rows:
    print(f"round {x['round']}: step {x['step']:.2f}, {x['exchanges']:.0f} SyncBN exchanges: transfer "
          f"{x['bn_transfer']:.3f}, waiting {x['bn_waiting']:.3f} (stalls {x['bn_stalls']:.3f}); gradient sync "
          f"waiting {x['grad_waiting']:.3f} | local BN gradient sync waiting {x['local_grad_waiting']:.3f}")
PY

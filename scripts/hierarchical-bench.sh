#!/usr/bin/env bash
# Measures the hierarchical gradient sync across 2 simulated nodes × 2 ranks (network
# namespaces, TCP between nodes): one MPI all-reduce over all 4 ranks (`--grad-sync flat`)
# against shared memory inside each node plus an all-reduce of half the gradient per rank
# between the nodes (`shared`, and `sharded`, the default), with local BN (so the gradient sync
# is the only communication) and SyncBN, on plain links and on links of 1 Gbit/s with 1 ms
# latency. Writes OUT/*.json (ddp bench train output) and prints a Markdown table of medians
# over ROUNDS (default 2) interleaved rounds.
#
#   scripts/hierarchical-bench.sh [OUT_DIR]     (default runs/hierarchical; STEPS=30 timed steps per repeat)
#
# Open MPI may use shared memory (vader) between the two ranks of a node, so the flat baseline
# is what it would be on a real cluster. Four ranks share this machine's cores with the
# kernel's TCP stack (and the link emulator), so absolute times are inflated; the comparison
# between sync modes in one round is the point.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/hierarchical}"
rounds="${ROUNDS:-2}"
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export DDP_NETNS_STATE="${DDP_NETNS_STATE:-/tmp/swiftddp-netns}"
swift build -c release >/dev/null

IFS='|' read -r shaper prefix <<< "$(scripts/netns-cluster.sh shaper)"

# name | netns-cluster.sh options
links=("plain|" "delay1ms-1gbit|$shaper|${prefix}delay 1ms rate 1gbit")
bench=(bench train --steps "${STEPS:-30}" --warmup 5 --repeats 3)
for link in "${links[@]}"; do
    IFS='|' read -r name option spec <<< "$link"
    shape=()
    [ -n "$option" ] && shape=("$option" "$spec")
    scripts/netns-cluster.sh run 2 "${shape[@]}" -- bash -c '
        set -e
        # vader too: ranks of one node reach each other through shared memory, as on a real cluster
        args="$(sed "s/btl tcp,self/btl tcp,vader,self/" "$DDP_NETNS_STATE/mpirun-args")"
        args+=" -np 4 --map-by ppr:2:node -x OPENBLAS_NUM_THREADS"
        for round in $(seq 1 '"$rounds"'); do
            for cfg in "bn flat" "bn shared" "bn sharded" "syncbn flat" "syncbn sharded"; do
                set -- $cfg
                mpirun $args '"$PWD"'/.build/release/ddp '"${bench[*]}"' --norm $1 --grad-sync $2 \
                    --json '"$out"'/'"$name"'-$1-$2.r$round.json
            done
        done' >/dev/null
done
echo "$shaper" > "$out/shaper"
python3 - "$out" "$shaper" "$rounds" <<'PY'
import json, statistics, sys
out, shaper, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
how = "tc netem" if shaper == "--qdisc" else "link emulator"
labels = {"plain": "veth, not shaped", "delay1ms-1gbit": f"1 ms, 1 Gbit/s ({how})"}
print("| link | norm | gradient sync | path | samples/s | step ms | gradient sync ms | SyncBN ms | optimizer ms |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for link, label in labels.items():
    for norm, sync in [("bn", "flat"), ("bn", "shared"), ("bn", "sharded"), ("syncbn", "flat"), ("syncbn", "sharded")]:
        runs = [json.load(open(f"{out}/{link}-{norm}-{sync}.r{r}.json")) for r in range(1, rounds + 1)]
        med = lambda f: statistics.median(f(r) for r in runs)
        path = ("hierarchical" if runs[0].get("grad_sync_hierarchical")
                else ("one host" if runs[0]["grad_sync_shared_memory"] else "one all-reduce"))
        print(f"| {label} | {norm} | {sync} | {path} | {med(lambda r: r['samples_per_second']):,.0f} | "
              f"{med(lambda r: r['step_ms']):.1f} | {med(lambda r: r['breakdown_ms']['gradient_sync']):.1f} | "
              f"{med(lambda r: r['breakdown_ms']['syncbn_communication']):.1f} | "
              f"{med(lambda r: r['breakdown_ms']['optimizer']):.1f} |")
PY

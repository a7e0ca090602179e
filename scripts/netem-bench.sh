#!/usr/bin/env bash
# Measures distributed training across 2 simulated nodes (network namespaces, TCP), 1 rank per
# node, with and without a shaped link (tc netem), for flat and bucketed gradient sync and for
# SyncBN and local BN. Writes OUT/*.json (ddp bench train output) and prints a table.
#
#   scripts/netem-bench.sh [OUT_DIR] [QDISC]   (defaults: runs/netem, "netem delay 1ms rate 1gbit", or, in
#                                               kernels without sch_netem, "tbf rate 1gbit burst 256kb latency 20ms")
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/netem}"
spec="${2:-}"
if [ -z "$spec" ]; then
    # netem needs the kernel's sch_netem; fall back to a token bucket (rate only, no added delay)
    ip link add ddpq0 type veth peer name ddpq1
    if tc qdisc add dev ddpq0 root netem delay 1ms rate 1gbit 2>/dev/null; then spec="netem delay 1ms rate 1gbit"
    else spec="tbf rate 1gbit burst 256kb latency 20ms"; fi
    ip link delete ddpq0
fi
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export DDP_NETNS_STATE="${DDP_NETNS_STATE:-/tmp/swiftddp-netns}"
swift build -c release >/dev/null
bench=(bench train --steps "${STEPS:-40}" --warmup 5 --repeats 3)
for link in plain netem; do
    shape=()
    [ "$link" = netem ] && shape=(--qdisc "$spec")
    scripts/netns-cluster.sh run 2 "${shape[@]}" -- bash -c '
        set -e
        args="$(cat "$DDP_NETNS_STATE/mpirun-args") -np 2 --map-by ppr:1:node -x OPENBLAS_NUM_THREADS"
        for cfg in "syncbn flat" "syncbn bucketed" "bn flat" "bn bucketed"; do
            set -- $cfg
            mpirun $args '"$PWD"'/.build/release/ddp '"${bench[*]}"' --norm $1 --grad-sync $2 --json '"$out"'/'"$link"'-$1-$2.json
        done' >/dev/null
done
python3 - "$out" "$spec" <<'PY'
import json, sys
out, spec = sys.argv[1], sys.argv[2]
print(f"| link | norm | gradient sync | samples/s | step ms | gradient all-reduce ms | SyncBN ms | forward+backward ms | communication share |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for link in ["plain", "netem"]:
    for norm in ["syncbn", "bn"]:
        for sync in ["flat", "bucketed"]:
            r = json.load(open(f"{out}/{link}-{norm}-{sync}.json"))
            b = r["breakdown_ms"]
            comm = b["gradient_sync"] + b["syncbn_communication"] + b["buffer_broadcast"]
            label = "veth, not shaped" if link == "plain" else spec
            print(f"| {label} | {norm} | {sync} | {r['samples_per_second']:,.0f} | {r['step_ms']:.1f} | {b['gradient_sync']:.1f} | "
                  f"{b['syncbn_communication']:.1f} | {b['forward'] + b['backward']:.1f} | {comm / r['step_ms'] * 100:.0f}% |")
PY

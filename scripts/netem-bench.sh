#!/usr/bin/env bash
# Measures distributed training across 2 simulated nodes (network namespaces, TCP), 1 rank per
# node, on plain links and on links with 1 ms one-way latency (with and without a 1 Gbit/s rate
# limit), for flat and bucketed gradient sync and for SyncBN and local BN. Writes
# OUT/*.json (ddp bench train output) and prints a Markdown table.
#
#   scripts/netem-bench.sh [OUT_DIR]     (default runs/netem; STEPS=40 timed steps per repeat)
#
# The delay comes from tc netem where the kernel has sch_netem, else from the userspace link
# emulator (scripts/link-emulator.py, via netns-cluster.sh --emulate); the table says which.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/netem}"
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export DDP_NETNS_STATE="${DDP_NETNS_STATE:-/tmp/swiftddp-netns}"
swift build -c release >/dev/null

IFS='|' read -r shaper prefix <<< "$(scripts/netns-cluster.sh shaper)"

# name | netns-cluster.sh options
links=("plain|" "delay1ms|$shaper|${prefix}delay 1ms" "delay1ms-1gbit|$shaper|${prefix}delay 1ms rate 1gbit")
bench=(bench train --steps "${STEPS:-40}" --warmup 5 --repeats 3)
for link in "${links[@]}"; do
    IFS='|' read -r name option spec <<< "$link"
    shape=()
    [ -n "$option" ] && shape=("$option" "$spec")
    scripts/netns-cluster.sh run 2 "${shape[@]}" -- bash -c '
        set -e
        args="$(cat "$DDP_NETNS_STATE/mpirun-args") -np 2 --map-by ppr:1:node -x OPENBLAS_NUM_THREADS"
        for cfg in "syncbn flat" "syncbn bucketed" "bn flat" "bn bucketed"; do
            set -- $cfg
            mpirun $args '"$PWD"'/.build/release/ddp '"${bench[*]}"' --norm $1 --grad-sync $2 \
                --json '"$out"'/'"$name"'-$1-$2.json
        done' >/dev/null
done
echo "$shaper" > "$out/shaper"
python3 - "$out" "$shaper" <<'PY'
import json, sys
out, shaper = sys.argv[1], sys.argv[2]
how = "tc netem" if shaper == "--qdisc" else "link emulator"
labels = {"plain": "veth, not shaped", "delay1ms": f"1 ms ({how})",
          "delay1ms-1gbit": f"1 ms, 1 Gbit/s ({how})"}
print("| link | norm | gradient sync | samples/s | step ms | gradient all-reduce ms | SyncBN ms | forward+backward ms "
      "| communication share |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for link, label in labels.items():
    for norm in ["syncbn", "bn"]:
        for sync in ["flat", "bucketed"]:
            r = json.load(open(f"{out}/{link}-{norm}-{sync}.json"))
            b = r["breakdown_ms"]
            comm = b["gradient_sync"] + b["syncbn_communication"] + b["buffer_broadcast"]
            print(f"| {label} | {norm} | {sync} | {r['samples_per_second']:,.0f} | {r['step_ms']:.1f} | "
                  f"{b['gradient_sync']:.1f} | {b['syncbn_communication']:.1f} | "
                  f"{b['forward'] + b['backward']:.1f} | {comm / r['step_ms'] * 100:.0f}% |")
PY

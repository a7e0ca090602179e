#!/usr/bin/env bash
# The conv-net rows of scripts/bench.sh (which calls this; it also runs alone): SwiftDDP's cnn and
# ResNet-20 against PyTorch (1 process, 1 thread) and PyTorch DDP over gloo (2 processes, local BN:
# PyTorch's SyncBatchNorm refuses CPU tensors), per-rank batch 64, 8 and 2; SGD momentum 0.9,
# Fashion-MNIST 1×28×28, OPENBLAS_NUM_THREADS=1. Every configuration runs once per round (3 repeats,
# median), rounds interleave the configurations, and figures are medians over ROUNDS (default 3).
# One more 1-rank run per configuration with the environment VARIANT measures what a kernel choice gives
# (default SWIFTDDP_CONV_WINOGRAD=0: what Winograd gives; e.g. VARIANT=SWIFTDDP_CONV_BRGCONV=1).
# Writes OUT/conv-*.rN.json (raw), OUT/conv-results.json and OUT/conv-table.md.
#
#   scripts/bench-conv.sh [OUT_DIR]          (default: runs/bench)
#
# CONFIGS: the configurations to run, by name (default: all six below), e.g.
# CONFIGS="cnn-b64 resnet-b64" ROUNDS=7 for more rounds of the batch-64 rows.
# DDP_BIN_DIR: a prebuilt release directory to measure (launch.sh then does not rebuild when
# sources change during the run); FIRST_ROUND: continue an interrupted run at that round.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/bench}"
rounds="${ROUNDS:-3}"
export VARIANT="${VARIANT:-SWIFTDDP_CONV_WINOGRAD=0}"
variant="$VARIANT"
[[ "$variant" == SWIFTDDP_*=* ]] || { echo "bench-conv: VARIANT is not SWIFTDDP_NAME=value: $variant" >&2; exit 2; }
mkdir -p "$out"
# the variant runs' files do not name it: a resumed run must measure the same one
if [ "${FIRST_ROUND:-1}" -gt 1 ] && [ "$(cat "$out/conv-variant.txt" 2>/dev/null)" != "$variant" ]; then
    echo "bench-conv: $out was measured with VARIANT=$(cat "$out/conv-variant.txt" 2>/dev/null), not $variant" >&2
    exit 2
fi
echo "$variant" > "$out/conv-variant.txt"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scripts/setup.sh --torch >/dev/null
py=/usr/bin/python3   # Debian's python, which Debian's torch belongs to
run() { echo "bench-conv: $*" >&2; "$@"; }

# name  model  per-rank batch  steps  warm-up: each measured repeat lasts a few seconds
configs=(
    "cnn-b64 cnn 64 100 10" "resnet-b64 resnet 64 30 5"
    "cnn-b8 cnn 8 400 20" "resnet-b8 resnet 8 100 10"
    "cnn-b2 cnn 2 800 40" "resnet-b2 resnet 2 200 20"
)
if [ -n "${CONFIGS:-}" ]; then
    chosen=()
    for c in "${configs[@]}"; do
        for name in $CONFIGS; do [ "${c%% *}" = "$name" ] && chosen+=("$c"); done
    done
    [ ${#chosen[@]} -gt 0 ] || { echo "bench-conv: CONFIGS names none of: ${configs[*]%% *}" >&2; exit 2; }
    configs=("${chosen[@]}")
fi
bin="${DDP_BIN_DIR:-$PWD/.build/release}"
# the allocation check at the end needs these beside ddp (copy them too with DDP_BIN_DIR)
for f in ddp ddp-alloc-check libMallocInterposerSwift.so; do
    [ -e "$bin/$f" ] || { echo "bench-conv: $bin has no $f" >&2; exit 2; }
done
kind() {  # one configuration's run of one kind, this round
    case "$1" in
        ddp-1) run scripts/launch.sh -np 1 -- "${common[@]}" --json "$out/conv-ddp-1-$name.r$round.json" 2>/dev/null ;;
        # the same with the variant's kernel choice
        ddp-1-variant) run env "$variant" scripts/launch.sh -np 1 -- "${common[@]}" \
            --json "$out/conv-ddp-1-variant-$name.r$round.json" 2>/dev/null ;;
        ddp-2-syncbn) run scripts/launch.sh -np 2 -- "${common[@]}" \
            --json "$out/conv-ddp-2-syncbn-$name.r$round.json" 2>/dev/null ;;
        ddp-2-bn) run scripts/launch.sh -np 2 -- "${common[@]}" --norm bn \
            --json "$out/conv-ddp-2-bn-$name.r$round.json" 2>/dev/null ;;
        torch-1) run $py "${peer[@]}" --json "$out/conv-torch-1-$name.r$round.json" >/dev/null ;;
        torch-ddp-2) run $py "${peer[@]}" --world-size 2 --json "$out/conv-torch-ddp-2-$name.r$round.json" >/dev/null ;;
    esac
}
# Each round starts one kind later: over 6 rounds every kind runs once in each position, so a speed that drifts
# within a round (a VM's can) does not favour one kind.
kinds=(ddp-1 ddp-1-variant ddp-2-syncbn ddp-2-bn torch-1 torch-ddp-2)
for round in $(seq "${FIRST_ROUND:-1}" "$rounds"); do
    echo "bench-conv: round $round of $rounds" >&2
    for c in "${configs[@]}"; do
        read -r name model batch steps warmup <<<"$c"
        common=(bench train --model "$model" --batch-size "$batch" --steps "$steps" --warmup "$warmup" --repeats 3)
        peer=(scripts/peers/torch_train.py --model "$model" --batch "$batch" --steps "$steps" --warmup "$warmup")
        for k in 0 1 2 3 4 5; do kind "${kinds[$(((round - 1 + k) % 6))]}"; done
    done
done
# heap allocations per steady-state step, every gradient sync (none: oneDNN's per-call bookkeeping
# goes to an arena, gradients to the pairwise all-reduce on persistent requests)
for model in cnn resnet; do
    for sync in sharded shared flat bucketed; do
        run mpirun -np 2 --bind-to core -x OPENBLAS_NUM_THREADS \
            -x LD_PRELOAD=$bin/libMallocInterposerSwift.so "$bin/ddp-alloc-check" --model "$model" \
            --grad-sync "$sync" > "$out/conv-alloc-$model-$sync.jsonl" 2>/dev/null </dev/null || true
    done
done

$py - "$out" "${configs[@]}" <<'PY'
import glob, json, os, re, statistics, sys
out, names = sys.argv[1], [c.split()[0] for c in sys.argv[2:]]
kinds = ["ddp-1", "ddp-2-syncbn", "ddp-2-bn", "torch-1", "torch-ddp-2", "ddp-1-variant"]
variant = os.environ["VARIANT"]
def rounds(kind, name):
    files = glob.glob(f"{out}/conv-{kind}-{name}.r*.json")
    files.sort(key=lambda f: int(re.search(r"\.r(\d+)\.json$", f).group(1)))
    return [json.load(open(f)) for f in files]
runs = {(k, n): rounds(k, n) for k in kinds for n in names}
def median_run(k, n):
    r = sorted(runs[(k, n)], key=lambda x: x["samples_per_second"])
    return r[(len(r) - 1) // 2]
def ratio(a, b, n):
    """Median over rounds of a/b within each round, with its range."""
    v = [x["samples_per_second"] / y["samples_per_second"] for x, y in zip(runs[(a, n)], runs[(b, n)])]
    return statistics.median(v), min(v), max(v)
fmt = lambda t: f"{t[0]:.2f}× [{t[1]:.2f}–{t[2]:.2f}]"
rounds_done = min(len(v) for v in runs.values())
md = [f"Conv nets: samples/s (median of {rounds_done} interleaved rounds), ratios within each round [min–max].", "",
      "| model, per-rank batch | SwiftDDP 1 rank | PyTorch 1 | ratio | step ms | layer floor ms | step / floor "
      "| SwiftDDP 2 ranks SyncBN | 2 ranks / 1 rank | local BN | SyncBN cost | PyTorch DDP 2 | 2 ranks vs DDP |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
for n in names:
    d1, d2, b2, t1, t2, _ = (median_run(k, n) for k in kinds)
    floors = [x["step_ms"] / x["layer_floor_ms"] for x in runs[("ddp-1", n)]]
    cost = ratio("ddp-2-bn", "ddp-2-syncbn", n)
    md.append(f"| {n} | {d1['samples_per_second']:,.0f} | {t1['samples_per_second']:,.0f} "
              f"| {fmt(ratio('ddp-1', 'torch-1', n))} "
              f"| {d1['step_ms']:.2f} | {statistics.median(x['layer_floor_ms'] for x in runs[('ddp-1', n)]):.2f} "
              f"| {statistics.median(floors):.2f} [{min(floors):.2f}–{max(floors):.2f}] "
              f"| {d2['samples_per_second']:,.0f} | {fmt(ratio('ddp-2-syncbn', 'ddp-1', n))} "
              f"| {b2['samples_per_second']:,.0f} "
              f"| {(cost[0] - 1) * 100:+.1f}% [{(cost[1] - 1) * 100:+.1f}–{(cost[2] - 1) * 100:+.1f}] "
              f"| {t2['samples_per_second']:,.0f} | {fmt(ratio('ddp-2-syncbn', 'torch-ddp-2', n))} |")
md += ["", "Where the time goes (ms per step, SwiftDDP, median round; forward/backward by layer kind, normalization "
       "includes its SyncBN exchange; rest = the phase's time outside any leaf layer: loss, residual sums, glue):", "",
       "| configuration | conv fwd | conv bwd | linear | norm fwd | norm bwd | pooling | activation | rest "
       "| SyncBN comm | gradient sync | optimizer | step |",
       "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
for n in names:
    for k in ["ddp-1", "ddp-2-syncbn", "ddp-2-bn"]:
        r = median_run(k, n)
        f, b, br = r["layers_ms"]["forward"], r["layers_ms"]["backward"], r["breakdown_ms"]
        rest = br["forward"] + br["backward"] - sum(f.values()) - sum(b.values())
        md.append(f"| {n}, {k[4:]} | {f['convolution']:.2f} | {b['convolution']:.2f} | {f['linear'] + b['linear']:.2f} "
                  f"| {f['normalization']:.2f} | {b['normalization']:.2f} | {f['pooling'] + b['pooling']:.2f} "
                  f"| {f['activation'] + b['activation']:.2f} | {rest:.2f} | {br['syncbn_communication']:.2f} "
                  f"| {br['gradient_sync']:.2f} | {br['optimizer']:.2f} | {r['step_ms']:.2f} |")
md += ["", f"Kernel choice (1 rank): SwiftDDP as measured above against the same build with {variant}:", "",
       f"| configuration | {variant}, samples/s | default | default / variant "
       "| conv fwd ms, variant | default | conv bwd ms, variant | default |",
       "| --- | --- | --- | --- | --- | --- | --- | --- |"]
for n in names:
    a, o = median_run("ddp-1", n), median_run("ddp-1-variant", n)
    md.append(f"| {n} | {o['samples_per_second']:,.0f} | {a['samples_per_second']:,.0f} "
              f"| {fmt(ratio('ddp-1', 'ddp-1-variant', n))} | {o['layers_ms']['forward']['convolution']:.2f} "
              f"| {a['layers_ms']['forward']['convolution']:.2f} | {o['layers_ms']['backward']['convolution']:.2f} "
              f"| {a['layers_ms']['backward']['convolution']:.2f} |")
md += ["", "Layer floor (ms per step: every Conv2d and Linear alone, forward and backward, on the step's inputs):", "",
       "| configuration | convolutions | linear | floor |", "| --- | --- | --- | --- |"]
for n in names:
    r = median_run("ddp-1", n)
    md.append(f"| {n} | {r['layer_floor_ms_by_kind']['convolution']:.2f} | {r['layer_floor_ms_by_kind']['linear']:.2f} "
              f"| {r['layer_floor_ms']:.2f} |")
allocs = []
for model in ["cnn", "resnet"]:
    for sync in ["sharded", "shared", "flat", "bucketed"]:
        path = f"{out}/conv-alloc-{model}-{sync}.jsonl"
        lines = [json.loads(l) for l in open(path) if l.startswith("{")] if os.path.exists(path) else []
        allocs.append(f"{model} {sync} {max((x['mallocs_per_step'] for x in lines), default=float('nan')):g}")
md += ["", "Heap allocations per steady-state step (2 ranks, SyncBN, batch 16, --grad-sync): " + ", ".join(allocs), ""]
json.dump({f"{k}/{n}": median_run(k, n) for k in kinds for n in names}, open(f"{out}/conv-results.json", "w"), indent=2)
open(f"{out}/conv-table.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY

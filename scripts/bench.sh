#!/usr/bin/env bash
# Runs SwiftDDP's benchmarks and its peers side by side on this machine and writes
# OUT/results.json (every raw result) and OUT/table.md (the comparison).
#
#   scripts/bench.sh [OUT_DIR]          (default: runs/bench)
#   MODELS=conv scripts/bench.sh ...     only the conv nets (scripts/bench-conv.sh); MODELS=mlp
#                                        only the MLP
#
# Model: MLP 784-512x4-10 with BatchNorm + ReLU, per-rank batch 128, SGD momentum 0.9,
# Fashion-MNIST, OPENBLAS_NUM_THREADS=1 per process; every configuration runs 3 repeats of 200
# timed steps after 20 warm-up steps per round (PyTorch's first repeat in a process is ~15%
# slower; the median of 3 drops it), and figures are medians over ROUNDS (default 3) rounds.
# Peers: PyTorch CPU (1 process, 1 thread), PyTorch DDP over gloo (2 processes, local BN), an
# mpi4py + NumPy trainer with SyncBN (1 and 2 ranks).
# Needs the Debian packages python3-torch python3-mpi4py python3-numpy (installed if missing).
# OpenBLAS picks its CPU kernels at load time; OPENBLAS_CORETYPE in the environment overrides
# that for every program here (the table's last line says which kernels ran).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/bench}"
rounds="${ROUNDS:-3}"
mkdir -p "$out"
models="${MODELS:-mlp,conv}"
case ",$models," in *,mlp,*) ;; *) exec scripts/bench-conv.sh "$out" ;; esac
export OPENBLAS_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

scripts/setup.sh >/dev/null
missing=()
for p in python3-torch python3-mpi4py python3-numpy; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
bin=.build/release
py=/usr/bin/python3   # Debian's python, which the Debian torch and mpi4py belong to

run() { echo "bench: $*" >&2; "$@"; }
# How far apart two ranks' CPUs are right now: the cache-line round trip `ddp info` measures
# (tens of ns: one shared L3; hundreds: different dies). A VM's vCPUs can move between dies from
# minute to minute, which changes every exchange between the ranks; SwiftDDP's bench records it
# itself, and the peers' 2-process runs are bracketed by this probe.
placement() { scripts/launch.sh -np 2 -- info 2>/dev/null | sed -n 's/.*cache-line round trip \([0-9]*\) ns.*/\1/p'; }
peer2() {  # NAME COMMAND...: a 2-process peer run with the placement before and after
    local name=$1 before after; shift
    before=$(placement)
    run "$@" >/dev/null
    after=$(placement)
    echo "{\"before\": ${before:-null}, \"after\": ${after:-null}}" > "$out/$name.r$round.placement.json"
}
# Open MPI's shared-memory transport copies large messages with CMA (process_vm_readv) by
# default; on some machines (this VM) the copy-in/copy-out path is faster, so the mpi4py peer
# runs both ways (SwiftDDP's default gradient path on one host uses no MPI messages).
nocma=(--mca btl_vader_single_copy_mechanism none)
# Every configuration runs once per round (median of 3 repeats), rounds interleave them, and
# the summary takes medians over rounds: on a shared machine whose speed drifts over minutes,
# this spreads the drift over all configurations instead of favouring whichever ran first.
for round in $(seq 1 "$rounds"); do
    echo "bench: round $round of $rounds" >&2
    one=(bench train --repeats 3)
    run scripts/launch.sh -np 1 -- "${one[@]}" --json "$out/ddp-1.r$round.json" 2>/dev/null
    run scripts/launch.sh -np 2 -- "${one[@]}" --json "$out/ddp-2-syncbn.r$round.json" 2>/dev/null
    run scripts/launch.sh -np 2 -- "${one[@]}" --norm bn --json "$out/ddp-2-bn.r$round.json" 2>/dev/null
    run scripts/launch.sh -np 2 -- "${one[@]}" --grad-sync bucketed \
        --json "$out/ddp-2-bucketed.r$round.json" 2>/dev/null
    run scripts/launch.sh -np 4 -- "${one[@]}" --json "$out/ddp-4-syncbn.r$round.json" 2>/dev/null
    run scripts/launch.sh -np 2 -- "${one[@]}" --grad-sync flat --json "$out/ddp-2-flat.r$round.json" 2>/dev/null
    run scripts/launch.sh -np 2 -- "${one[@]}" --grad-sync shared --json "$out/ddp-2-shared.r$round.json" 2>/dev/null
    SWIFTDDP_SMALL_COLLECTIVES=mpi run scripts/launch.sh -np 2 -x SWIFTDDP_SMALL_COLLECTIVES -- "${one[@]}" \
        --json "$out/ddp-2-mpi-small.r$round.json" 2>/dev/null
    run $py scripts/peers/torch_train.py --repeats 3 --json "$out/torch-1.r$round.json" >/dev/null
    peer2 torch-ddp-2 $py scripts/peers/torch_train.py --repeats 3 --world-size 2 \
        --json "$out/torch-ddp-2.r$round.json"
    run mpirun -np 1 --bind-to core -x OPENBLAS_NUM_THREADS $py scripts/peers/mpi4py_train.py --repeats 3 \
        --json "$out/mpi4py-1.r$round.json" >/dev/null
    peer2 mpi4py-2 mpirun -np 2 --bind-to core -x OPENBLAS_NUM_THREADS $py scripts/peers/mpi4py_train.py --repeats 3 \
        --json "$out/mpi4py-2.r$round.json"
    peer2 mpi4py-2-nocma mpirun -np 2 --bind-to core "${nocma[@]}" -x OPENBLAS_NUM_THREADS \
        $py scripts/peers/mpi4py_train.py --repeats 3 --json "$out/mpi4py-2-nocma.r$round.json"
done
run scripts/launch.sh -np 2 -- bench allreduce --json "$out/allreduce-2.json" 2>/dev/null
# heap allocations in steady-state steps: SwiftDDP alone (in-process rank), then with Open MPI
LD_PRELOAD=$PWD/$bin/libMallocInterposerSwift.so run $bin/ddp-alloc-check --local > "$out/alloc-local.jsonl" || true
run mpirun -np 2 --bind-to core -x OPENBLAS_NUM_THREADS -x LD_PRELOAD=$PWD/$bin/libMallocInterposerSwift.so \
    $bin/ddp-alloc-check > "$out/alloc-mpi.jsonl" 2>/dev/null || true
run mpirun -np 2 --bind-to core -x OPENBLAS_NUM_THREADS -x LD_PRELOAD=$PWD/$bin/libMallocInterposerSwift.so \
    -x SWIFTDDP_SMALL_COLLECTIVES=mpi $bin/ddp-alloc-check > "$out/alloc-mpi-small.jsonl" 2>/dev/null || true

$py - "$out" <<'PY'
import json, sys, platform, os
out = sys.argv[1]
import glob, statistics
def load(name):
    with open(f"{out}/{name}") as f:
        return json.load(f)
def lines(name):
    with open(f"{out}/{name}") as f:
        return [json.loads(l) for l in f if l.strip().startswith("{")]
configs = ["ddp-1", "ddp-2-syncbn", "ddp-2-bn", "ddp-2-bucketed", "ddp-4-syncbn", "ddp-2-flat", "ddp-2-shared",
           "ddp-2-mpi-small", "torch-1", "torch-ddp-2", "mpi4py-1", "mpi4py-2", "mpi4py-2-nocma"]
import re
# r1, r2, ... in round order (r10 after r9), not the .placement.json files beside them
def round_files(k):
    found = [f for f in glob.glob(f"{out}/{k}.r*.json")
             if re.fullmatch(rf"{re.escape(k)}\.r\d+\.json", os.path.basename(f))]
    return sorted(found, key=lambda f: int(re.search(r"\.r(\d+)\.json$", f).group(1)))
rounds = {k: [load(os.path.basename(f)) for f in round_files(k)] for k in configs}
n = min(len(v) for v in rounds.values())
def median_round(k):
    """The round whose samples/s is the median (its breakdown is reported)."""
    runs = sorted(rounds[k], key=lambda x: x["samples_per_second"])
    return dict(runs[(len(runs) - 1) // 2],
                samples_per_second_rounds=[x["samples_per_second"] for x in rounds[k]])
r = {k: median_round(k) for k in configs}
r["ddp-1"]["gemm_floor_ms"] = statistics.median(x["gemm_floor_ms"] for x in rounds["ddp-1"])
r["ddp-1"]["step_over_gemm_floor"] = statistics.median(x["step_ms"] / x["gemm_floor_ms"] for x in rounds["ddp-1"])
def ratio(a, b):
    """Median over rounds of a/b (same round: same machine state), with its range."""
    values = [x["samples_per_second"] / y["samples_per_second"] for x, y in zip(rounds[a], rounds[b])]
    return statistics.median(values), min(values), max(values)
def trip(k, i):
    """Rank 0 <-> 1 round trip before/after run i of a 2-process configuration, or None."""
    t = rounds[k][i].get("rank_round_trip_ns")
    path = f"{out}/{k}.r{i + 1}.placement.json"
    if t is None and os.path.exists(path):
        t = json.load(open(path))
    return t
NEAR_NS = 150
two_process = lambda k: "-2" in k
def near(k, i):
    """Whether run i had both ranks on one L3 before and after (1-process runs always count)."""
    if not two_process(k):
        return True
    t = trip(k, i) or {}
    return all(t.get(w) is not None and t[w] < NEAR_NS for w in ("before", "after"))
def near_ratio(a, b):
    """`ratio` over the rounds where both runs had near placement: (median, min, max, rounds) or None."""
    values = [rounds[a][i]["samples_per_second"] / rounds[b][i]["samples_per_second"]
              for i in range(n) if near(a, i) and near(b, i)]
    return (statistics.median(values), min(values), max(values), len(values)) if values else None
r["allreduce-2"] = load("allreduce-2.json")
r["alloc-local"], r["alloc-mpi"], r["alloc-mpi-small"] = (
    lines("alloc-local.jsonl"), lines("alloc-mpi.jsonl"), lines("alloc-mpi-small.jsonl"))
json.dump(r, open(f"{out}/results.json", "w"), indent=2)
s = lambda k: r[k]["samples_per_second"]
one = s("ddp-1")
rows = [
    ("SwiftDDP, 1 rank", s("ddp-1"), r["ddp-1"]["step_ms"]),
    ("SwiftDDP, 2 ranks, SyncBN (sharded update through shared memory, the default)",
     s("ddp-2-syncbn"), r["ddp-2-syncbn"]["step_ms"]),
    ("SwiftDDP, 2 ranks, SyncBN, shared-memory sum, every rank updates all (`--grad-sync shared`)",
     s("ddp-2-shared"), r["ddp-2-shared"]["step_ms"]),
    ("SwiftDDP, 2 ranks, SyncBN, one MPI_Allreduce (`--grad-sync flat`)",
     s("ddp-2-flat"), r["ddp-2-flat"]["step_ms"]),
    ("SwiftDDP, 2 ranks, SyncBN, sharded, SyncBN statistics and loss over MPI (`SWIFTDDP_SMALL_COLLECTIVES=mpi`)",
     s("ddp-2-mpi-small"), r["ddp-2-mpi-small"]["step_ms"]),
    ("SwiftDDP, 2 ranks, local BN", s("ddp-2-bn"), r["ddp-2-bn"]["step_ms"]),
    ("SwiftDDP, 2 ranks, SyncBN, bucketed sync", s("ddp-2-bucketed"), r["ddp-2-bucketed"]["step_ms"]),
    ("SwiftDDP, 4 ranks (oversubscribed), SyncBN", s("ddp-4-syncbn"), r["ddp-4-syncbn"]["step_ms"]),
    ("PyTorch CPU, 1 process, 1 thread", s("torch-1"), None),
    ("PyTorch DDP (gloo), 2 processes, local BN", s("torch-ddp-2"), None),
    ("mpi4py + NumPy, 1 rank, SyncBN", s("mpi4py-1"), None),
    ("mpi4py + NumPy, 2 ranks, SyncBN", s("mpi4py-2"), None),
    ("mpi4py + NumPy, 2 ranks, SyncBN, vader single-copy off", s("mpi4py-2-nocma"), None),
]
md = ["| configuration | samples/s | step ms (per rank) | vs SwiftDDP 1 rank |", "| --- | --- | --- | --- |"]
for name, v, ms in rows:
    md.append(f"| {name} | {v:,.0f} | {'' if ms is None else f'{ms:.2f}'} | {v / one:.2f}× |")
floor = r["ddp-1"]["gemm_floor_ms"]
md.append(f"| GEMM floor (OpenBLAS, this step's matrix products only), 1 rank | {128 * 1000 / floor:,.0f} "
          f"| {floor:.2f} | {128 * 1000 / floor / one:.2f}× |")
md += ["", "Targets:", ""]
md += [f"Ratios: median over {n} rounds of the ratio within each round [min–max].", ""]
def check(name, value, target, ok):
    md.append(f"- {name}: {value} (target {target}) — {'met' if ok else 'NOT met'}")
def checkRatio(name, a, b, target, at_least=True):
    m, lo, hi = ratio(a, b)
    check(name, f"{m:.2f}× [{lo:.2f}–{hi:.2f}]", f"{'≥' if at_least else '≤'} {target}×",
          m >= target if at_least else m <= target)
    if two_process(a) or two_process(b):
        q = near_ratio(a, b)
        md[-1] += (f"; rounds with both runs on one L3: {q[0]:.2f}× [{q[1]:.2f}–{q[2]:.2f}] ({q[3]} of {n})" if q
                   else f"; no round had both runs on one L3")
checkRatio("1 rank vs PyTorch 1 thread", "ddp-1", "torch-1", 1.2)
floors = sorted(x["step_ms"] / x["gemm_floor_ms"] for x in rounds["ddp-1"])
check("step vs GEMM floor", f"{r['ddp-1']['step_over_gemm_floor']:.2f}× [{floors[0]:.2f}–{floors[-1]:.2f}]",
      "≤ 1.2×", r["ddp-1"]["step_over_gemm_floor"] <= 1.2)
checkRatio("2 ranks vs 1 rank", "ddp-2-syncbn", "ddp-1", 1.85)
checkRatio("2 ranks vs PyTorch DDP 2 processes", "ddp-2-syncbn", "torch-ddp-2", 1.5)
checkRatio("2 ranks vs mpi4py + NumPy 2 ranks", "ddp-2-syncbn", "mpi4py-2", 1.5)
m1, m2 = ratio("ddp-2-flat", "ddp-1")[0], ratio("ddp-2-syncbn", "mpi4py-2-nocma")[0]
m3, m4 = ratio("ddp-2-shared", "ddp-1")[0], ratio("ddp-2-syncbn", "ddp-2-shared")
md.append(f"- with one MPI_Allreduce (`--grad-sync flat`): 2 ranks vs 1 rank {m1:.2f}×; "
          f"with `--grad-sync shared` {m3:.2f}×; "
          f"default vs mpi4py + NumPy with vader's single-copy off (its faster setting): {m2:.2f}×")
def on_one_l3(a, b):
    q = near_ratio(a, b)
    return (f"; rounds with both runs on one L3: {q[0]:.3f}× [{q[1]:.3f}–{q[2]:.3f}] ({q[3]} of {n})" if q
            else "; no round had both runs on one L3")
md.append(f"- default (sharded) vs `--grad-sync shared`, 2 ranks: {m4[0]:.3f}× [{m4[1]:.3f}–{m4[2]:.3f}]"
          + on_one_l3("ddp-2-syncbn", "ddp-2-shared"))
m5 = ratio("ddp-2-syncbn", "ddp-2-mpi-small")
md.append(f"- default (small collectives through shared memory) vs `SWIFTDDP_SMALL_COLLECTIVES=mpi`, 2 ranks: "
          f"{m5[0]:.3f}× [{m5[1]:.3f}–{m5[2]:.3f}]"
          + on_one_l3("ddp-2-syncbn", "ddp-2-mpi-small"))
cost = 1 / ratio("ddp-2-syncbn", "ddp-2-bn")[0] - 1
check("SyncBN step time over local BN", f"{cost * 100:+.1f}%", "≤ +5%", cost <= 0.05)
q = near_ratio("ddp-2-syncbn", "ddp-2-bn")
md[-1] += (f"; rounds with both runs on one L3: {(1 / q[0] - 1) * 100:+.1f}% ({q[3]} of {n})" if q
           else "; no round had both runs on one L3")
worst = min(x["ddp_over_mpi_bandwidth"] for x in r["allreduce-2"]["results"])
check("gradient all-reduce bandwidth vs bare MPI_Allreduce (worst size, 4 KB–64 MB)", f"{worst:.2f}", "≥ 0.90",
      worst >= 0.9)
shared = [x["ddp_shared_over_mpi_bandwidth"] for x in r["allreduce-2"]["results"]]
md.append(f"- shared-memory gradient reduction (sum and copy-back as `--grad-sync shared`; "
          f"`sharded` skips the copy-back) vs bare MPI_Allreduce: "
          f"{min(shared):.2f}–{max(shared):.2f}× the bandwidth")
local = r["alloc-local"][0]["mallocs_per_step"] if r["alloc-local"] else float("nan")
mpi = max((x["mallocs_per_step"] for x in r["alloc-mpi"]), default=float("nan"))
mpi_small = max((x["mallocs_per_step"] for x in r["alloc-mpi-small"]), default=float("nan"))
check("heap allocations per steady-state step, SwiftDDP code (in-process rank)", f"{local:g}", "0", local == 0)
check("heap allocations per steady-state step under mpirun, Open MPI included (2 ranks, defaults, SyncBN)",
      f"{mpi:g}", "0", mpi == 0)
md.append(f"- the same with `SWIFTDDP_SMALL_COLLECTIVES=mpi` (Open MPI's all-reduce allocates a temporary per call): "
          f"{mpi_small:g}")
md += ["", "All-reduce (2 ranks), median of 5 interleaved repeats:", "",
       "| bytes | MPI_Allreduce µs | SwiftDDP flat µs | ratio | SwiftDDP shared memory µs | ratio |",
       "| --- | --- | --- | --- | --- | --- |"]
for x in r["allreduce-2"]["results"]:
    md.append(f"| {x['bytes']:,} | {x['mpi_allreduce_us']:.1f} | {x['ddp_gradient_sync_us']:.1f} "
              f"| {x['ddp_over_mpi_bandwidth']:.2f} | {x['ddp_shared_sync_us']:.1f} "
              f"| {x['ddp_shared_over_mpi_bandwidth']:.2f} |")
b = r["ddp-1"]["breakdown_ms"]; b2 = r["ddp-2-syncbn"]["breakdown_ms"]; b3 = r["ddp-2-mpi-small"]["breakdown_ms"]
md += ["", "Step-time breakdown (ms per step, rank 0, each configuration's median round):", "",
       "| phase | 1 rank | 2 ranks SyncBN (default) | 2 ranks, small collectives over MPI |",
       "| --- | --- | --- | --- |"]
for k in ["data", "forward", "backward", "gradient_sync", "syncbn_communication", "optimizer", "buffer_broadcast"]:
    md.append(f"| {k} | {b[k]:.3f} | {b2[k]:.3f} | {b3[k]:.3f} |")
md.append(f"| total | {r['ddp-1']['step_ms']:.3f} | {r['ddp-2-syncbn']['step_ms']:.3f} "
          f"| {r['ddp-2-mpi-small']['step_ms']:.3f} |")
two = [k for k in configs if two_process(k)]
md += ["", "Placement: cache-line round trip between ranks 0 and 1 (ns), before / after each run's timing "
       "(tens of ns: one shared L3; hundreds: the ranks' CPUs sit on different dies, "
       "and every exchange between them is slower):", "",
       "| round | " + " | ".join(two) + " |", "| --- |" + " --- |" * len(two)]
def cell(k, i):
    t = trip(k, i) or {}
    f = lambda v: "–" if v is None else f"{v:.0f}"
    return f"{f(t.get('before'))} / {f(t.get('after'))}"
for i in range(n):
    md.append(f"| {i + 1} | " + " | ".join(cell(k, i) for k in two) + " |")
md.append("")
forced = os.environ.get("OPENBLAS_CORETYPE")
md.append(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"torch {r['torch-1']['torch']}, numpy {r['mpi4py-2']['numpy']}; "
          f"OpenBLAS kernels {r['ddp-1'].get('openblas_core', '?')} "
          f"({'forced by OPENBLAS_CORETYPE=' + forced if forced else 'chosen by OpenBLAS for this CPU'}; "
          f"SwiftDDP, PyTorch and NumPy all use this OpenBLAS).")
open(f"{out}/table.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
# The conv nets' rows (their own rounds, after the MLP's): appended to the same table.
case ",$models," in
    *,conv,*) scripts/bench-conv.sh "$out" >/dev/null && { echo; cat "$out/conv-table.md"; } | tee -a "$out/table.md" ;;
esac

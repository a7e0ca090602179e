#!/bin/sh
# Build and run the single-threaded Winograd F(2x2,3x3) (transforms in C, 16 GEMMs in OpenBLAS) vs oneDNN direct
# convolution benchmark for the 3x3/s1/p1 layers. Needs: apt-get install -y libopenblas-dev libdnnl-dev
# Usage: scripts/experiments/winograd-bench.sh [rounds=11] [min seconds per measurement=0.02]
# Writes Docs/performance/winograd/results.jsonl and results.log.
set -eu
cd "$(dirname "$0")/../.."
OUT=Docs/performance/winograd
mkdir -p "$OUT"
(cd scripts/experiments && gcc -O3 -march=native -fopenmp winograd-bench.c -lopenblas -ldnnl -lm -o /tmp/winograd-bench)
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 DNNL_VERBOSE=0
{
  echo "# $(date -u '+%Y-%m-%dT%H:%M:%SZ') $(uname -sr)"
  echo "# lscpu: $(lscpu | grep 'Model name' | sed 's/  */ /g')"
  echo "# lscpu: $(lscpu | grep -E '^(CPU family|Model):|^(L1d|L2|L3) cache' | sed 's/  */ /g' | tr '\n' ';')"
  FLAGS=$(grep -m1 '^flags' /proc/cpuinfo)
  for f in avx2 fma avx512f; do
    case " $FLAGS " in *" $f "*) printf '# cpu flag %s: yes\n' "$f" ;; *) printf '# cpu flag %s: no\n' "$f" ;; esac
  done
  echo "# gcc: $(gcc --version | head -1)"
  /tmp/winograd-bench "${1:-11}" "$OUT/results.jsonl" "${2:-0.02}"
} 2>&1 | tee "$OUT/results.log"

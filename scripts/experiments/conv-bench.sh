#!/bin/sh
# Build and run the single-threaded CPU convolution benchmark.
# Needs: apt-get install -y libopenblas-dev libdnnl-dev libxsmm-dev
# Usage: scripts/experiments/conv-bench.sh [rounds=7] [min seconds per measurement=0.02] [output name=results.jsonl]
set -eu
cd "$(dirname "$0")/../.."
OUT=Docs/performance/conv-bench
BIN=${TMPDIR:-/tmp}/conv-bench
mkdir -p "$OUT"
gcc -O3 -march=native -fopenmp -o "$BIN" scripts/experiments/conv-bench.c \
  -L/usr/lib -l:libxsmm.a -l:libxsmmnoblas.a -lopenblas -ldnnl -lpthread -ldl -lrt -lm
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 DNNL_VERBOSE=0
NAME=${3:-results.jsonl}
"$BIN" "${1:-7}" "$OUT/$NAME" "${2:-0.02}" | tee "$OUT/${NAME%.jsonl}.log"

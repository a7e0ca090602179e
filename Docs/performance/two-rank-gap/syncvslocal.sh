#!/usr/bin/env bash
set -euo pipefail
cd /work/main
out=$1; shift; mkdir -p $out
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for r in $(seq 1 ${ROUNDS:-5}); do
  DDP_BIN_DIR=$BIN scripts/launch.sh -np 2 -- bench train --repeats 3 "$@" --json $out/sync.r$r.json >/dev/null 2>&1 </dev/null
  DDP_BIN_DIR=$BIN scripts/launch.sh -np 2 -- bench train --repeats 3 "$@" --norm bn --json $out/local.r$r.json >/dev/null 2>&1 </dev/null
done

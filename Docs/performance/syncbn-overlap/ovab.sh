#!/usr/bin/env bash
set -euo pipefail
cd /work/main
out=$1; shift; mkdir -p $out
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for r in $(seq 1 ${ROUNDS:-5}); do
  for o in 1 0; do
    SWIFTDDP_SYNCBN_OVERLAP=$o DDP_BIN_DIR=$BIN scripts/launch.sh -np 2 -x SWIFTDDP_SYNCBN_OVERLAP -- bench train --repeats 3 "$@" --json $out/ov$o.r$r.json >/dev/null 2>&1 </dev/null
  done
done

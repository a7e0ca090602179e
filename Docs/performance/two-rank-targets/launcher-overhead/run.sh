#!/bin/bash
cd /work/main
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bin=/tmp/benchbinS; out=$1; shift
for r in 1 2 3 4 5 6; do
  d=$(mktemp -d)
  OMPI_MCA_orte_tmpdir_base=$d taskset -c 0 $bin/ddp bench train --repeats 3 "$@" --json $out/alone.r$r.json \
    >/dev/null 2>&1 </dev/null
  rm -rf $d
  DDP_BIN_DIR=$bin scripts/launch.sh -np 1 -- bench train --repeats 3 "$@" --json $out/np1.r$r.json \
    >/dev/null 2>&1 </dev/null
  mpirun -np 1 --bind-to core $bin/ddp bench train --repeats 3 "$@" --json $out/mpirun.r$r.json \
    >/dev/null 2>&1 </dev/null
done

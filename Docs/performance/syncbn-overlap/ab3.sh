#!/usr/bin/env bash
# 3-way: old build, new build overlap on, new build overlap off; 2 ranks
set -euo pipefail
cd /work/main
out=$1; shift; mkdir -p $out
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
for r in $(seq 1 ${ROUNDS:-6}); do
  for v in old on off; do
    case $v in old) bin=/tmp/benchbin0; o=1;; on) bin=/tmp/benchbin2; o=1;; off) bin=/tmp/benchbin2; o=0;; esac
    SWIFTDDP_SYNCBN_OVERLAP=$o DDP_BIN_DIR=$bin scripts/launch.sh -np 2 -x SWIFTDDP_SYNCBN_OVERLAP -- bench train --repeats 3 "$@" --json $out/$v.r$r.json >/dev/null 2>&1 </dev/null
  done
done
python3 - $out <<'PY'
import json,statistics,sys,glob
out=sys.argv[1]
rounds=sorted(int(f.split('.r')[1].split('.')[0]) for f in glob.glob(out+'/off.r*.json'))
d={v:[json.load(open(f'{out}/{v}.r{r}.json')) for r in rounds] for v in ['old','on','off']}
med=statistics.median
for v in d:
    r=d[v]
    L=lambda x,k: x['layers_ms']['forward'][k]+x['layers_ms']['backward'][k]
    print(v, f"{med(x['samples_per_second'] for x in r):,.0f} sps step {med(x['step_ms'] for x in r):.2f} conv {med(L(x,'convolution') for x in r):.2f} norm {med(L(x,'normalization') for x in r):.2f} sbn {med(x['breakdown_ms']['syncbn_communication'] for x in r):.2f} gs {med(x['breakdown_ms']['gradient_sync'] for x in r):.2f}")
for v in ['on','off']:
    rat=[b['samples_per_second']/a['samples_per_second'] for a,b in zip(d['old'],d[v])]
    print(f"{v}/old median {med(rat):.3f} [{min(rat):.3f}-{max(rat):.3f}]", ' '.join(f'{x:.3f}' for x in rat))
rat=[b['samples_per_second']/a['samples_per_second'] for a,b in zip(d['off'],d['on'])]
print(f"on/off median {med(rat):.3f} [{min(rat):.3f}-{max(rat):.3f}]", ' '.join(f'{x:.3f}' for x in rat))
PY

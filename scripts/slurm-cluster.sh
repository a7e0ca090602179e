#!/usr/bin/env bash
# A Slurm cluster on one machine, for trying and testing the Slurm paths: the simulated nodes of
# netns-cluster.sh (network namespaces ddpnode1..N), a slurmd in each (with its own host name),
# slurmctld in this namespace, munge for authentication. Needs root and Debian's slurmctld,
# slurmd, slurm-client and munge packages.
#
#   scripts/slurm-cluster.sh run N -- COMMAND...   bring it up, run COMMAND with SLURM_CONF set
#                                                  (e.g. salloc/srun/sbatch), always tear down
#
# COMMAND runs with the Open MPI settings these nodes need in its environment (OMPI_MCA_*:
# TCP on the cluster subnet), which mpirun and srun pass on to the ranks:
#   salloc -N 2 -n 4 scripts/launch.sh -np 4 -- info
#   srun --mpi=pmix -N 2 -n 4 .build/release/ddp info
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="${DDP_NETNS_STATE:-/tmp/swiftddp-netns}"
export DDP_NETNS_STATE="$state"
die() { echo "slurm-cluster: $*" >&2; exit 1; }

inside() {
    local n="$1"; shift
    for tool in slurmctld slurmd salloc munge; do
        command -v "$tool" >/dev/null || die "$tool not found (apt-get install slurmctld slurmd slurm-client munge)"
    done
    local dir="$state/slurm" host
    host="$(hostname)"
    mkdir -p "$dir/state" "$dir/spool"
    # munge: reuse a running munged, else start one (and stop it afterwards)
    if ! munge -n >/dev/null 2>&1; then
        mkdir -p /run/munge
        chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
        su -s /bin/sh munge -c /usr/sbin/munged || die "munged did not start"
        echo started > "$dir/munged-started"
    fi
    cat > "$dir/slurm.conf" <<CONF
ClusterName=swiftddp
SlurmctldHost=$host(10.77.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmctldPort=6917
SlurmdPort=6918
NodeName=ddpnode[1-$n] NodeAddr=10.77.0.[2-$((n + 1))] CPUs=2 State=UNKNOWN
PartitionName=nodes Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    # PMIx (srun --mpi=pmix) keeps per-step directories under a base that must be private to a
    # node; all simulated nodes share this file system, so each gets its own, bind-mounted at
    # the same path in the node's own mount namespace.
    echo "PMIxCliTmpDirBase=$dir/pmix" > "$dir/mpi.conf"
    mkdir -p "$dir/pmix"
    export SLURM_CONF="$dir/slurm.conf"
    trap 'stop_slurm' EXIT
    slurmctld -f "$SLURM_CONF" || die "slurmctld did not start (see $dir/slurmctld.log)"
    for i in $(seq 1 "$n"); do
        mkdir -p "$dir/spool/ddpnode$i" "$dir/pmix-ddpnode$i"
        # nsenter, not `ip netns exec`: the latter remounts /sys, hiding the cgroup tree slurmd
        # needs. Own UTS namespace: the node's processes report its name, as on a real node.
        local node_cmd="hostname ddpnode$i && mount --bind $dir/pmix-ddpnode$i $dir/pmix"
        node_cmd+=" && exec slurmd -D -N ddpnode$i -f $SLURM_CONF"
        nsenter --net="/var/run/netns/ddpnode$i" unshare --uts --mount --propagation private /bin/sh -c "$node_cmd" \
            > "$dir/slurmd-ddpnode$i.out" 2>&1 &
    done
    for _ in $(seq 1 100); do
        [ "$(sinfo -h -t idle -o %D 2>/dev/null || echo 0)" = "$n" ] && break
        sleep 0.2
    done
    [ "$(sinfo -h -t idle -o %D 2>/dev/null || echo 0)" = "$n" ] || {
        sinfo >&2 || true
        for f in "$dir"/*.log "$dir"/*.out; do echo "== $f"; tail -n 5 "$f"; done >&2
        die "the nodes did not come up"
    }
    # Open MPI settings for these nodes (TCP on the cluster subnet; yield, since all nodes share
    # this machine's cores), as environment so that both mpirun and srun-started ranks get them.
    export OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=10.77.0.0/24 \
        OMPI_MCA_oob_tcp_if_include=10.77.0.0/24 OMPI_MCA_mpi_yield_when_idle=1
    echo "slurm-cluster: $n nodes idle in partition 'nodes' (SLURM_CONF=$SLURM_CONF)"
    local status=0
    "$@" || status=$?
    if [ "$status" -ne 0 ]; then
        # the logs go with the cluster's state at teardown: show their ends now
        echo "slurm-cluster: the command failed (exit $status); the end of each Slurm log:" >&2
        for f in "$dir"/*.log "$dir"/*.out; do [ -e "$f" ] && { echo "== $f"; tail -n 8 "$f"; }; done >&2
    fi
    return "$status"
}

stop_slurm() {
    local dir="$state/slurm"
    # slurmctld saves its state as it exits: wait for it, or the teardown's rm races its writes
    local pid
    pid="$(cat "$dir/slurmctld.pid" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    # the slurmds die with their namespaces (netns-cluster.sh down kills every process in them)
    if [ -e "$dir/munged-started" ] && [ -s /run/munge/munged.pid ]; then
        kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
    fi
}

case "${1:-}" in
    run)
        shift
        [ $# -ge 1 ] || die "usage: $0 run N -- COMMAND..."
        n="$1"; shift
        [[ "$n" =~ ^[1-9][0-9]?$ ]] || die "node count must be 1-99, got '$n'"
        [ "${1:-}" = "--" ] && shift
        [ $# -ge 1 ] || die "no command given"
        exec "$root/scripts/netns-cluster.sh" run "$n" -- "$0" _inside "$n" "$@"
        ;;
    _inside) shift; inside "$@" ;;
    *) die "usage: $0 run N -- COMMAND..." ;;
esac

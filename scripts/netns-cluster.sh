#!/usr/bin/env bash
# A test cluster on one machine: N simulated nodes as Linux network namespaces, each with its
# own address on a private bridge, so MPI ranks on different "nodes" talk TCP, not shared
# memory. Needs root (ip netns, veth, bridge).
#
#   scripts/netns-cluster.sh up N [QDISC...]   create ddpnode1..N; QDISC shapes every node link, e.g.
#                                              "netem delay 1ms rate 1gbit" or "tbf rate 1gbit burst 256kb latency 20ms"
#   scripts/netns-cluster.sh down              remove what `up` created (and nothing else)
#   scripts/netns-cluster.sh run N [--qdisc "netem delay 1ms rate 1gbit"] -- COMMAND...
#                                              up, run COMMAND, always tear down (trap)
#
# While up, $DDP_NETNS_STATE (default /tmp/swiftddp-netns) holds `hostfile` (2 slots per
# node) and `mpirun-args` (the options that make mpirun use the namespaces):
#   mpirun $(cat /tmp/swiftddp-netns/mpirun-args) -np 4 ddp train ...
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="${DDP_NETNS_STATE:-/tmp/swiftddp-netns}"
bridge=ddpbr0
subnet=10.77.0
export DDP_NETNS_STATE="$state"

die() { echo "netns-cluster: $*" >&2; exit 1; }

up() {
    local n="$1"; shift
    local qdisc="${*:-}"
    [ "$(id -u)" -eq 0 ] || die "needs root (ip netns)"
    [[ "$n" =~ ^[1-9][0-9]?$ ]] || die "node count must be 1-99, got '$n'"
    [ -e "$state/namespaces" ] && die "a test cluster is already up ($state); run: $0 down"
    ip link show "$bridge" >/dev/null 2>&1 && die "bridge $bridge exists but was not created by this script; refusing to touch it"
    for i in $(seq 1 "$n"); do
        ip netns list | grep -qw "ddpnode$i" && die "namespace ddpnode$i exists but was not created by this script; refusing to touch it"
    done
    mkdir -p "$state"
    : > "$state/namespaces"
    ip link add "$bridge" type bridge
    echo "bridge $bridge" > "$state/links"
    ip addr add "$subnet.1/24" dev "$bridge"
    ip link set "$bridge" up
    : > "$state/hostfile"
    for i in $(seq 1 "$n"); do
        local ns="ddpnode$i" host="veth${i}h" peer="veth${i}n"
        ip netns add "$ns"
        echo "$ns" >> "$state/namespaces"
        ip link add "$host" type veth peer name "$peer"
        echo "link $host" >> "$state/links"
        ip link set "$peer" netns "$ns"
        ip link set "$host" master "$bridge" up
        ip -n "$ns" addr add "$subnet.$((i + 1))/24" dev "$peer"
        ip -n "$ns" link set "$peer" up
        ip -n "$ns" link set lo up
        if [ -n "$qdisc" ]; then
            # shape both directions of the node's link
            tc qdisc add dev "$host" root $qdisc || { down; die "tc could not add '$qdisc' (is the qdisc in this kernel?)"; }
            ip netns exec "$ns" tc qdisc add dev "$peer" root $qdisc
        fi
        echo "$ns slots=2" >> "$state/hostfile"
    done
    # mpi_yield_when_idle: all simulated nodes share this machine's cores with the kernel's TCP
    # processing; ranks that busy-poll starve it (measured: 60 → 29 ms per step on 2 cores).
    cat > "$state/mpirun-args" <<ARGS
--mca mpi_yield_when_idle 1 --hostfile $state/hostfile --mca plm_rsh_agent $root/scripts/netns-agent.sh --mca plm_rsh_no_tree_spawn 1 --mca btl tcp,self --mca btl_tcp_if_include $subnet.0/24 --mca oob_tcp_if_include $subnet.0/24
ARGS
    echo "netns-cluster: $n nodes up (${qdisc:-links not shaped}); hostfile $state/hostfile"
}

down() {
    [ -e "$state/namespaces" ] || { echo "netns-cluster: nothing to tear down"; return 0; }
    while read -r ns; do
        [[ "$ns" =~ ^ddpnode[0-9]+$ ]] || continue  # only names this script makes
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns delete "$ns" 2>/dev/null || true
    done < "$state/namespaces"
    if [ -e "$state/links" ]; then
        while read -r kind name; do ip link delete "$name" 2>/dev/null || true; done < "$state/links"
    fi
    rm -rf "$state"
    echo "netns-cluster: torn down"
}

case "${1:-}" in
    up) shift; [ $# -ge 1 ] || die "usage: $0 up N [NETEM...]"; up "$@" ;;
    down) down ;;
    run)
        shift
        [ $# -ge 1 ] || die "usage: $0 run N [--qdisc SPEC] -- COMMAND..."
        n="$1"; shift
        qdisc=""
        if [ "${1:-}" = "--qdisc" ]; then qdisc="$2"; shift 2; fi
        [ "${1:-}" = "--" ] && shift
        [ $# -ge 1 ] || die "no command given"
        trap down EXIT INT TERM
        up "$n" $qdisc
        "$@"
        ;;
    *) die "usage: $0 up N [QDISC] | down | run N [--qdisc SPEC] -- COMMAND" ;;
esac

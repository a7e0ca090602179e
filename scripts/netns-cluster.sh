#!/usr/bin/env bash
# A test cluster on one machine: N simulated nodes as Linux network namespaces, each with its
# own address on a private bridge, so MPI ranks on different "nodes" talk TCP, not shared
# memory. Needs root (ip netns, veth, bridge).
#
#   scripts/netns-cluster.sh up N [QDISC...]   create ddpnode1..N; QDISC shapes every node link, e.g.
#                                              "netem delay 1ms rate 1gbit" or "tbf rate 1gbit burst 256kb latency 20ms"
#   scripts/netns-cluster.sh up N emulate delay 1ms rate 1gbit
#                                              no veth/bridge: links go through scripts/link-emulator.py
#                                              (userspace delay + rate, for kernels without sch_netem)
#   scripts/netns-cluster.sh down              remove what `up` created (and nothing else)
#   scripts/netns-cluster.sh shaper            print "--qdisc|netem " (kernel has sch_netem) or "--emulate|"
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
    ip link show "$bridge" >/dev/null 2>&1 \
        && die "bridge $bridge exists but was not created by this script; refusing to touch it"
    ip link show ddptun >/dev/null 2>&1 \
        && die "device ddptun exists but was not created by this script; refusing to touch it"
    for i in $(seq 1 "$n"); do
        ip netns list | grep -qw "ddpnode$i" \
            && die "namespace ddpnode$i exists but was not created by this script; refusing to touch it"
    done
    [ "${1:-}" = emulate ] && parse_emulation "${@:2}"
    mkdir -p "$state"
    : > "$state/namespaces"
    : > "$state/links"
    if [ "${1:-}" = emulate ]; then
        up_emulated "$n"
        return
    fi
    ip link add "$bridge" type bridge
    echo "bridge $bridge" >> "$state/links"
    ip addr add "$subnet.1/24" dev "$bridge"
    ip link set "$bridge" up
    : > "$state/hostfile"
    for i in $(seq 1 "$n"); do
        local ns="ddpnode$i" host="veth${i}h" peer="veth${i}n"
        add_namespace "$ns"
        ip link add "$host" type veth peer name "$peer"
        echo "link $host" >> "$state/links"
        ip link set "$peer" netns "$ns"
        ip link set "$host" master "$bridge" up
        ip -n "$ns" addr add "$subnet.$((i + 1))/24" dev "$peer"
        ip -n "$ns" link set "$peer" up
        ip -n "$ns" link set lo up
        # everything else (this host's other addresses, e.g. where srun listens) via the bridge
        ip -n "$ns" route add default via "$subnet.1"
        if [ -n "$qdisc" ]; then
            # shape both directions of the node's link
            tc qdisc add dev "$host" root $qdisc \
                || { down; die "tc could not add '$qdisc' (is the qdisc in this kernel?)"; }
            ip netns exec "$ns" tc qdisc add dev "$peer" root $qdisc
        fi
        echo "$ns slots=2" >> "$state/hostfile"
    done
    write_mpirun_args
    echo "netns-cluster: $n nodes up (${qdisc:-links not shaped}); hostfile $state/hostfile"
}

# Creates a node namespace and records it, so that `down` deletes it (and only what it records).
add_namespace() {
    ip netns add "$1"
    echo "$1" >> "$state/namespaces"
}

# "delay 1ms rate 1gbit" -> delay_ms, rate_mbit
parse_emulation() {
    delay_ms=0 rate_mbit=0
    while [ $# -gt 0 ]; do
        case "$1" in
            delay) [[ "${2:-}" =~ ^([0-9.]+)(us|ms|s)$ ]] || die "emulate: bad delay '${2:-}' (e.g. 1ms)"
                   delay_ms=$(awk -v v="${BASH_REMATCH[1]}" -v u="${BASH_REMATCH[2]}" \
                       'BEGIN { print (u == "us" ? v / 1000 : (u == "s" ? v * 1000 : v)) }') ;;
            rate)  [[ "${2:-}" =~ ^([0-9.]+)(kbit|mbit|gbit)$ ]] || die "emulate: bad rate '${2:-}' (e.g. 1gbit)"
                   rate_mbit=$(awk -v v="${BASH_REMATCH[1]}" -v u="${BASH_REMATCH[2]}" \
                       'BEGIN { print (u == "kbit" ? v / 1000 : (u == "gbit" ? v * 1000 : v)) }') ;;
            *) die "emulate: unknown setting '$1' (delay, rate)" ;;
        esac
        shift 2
    done
}

# Every node (and this namespace, where mpirun runs) gets a TUN device ddptun; the link
# emulator forwards between them with the delay and rate of parse_emulation.
up_emulated() {
    local n="$1" nodes=("-=$subnet.1")
    for i in $(seq 1 "$n"); do
        add_namespace "ddpnode$i"
        nodes+=("ddpnode$i=$subnet.$((i + 1))")
    done
    rm -f "$state/emulator-ready"
    python3 "$root/scripts/link-emulator.py" --delay-ms "$delay_ms" --rate-mbit "$rate_mbit" \
        --ready "$state/emulator-ready" -- "${nodes[@]}" > "$state/emulator.log" 2>&1 &
    echo "emulator $!" >> "$state/links"
    for _ in $(seq 1 100); do [ -s "$state/emulator-ready" ] && break; sleep 0.05; done
    [ -s "$state/emulator-ready" ] || { cat "$state/emulator.log" >&2; down; die "the link emulator did not start"; }
    ip addr add "$subnet.1/24" dev ddptun
    ip link set ddptun mtu 65000 up
    : > "$state/hostfile"
    for i in $(seq 1 "$n"); do
        ip -n "ddpnode$i" addr add "$subnet.$((i + 1))/24" dev ddptun
        ip -n "ddpnode$i" link set ddptun mtu 65000 up
        ip -n "ddpnode$i" link set lo up
        echo "ddpnode$i slots=2" >> "$state/hostfile"
    done
    write_mpirun_args
    local msg="netns-cluster: $n nodes up (links emulated: delay ${delay_ms} ms, rate ${rate_mbit} Mbit/s)"
    echo "$msg; hostfile $state/hostfile"
}

write_mpirun_args() {
    # mpi_yield_when_idle: all simulated nodes share this machine's cores with the kernel's TCP
    # processing; ranks that busy-poll starve it (measured: 60 → 29 ms per step on 2 cores).
    cat > "$state/mpirun-args" <<ARGS
--mca mpi_yield_when_idle 1 --hostfile $state/hostfile --mca plm_rsh_agent $root/scripts/netns-agent.sh \
--mca plm_rsh_no_tree_spawn 1 --mca btl tcp,self --mca btl_tcp_if_include $subnet.0/24 \
--mca oob_tcp_if_include $subnet.0/24
ARGS
}

down() {
    [ -e "$state/namespaces" ] || { echo "netns-cluster: nothing to tear down"; return 0; }
    local ns pids pid
    while read -r ns; do
        [[ "$ns" =~ ^ddpnode[0-9]+$ ]] || continue  # only names this script makes
        pids="$(ip netns pids "$ns" 2>/dev/null || true)"
        [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
        # a killed process may still be writing under $state until it is gone
        for pid in $pids; do
            for _ in $(seq 1 100); do
                # gone, or a zombie (whose files are closed)
                [ -e "/proc/$pid" ] && ! grep -qs '^[0-9]* (.*) Z' "/proc/$pid/stat" || break
                sleep 0.05
            done
        done
        ip netns delete "$ns" 2>/dev/null || true
    done < "$state/namespaces"
    if [ -e "$state/links" ]; then
        while read -r kind name; do
            case "$kind" in
                # the emulator's TUN devices vanish with it; kill only our own emulator process
                emulator)
                    if grep -qs link-emulator.py "/proc/$name/cmdline"; then
                        kill "$name" 2>/dev/null || true
                        for _ in $(seq 1 100); do [ -e "/proc/$name" ] || break; sleep 0.05; done
                        grep -qs link-emulator.py "/proc/$name/cmdline" && kill -9 "$name" 2>/dev/null || true
                    fi ;;
                *) ip link delete "$name" 2>/dev/null || true ;;
            esac
        done < "$state/links"
    fi
    rm -rf "$state" 2>/dev/null || { sleep 1; rm -rf "$state"; }
    echo "netns-cluster: torn down"
}

# How this kernel can add latency to a link: "--qdisc|netem " where it has sch_netem, else
# "--emulate|" (the userspace link emulator) — the run option and the prefix of its spec.
shaper() {
    [ "$(id -u)" -eq 0 ] || die "needs root (ip link)"
    ip link add ddpq0 type veth peer name ddpq1
    if tc qdisc add dev ddpq0 root netem delay 1ms 2>/dev/null; then echo "--qdisc|netem "; else echo "--emulate|"; fi
    ip link delete ddpq0
}

case "${1:-}" in
    shaper) shaper ;;
    up) shift; [ $# -ge 1 ] || die "usage: $0 up N [NETEM...]"; up "$@" ;;
    down) down ;;
    run)
        shift
        [ $# -ge 1 ] || die "usage: $0 run N [--qdisc SPEC] -- COMMAND..."
        n="$1"; shift
        qdisc=""
        if [ "${1:-}" = "--qdisc" ]; then qdisc="$2"; shift 2; fi
        if [ "${1:-}" = "--emulate" ]; then qdisc="emulate $2"; shift 2; fi
        [ "${1:-}" = "--" ] && shift
        [ $# -ge 1 ] || die "no command given"
        trap down EXIT INT TERM
        up "$n" $qdisc
        "$@"
        ;;
    *) msg="usage: $0 up N [QDISC | emulate delay D rate R] | down | shaper"
       die "$msg | run N [--qdisc SPEC | --emulate 'delay D rate R'] -- COMMAND" ;;
esac

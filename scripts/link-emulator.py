#!/usr/bin/env python3
"""A userspace link emulator for the simulated cluster (scripts/netns-cluster.sh --emulate).

Kernels without sch_netem (tc netem) cannot add latency to a link. This program does the job in
userspace: it creates one TUN device per network namespace (plus one in its own namespace, for
mpirun's control traffic), reads every IPv4 packet a namespace sends, and writes it into the
namespace that owns the destination address after

    serialization at RATE on the sender's uplink (packets queue behind each other), then
    a fixed one-way DELAY,

the model of a switched network with one link per node. Packets are never dropped or reordered
within a link. The TUN MTU is large (64 KB), like hosts with segmentation offload, so the packet
rate stays low enough for Python.

    link-emulator.py --delay-ms 1 --rate-mbit 1000 --ready FILE \
        NAMESPACE=ADDRESS [NAMESPACE=ADDRESS ...]      ("-" as NAMESPACE: our own namespace)

It creates the devices (named ddptun), writes FILE when they exist, and forwards until killed;
the devices vanish when it exits. Addresses and routes are configured by the caller.
"""
import argparse
import ctypes
import fcntl
import heapq
import os
import select
import signal
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
DEVICE = "ddptun"

libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def open_tun_in(namespace: str) -> int:
    """Creates the TUN device inside `namespace` (a name under /var/run/netns, or "-")."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        if namespace != "-":
            target = os.open(f"/var/run/netns/{namespace}", os.O_RDONLY)
            try:
                setns(target)
            finally:
                os.close(target)
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", DEVICE.encode(), IFF_TUN | IFF_NO_PI))
        return fd
    finally:
        setns(own)
        os.close(own)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay per packet")
    parser.add_argument("--rate-mbit", type=float, required=True, help="uplink rate per node (0: unlimited)")
    parser.add_argument("--ready", required=True, help="file written once the devices exist")
    parser.add_argument("nodes", nargs="+", metavar="NAMESPACE=ADDRESS")
    args = parser.parse_args()
    if args.delay_ms < 0 or args.rate_mbit < 0:
        parser.error("delay and rate must not be negative")

    # A background helper must not hold its starter's pipes open (a caller reading our parent's
    # output to EOF would wait for us), and must die on SIGTERM even if started with it blocked.
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    fds, owner = [], {}  # owner: IPv4 address (4 bytes) -> fd of the namespace that has it
    for spec in args.nodes:
        namespace, sep, address = spec.partition("=")
        if not sep:
            parser.error(f"expected NAMESPACE=ADDRESS, got '{spec}'")
        fd = open_tun_in(namespace)
        fds.append(fd)
        owner[bytes(int(part) for part in address.split("."))] = fd
    with open(args.ready, "w") as ready:
        ready.write(f"{os.getpid()}\n")

    delay = args.delay_ms / 1e3
    seconds_per_byte = 8 / (args.rate_mbit * 1e6) if args.rate_mbit > 0 else 0.0
    uplink_free = {fd: 0.0 for fd in fds}  # when each sender's link finishes its queued packets
    in_flight = []  # heap of (delivery time, sequence, destination fd, packet)
    sequence = 0
    while True:
        now = time.monotonic()
        timeout = max(0.0, in_flight[0][0] - now) if in_flight else None
        readable, _, _ = select.select(fds, [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if len(packet) < 20 or packet[0] >> 4 != 4:
                    continue  # IPv4 only (no IPv6 router solicitations)
                destination = owner.get(packet[16:20])
                if destination is None:
                    continue
                uplink_free[fd] = max(now, uplink_free[fd]) + len(packet) * seconds_per_byte
                heapq.heappush(in_flight, (uplink_free[fd] + delay, sequence, destination, packet))
                sequence += 1
        while in_flight and in_flight[0][0] <= now:
            _, _, destination, packet = heapq.heappop(in_flight)
            try:
                os.write(destination, packet)
            except (BlockingIOError, OSError):
                pass  # the receiving device is down or full: the packet is lost, as on a wire


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Open MPI launch agent for simulated nodes (plm_rsh_agent): mpirun calls it like ssh,
#   netns-agent.sh HOST COMMAND...
# and it runs COMMAND inside the network namespace named HOST, so mpirun starts its remote
# daemons exactly as over ssh, without sshd. Only namespaces created by netns-cluster.sh
# (listed in its state file) are entered.
set -euo pipefail
state="${DDP_NETNS_STATE:-/tmp/swiftddp-netns}"
host="$1"
shift
grep -qx "$host" "$state/namespaces" 2>/dev/null \
    || { echo "netns-agent: $host is not a SwiftDDP test node" >&2; exit 255; }
# A UTS namespace too, so the node reports its own host name (MPI_Get_processor_name).
exec ip netns exec "$host" unshare --uts /bin/sh -c "hostname $host && $*"

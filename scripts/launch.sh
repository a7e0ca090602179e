#!/usr/bin/env bash
# Runs `ddp SUBCOMMAND ...` under mpirun.
#
#   scripts/launch.sh [--dry-run] -np N [--hostfile FILE] [other mpirun options] -- SUBCOMMAND [options]
#
# --dry-run prints the mpirun line it would run and exits (nothing is built or started).
# - builds the release executable first when sources are newer than it (or uses the ddp in
#   $DDP_BIN_DIR when that is set, without building);
# - adds --allow-run-as-root when run as root;
# - adds --oversubscribe only when N exceeds the available slots (the hostfile's slots, the
#   Slurm allocation's tasks, or this machine's cores);
# - sets OPENBLAS_NUM_THREADS=1 for every rank unless already set, and exports it;
# - binds ranks to cores (--bind-to core --map-by core) unless oversubscribed or the caller
#   chose a binding;
# - passes every other mpirun option through untouched and prints the mpirun line it runs;
# - checks, before mpirun starts, that each hostfile host resolves and answers on the ssh port
#   where mpirun will reach it over ssh, naming the host that does not
#   (DDP_LAUNCH_NO_HOST_CHECK=1 skips this);
# - keeps the job's own error the last line: mpirun's boilerplate after a failure ("Primary job
#   terminated normally…", "mpirun detected that one or more processes exited…", the MPI_ABORT
#   note) is dropped, a rank killed by a signal is told in one line (DDP_LAUNCH_RAW=1 shows
#   mpirun's output as it is);
# - stops an mpirun that is still alive 15 s after its ranks ended (Open MPI 4.1 can deadlock in
#   its teardown), saying so, with status 137;
# - with --max-restarts N: when the job fails (a rank killed or failing), runs it again with
#   --resume from the newest checkpoint of its --checkpoint-dir, at most N times, saying why;
#   with --min-np M and a hostfile, each start uses the hosts that answer, on fewer ranks if
#   need be (a divisor of --global-batch-size), down to M.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
usage() {
    local msg="usage: scripts/launch.sh [--dry-run] [--max-restarts N] -np N [--hostfile FILE] [mpirun options]"
    msg+=" -- SUBCOMMAND [options]"
    echo "$msg" >&2
    exit 2
}

np=""
hostfile=""
user_binding=0
dry_run=0
max_restarts=0
min_np=""
mpi_opts=()
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; break ;;
        --dry-run) dry_run=1; shift ;;
        --max-restarts)
            [ $# -ge 2 ] || usage
            max_restarts="$2"; shift 2
            [[ "$max_restarts" =~ ^[0-9]+$ ]] \
                || { echo "launch: --max-restarts must be a count ≥ 0, got '$max_restarts'" >&2; exit 2; } ;;
        --min-np)
            [ $# -ge 2 ] || usage
            min_np="$2"; shift 2
            [[ "$min_np" =~ ^[1-9][0-9]*$ ]] \
                || { echo "launch: --min-np must be a positive integer, got '$min_np'" >&2; exit 2; } ;;
        -np|-n|--np|-c)
            [ $# -ge 2 ] || usage
            np="$2"; shift 2 ;;
        --hostfile|-hostfile|--machinefile|-machinefile)
            [ $# -ge 2 ] || usage
            hostfile="$2"; shift 2 ;;
        --bind-to|--map-by|-bind-to|-map-by)
            user_binding=1; mpi_opts+=("$1" "$2"); shift 2 ;;
        *) mpi_opts+=("$1"); shift ;;
    esac
done
[ $# -ge 1 ] || usage
[ -n "$np" ] || { echo "launch: -np N is required" >&2; exit 2; }
[[ "$np" =~ ^[1-9][0-9]*$ ]] || { echo "launch: -np must be a positive integer, got '$np'" >&2; exit 2; }
if [ -n "$min_np" ]; then
    [ "$max_restarts" -gt 0 ] || { echo "launch: --min-np goes with --max-restarts" >&2; exit 2; }
    [ "$min_np" -le "$np" ] || { echo "launch: --min-np $min_np exceeds -np $np" >&2; exit 2; }
fi

# Available slots: the hostfile's, else this machine's cores.
if [ -n "$hostfile" ]; then
    [ -r "$hostfile" ] || { echo "launch: cannot read hostfile '$hostfile'" >&2; exit 2; }
    slots=$(awk -v file="$hostfile" '
        /^[[:space:]]*(#|$)/ { next }
        {
            n = 1
            for (i = 2; i <= NF; i++) {
                if ($i ~ /^#/) break
                if ($i ~ /^slots=[0-9]+$/) { split($i, kv, "="); n = kv[2] }
                else if ($i !~ /^max[-_]slots=[0-9]+$/) {
                    printf "launch: %s:%d: cannot parse \"%s\" (a host line is: NAME [slots=N] [max_slots=M])\n", \
                        file, NR, $i > "/dev/stderr"; bad = 1
                }
            }
            total += n
        }
        END { if (bad) exit 1; print total + 0 }' "$hostfile") || exit 2
    [ "$slots" -gt 0 ] || { echo "launch: hostfile '$hostfile' lists no hosts" >&2; exit 2; }
    mpi_opts=(--hostfile "$hostfile" "${mpi_opts[@]}")
elif [ -n "${SLURM_JOB_ID:-}" ]; then
    # Inside a Slurm allocation mpirun takes the hosts from Slurm; its task count is the slots.
    slots="${SLURM_NTASKS:-}"
    if [ -z "$slots" ]; then  # SLURM_TASKS_PER_NODE looks like "16(x4),8"
        slots=$(echo "${SLURM_TASKS_PER_NODE:-}" | tr ',' '\n' \
            | awk -F'[(x)]' 'NF { total += $1 * ($3 == "" ? 1 : $3) } END { print total + 0 }')
    fi
    [[ "$slots" =~ ^[1-9][0-9]*$ ]] || slots=$(nproc)
else
    slots=$(nproc)
fi

if [ "$dry_run" -eq 1 ]; then
    bin_dir="${DDP_BIN_DIR:-$root/.build/release}"
elif [ -n "${DDP_BIN_DIR:-}" ]; then
    # a prebuilt ddp (scripts/test.sh sets this; also for a build elsewhere): no rebuild
    bin_dir="$DDP_BIN_DIR"
    [ -x "$bin_dir/ddp" ] || { echo "launch: no ddp executable in DDP_BIN_DIR=$bin_dir" >&2; exit 1; }
else
    bin_dir="$root/.build/release"
    stamp="$bin_dir/.launch-built"
    if [ ! -x "$bin_dir/ddp" ] || [ ! -e "$stamp" ] \
            || [ -n "$(find "$root/Sources" "$root/Package.swift" -newer "$stamp" -print -quit)" ]; then
        echo "launch: building release" >&2
        (cd "$root" && swift build -c release >/dev/null) \
            || { echo "launch: release build failed (run: swift build -c release)" >&2; exit 1; }
        touch "$stamp"
    fi
fi

extra=()
[ "$(id -u)" -eq 0 ] && extra+=(--allow-run-as-root)
if [ "$np" -gt "$slots" ]; then
    extra+=(--oversubscribe)
    [ "$user_binding" -eq 1 ] || extra+=(--bind-to none)
elif [ "$user_binding" -eq 0 ]; then
    extra+=(--map-by core --bind-to core)
fi
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
# Ranks see a pseudo-terminal under mpirun; tell them whether the user's stdout really is one.
if [ -t 1 ]; then export DDP_STDOUT_TTY=1; else export DDP_STDOUT_TTY=0; fi

# Restarts resume from checkpoints, so the job must write them.
if [ "$max_restarts" -gt 0 ] && ! [[ " $* " == *" --checkpoint-dir "* && " $* " == *" --checkpoint-every "* ]]; then
    msg="launch: --max-restarts needs a job that writes checkpoints"
    msg+=" (train --checkpoint-dir DIR --checkpoint-every N)"
    echo "$msg" >&2
    exit 2
fi

cmd=(mpirun -np "$np" "${extra[@]}" -x OPENBLAS_NUM_THREADS -x DDP_STDOUT_TTY "${mpi_opts[@]}" \
    "$bin_dir/ddp" "$@")
[ "$dry_run" -eq 1 ] && { echo "+ ${cmd[*]}" >&2; exit 0; }

# A host mpirun cannot reach fails late and verbosely (an ssh error per daemon, then a help
# text); say which host, before anything starts.
# mpirun reaches hosts over ssh unless a launch agent is set (which then owns the host names,
# as scripts/netns-cluster.sh's does) or Slurm starts its daemons: only then are they checked.
via_ssh=1
[[ " ${mpi_opts[*]} " == *" plm_rsh_agent "* || -n "${OMPI_MCA_plm_rsh_agent:-}" || -n "${SLURM_JOB_ID:-}" ]] \
    && via_ssh=0
here="$(hostname) $(hostname -f 2>/dev/null || true) localhost"
agent="${OMPI_MCA_plm_rsh_agent:-}"
for i in "${!mpi_opts[@]}"; do
    [ "${mpi_opts[$i]}" = plm_rsh_agent ] && agent="${mpi_opts[$((i + 1))]:-}"
done
# Why HOST cannot take ranks ("" when it can): a launch agent must run a command there; else the
# name must resolve and the ssh port answer.
host_problem() {
    local host="$1"
    [[ " $here " == *" $host "* || "$host" == 127.* || "$host" == ::1 ]] && return 0
    if [ -n "$agent" ]; then
        timeout 10 "$agent" "$host" true >/dev/null 2>&1 || echo "does not answer its launch agent ($agent)"
    elif ! getent ahosts "$host" >/dev/null; then
        echo "does not resolve (check the name, or give its IP address)"
    elif ! timeout 5 bash -c ": <> /dev/tcp/$host/22" 2>/dev/null; then
        echo "does not answer on the ssh port (22) within 5 s; mpirun starts its daemons there over ssh"
    fi
}
check_hosts=0
[ -n "$hostfile" ] && [ -z "${SLURM_JOB_ID:-}" ] && [ "${DDP_LAUNCH_NO_HOST_CHECK:-0}" != 1 ] && check_hosts=1
if [ "$check_hosts" -eq 1 ] && [ "$via_ssh" -eq 1 ] && [ -z "$min_np" ]; then
    for host in $(awk '!/^[[:space:]]*(#|$)/ { print $1 }' "$hostfile" | sort -u); do
        problem="$(host_problem "$host")"
        [ -z "$problem" ] || { echo "launch: hostfile '$hostfile': host '$host' $problem" >&2; exit 2; }
    done
fi

# --min-np M (with --max-restarts): before each start, the hosts that answer, and as many ranks
# as their slots hold (with --global-batch-size G, a divisor of G), at least M.
live="${TMPDIR:-/tmp}/launch-hosts.$$"  # the hosts that answer, rewritten before each start
global_batch="$(printf '%s\n' "$@" | awk 'prev == "--global-batch-size" { print; exit } { prev = $0 }')"
fit_to_live_hosts() {
    [ "$check_hosts" -eq 1 ] && [ -n "$min_np" ] || return 0
    local slots_live=0 n
    : > "$live"
    while read -r host rest; do
        [[ -z "$host" || "$host" == \#* ]] && continue
        problem="$(host_problem "$host")"
        if [ -n "$problem" ]; then echo "launch: host '$host' $problem: leaving it out" >&2; continue; fi
        echo "$host $rest" >> "$live"
        n="$(echo "$rest" | sed -n 's/.*slots=\([0-9]*\).*/\1/p')"
        slots_live=$((slots_live + ${n:-1}))
    done < "$hostfile"
    [ "$interrupted" -eq 1 ] && return 0  # Ctrl-C during the probes: the caller stops
    n=$(( np_now < slots_live ? np_now : slots_live ))
    while [ "$n" -ge 1 ] && [ -n "$global_batch" ] && [ $((global_batch % n)) -ne 0 ]; do n=$((n - 1)); done
    if [ "$n" -lt "$min_np" ]; then
        echo "launch: the hosts that answer hold $slots_live slots; fewer than --min-np $min_np ranks would run" >&2
        exit 1
    fi
    [ "$n" -ne "$np_now" ] && echo "launch: running on $n ranks (of $np) on the hosts that answer" >&2
    np_now="$n"
    cmd=(mpirun -np "$np_now" "${cmd[@]:3}")
    for i in "${!cmd[@]}"; do
        [ "${cmd[$i]}" = "$hostfile" ] && [ "${cmd[$((i - 1))]}" = "--hostfile" ] && cmd[$i]="$live"
    done
    return 0
}
np_now="$np"

filter=(awk -f "$root/scripts/mpirun-quiet.awk")
[ "${DDP_LAUNCH_RAW:-0}" = 1 ] && filter=(cat)

# Open MPI 4.1's mpirun can deadlock in its own teardown (PMIx_server_finalize) after a rank was
# killed: its ranks are gone, and it neither exits nor answers SIGTERM. A watchdog beside it stops
# it once none of its children (but the stderr filter) has been alive for 15 s, so the job ends
# (or restarts); the file $wedged says it did. mpirun's children live as long as the job: local
# ranks, or the ssh/srun that runs a remote node's daemon. Only builtins and one sleep per second:
# it runs beside every job, benchmarks included.
has_live_child() {
    local tasks c comm key value kids
    for tasks in /proc/"$1"/task/*/children; do
        kids=()
        read -r -a kids 2>/dev/null < "$tasks" || true
        for c in "${kids[@]}"; do
            comm="" key="" value=""
            read -r comm 2>/dev/null < "/proc/$c/comm" || continue
            [ "$comm" = "${filter[0]}" ] && continue
            while read -r key value; do [ "$key" = State: ] && break; done 2>/dev/null < "/proc/$c/status" || true
            [ "$key" = State: ] && [ "${value:0:1}" != Z ] && return 0
        done
    done
    return 1
}
watch_teardown() {
    trap '' TERM HUP INT  # a signal to the whole group must not end it while mpirun stops
    local seen=0 idle=0
    while kill -0 "$1" 2>/dev/null; do
        if has_live_child "$1"; then seen=1; idle=0; elif [ "$seen" -eq 1 ]; then idle=$((idle + 1)); fi
        if [ "$idle" -ge 15 ]; then
            : > "$wedged"  # before the kill: the launcher may stop this watchdog as soon as mpirun is gone
            kill -KILL "$1" 2>/dev/null || true
            exit 0
        fi
        sleep 1
    done
}

# mpirun runs as a child here, in the launcher's process group: Ctrl-C and a terminal's hangup
# reach it (and the ranks) directly, so those are not passed on (a second signal within 5 s makes
# mpirun exit without stopping its ranks); TERM, USR1 and USR2 sent to the launcher alone are. Its
# stderr passes through a filter that drops its failure boilerplate; the filter ignores Ctrl-C so
# that it still prints what mpirun says while stopping the job.
wedged="${TMPDIR:-/tmp}/launch-wedged.$$"
# A launcher killed outright (SIGKILL, which no trap sees) must not leave the job running: the kernel then sends
# mpirun SIGTERM, and mpirun stops its ranks (PR_SET_PDEATHSIG through util-linux's setpriv, where it exists).
orphan_guard=()
setpriv --pdeathsig TERM true 2>/dev/null && orphan_guard=(setpriv --pdeathsig TERM)
trap 'rm -f "$live" "$wedged"' EXIT
pid=""
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; interrupted=1' TERM
trap 'interrupted=1' INT HUP
trap '[ -n "$pid" ] && kill -USR1 "$pid" 2>/dev/null' USR1
trap '[ -n "$pid" ] && kill -USR2 "$pid" 2>/dev/null' USR2
interrupted=0
attempt=0
while :; do
    fit_to_live_hosts
    if [ "$interrupted" -eq 1 ]; then echo "launch: interrupted before mpirun started" >&2; exit 130; fi
    rm -f "$wedged"
    echo "+ ${cmd[*]}" >&2
    "${orphan_guard[@]}" "${cmd[@]}" 2> >(trap '' INT TERM HUP; exec "${filter[@]}" >&2) &
    pid=$!
    watch_teardown "$pid" &
    watchdog=$!
    status=0
    # (2>/dev/null: without bash's "Killed" line when the watchdog stops mpirun)
    wait "$pid" 2>/dev/null || status=$?
    while kill -0 "$pid" 2>/dev/null; do wait "$pid" 2>/dev/null || status=$?; done  # a trapped signal ended it
    pid=""
    kill -KILL "$watchdog" 2>/dev/null || true
    wait "$watchdog" 2>/dev/null || true
    # (the stderr filter is mpirun's child, not this script's: nothing else to wait for)
    [ "$status" -eq 0 ] && exit 0
    # usage errors and interruptions are not failures a restart can fix
    if [ "$interrupted" -eq 1 ] || [ "$status" -eq 64 ] || [ "$status" -eq 2 ]; then exit "$status"; fi
    case "$status" in
        137) reason="a rank was killed (signal 9)"
             [ -e "$wedged" ] && reason="mpirun hung in its teardown after its ranks ended" ;;
        1) reason="a rank failed" ;;
        *) reason="exit status $status" ;;
    esac
    if [ "$attempt" -ge "$max_restarts" ]; then
        if [ "$max_restarts" -gt 0 ]; then
            echo "launch: $reason; no restart left (--max-restarts $max_restarts)" >&2
        elif [ -e "$wedged" ]; then
            echo "launch: $reason; stopped it" >&2
        fi
        exit "$status"
    fi
    attempt=$((attempt + 1))
    echo "launch: $reason; restart $attempt of $max_restarts, resuming from the newest checkpoint" >&2
    [[ " ${cmd[*]} " == *" --resume "* ]] || cmd+=(--resume)
done

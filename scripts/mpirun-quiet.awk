# Filters mpirun's stderr (scripts/launch.sh): the job's own error stays the last line.
#
# mpirun frames its messages with lines of dashes. Blocks that only repeat what the job already
# said (a rank exited non-zero; MPI_Abort was called; a rank lost its connection to the failed
# one, or could not read its memory) are dropped when the job printed an error before them, else
# told in one line; "exited on signal" becomes one line; "N more processes have sent help
# message" lines and mpirun's errors relaying a dying rank's help text are dropped; everything
# else passes unchanged, in order.
function flush_block(    text, m, peer) {
    text = block
    if (text ~ /Primary job +terminated normally/) {
        # nothing to add: the exit status says it
    } else if (text ~ /mpirun detected that one or more processes exited with non-zero status/) {
        if (!saw_error && match(text, /Process name: *\[\[[0-9]+,[0-9]+\],[0-9]+\]/)) {
            m = substr(text, RSTART, RLENGTH); sub(/.*,/, "", m); sub(/\]\]?$/, "", m)
            code = ""
            if (match(text, /Exit code: *[0-9]+/)) { code = substr(text, RSTART, RLENGTH); sub(/.*: */, "", code) }
            print "launch: rank " m " exited with status " code
        }
        told = 1
    } else if (text ~ /MPI_ABORT was invoked on rank/) {
        if (!saw_error && match(text, /invoked on rank [0-9]+/)) {
            m = substr(text, RSTART, RLENGTH); sub(/.* /, "", m)
            print "launch: rank " m " called MPI_Abort"
        }
        told = 1
    } else if (text ~ /An MPI communication peer process has unexpectedly disconnected/) {
        # a surviving rank noticing the failed one, before or after mpirun names that one: told
        # at the end, only if nothing else said what failed
        if (match(text, /Local host: *[^ ]+/)) {
            m = substr(text, RSTART, RLENGTH); sub(/.*: */, "", m)
            peer = ""
            if (match(text, /Peer host: *[^ ]+/)) { peer = substr(text, RSTART, RLENGTH); sub(/.*: */, "", peer) }
            lost = "launch: a rank on " m " lost its connection to a peer" (peer == "" ? "" : " on " peer)
        }
    } else if (match(text, /process rank [0-9]+ with PID [0-9]+ on node [^ ]+ exited on signal [0-9]+( \([^)]*\))?/)) {
        m = substr(text, RSTART, RLENGTH)
        sub(/with PID [0-9]+ /, "", m); sub(/^process /, "", m)
        print "launch: " m
        told = 1
    } else {
        printf "%s", raw
    }
    block = ""; raw = ""; inside = 0
}
BEGIN { inside = 0; saw_error = 0; told = 0; lost = ""; block = ""; raw = "" }
/^--------------------+$/ {
    if (inside) { raw = raw $0 "\n"; flush_block() } else { inside = 1; raw = $0 "\n"; block = "" }
    fflush(); next
}
inside { raw = raw $0 "\n"; block = block " " $0; next }
/ddp: error:/ || /^Error: / { saw_error = 1 }
/more process(es)? ha(s|ve) sent help message/ || /Set MCA parameter "orte_base_help_aggregate"/ { next }
# mpirun failing to relay the help text of a rank that was killed while sending it
/ORTE_ERROR_LOG: .* in file [^ ]*show_help\.c at line/ { next }
# a surviving rank's single-copy read from a peer's memory (Open MPI's vader transport) failing with
# ESRCH: the peer process is gone; told at the end, like a lost connection (other errnos pass unchanged)
/^\[[^:]+:[0-9]+\] Read -?[0-9]+, expected [0-9]+, errno = 3$/ {
    if (lost == "") {
        m = $1; sub(/^\[/, "", m); sub(/:[0-9]+\]$/, "", m)
        lost = "launch: a rank on " m " lost a peer process (reading its memory: errno 3)"
    }
    next
}
{ print; fflush() }
END {
    if (inside) printf "%s", raw
    if (lost != "" && !saw_error && !told) print lost
}

// A placement probe, not a kernel of the step: how long one cache line takes to go from one
// process (or thread) to another and back. Two CPUs that share an L3 answer in tens of
// nanoseconds; across dies or sockets it is several times that, and every byte the ranks
// exchange (gradients, parameters, SyncBN statistics) pays the same distance.
#define _GNU_SOURCE
#include "CSwiftDDPKernels.h"
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// Waits until *flag == want; false once `deadline` has passed. Yields now and then, so a
/// partner sharing this CPU (oversubscribed ranks) still gets to run.
static int wait_for(_Atomic int32_t *flag, int32_t want, double deadline) {
    for (unsigned spins = 1;; spins++) {
        if (atomic_load_explicit(flag, memory_order_acquire) == want) return 1;
        relax();
        if ((spins & 1023) == 0) {
            sched_yield();
            if (now_seconds() > deadline) return 0;
        }
    }
}

double ddp_cache_line_round_trip(int32_t *line, int initiator, int rounds, double timeout_seconds) {
    _Atomic int32_t *flag = (_Atomic int32_t *)line;
    double deadline = now_seconds() + timeout_seconds;
    if (!initiator) {
        for (int i = 0; i < rounds; i++) {
            if (!wait_for(flag, 1, deadline)) return -1;
            atomic_store_explicit(flag, 0, memory_order_release);
        }
        return 0;
    }
    double start = now_seconds();
    for (int i = 0; i < rounds; i++) {
        atomic_store_explicit(flag, 1, memory_order_release);
        if (!wait_for(flag, 0, deadline)) return -1;
    }
    return (now_seconds() - start) / rounds * 1e9;
}

// Generation flags in memory that the ranks of one host share: each rank publishes how many
// times it has contributed to a collective, and reads the others'. Lets a collective start
// (publish) and finish (wait for everyone) at two different points of a rank's program.
#define _GNU_SOURCE
#include "CSwiftDDPKernels.h"
#include <sched.h>
#include <stdatomic.h>

void ddp_flag_publish(int64_t *flag, int64_t generation) {
    atomic_store_explicit((_Atomic int64_t *)flag, generation, memory_order_release);
}

int ddp_flags_reached(int64_t *const *flags, int members, int64_t generation) {
    for (int m = 0; m < members; m++) {
        if (atomic_load_explicit((_Atomic int64_t *)flags[m], memory_order_acquire) < generation) return 0;
    }
    return 1;
}

void ddp_flags_wait(int64_t *const *flags, int members, int64_t generation) {
    for (unsigned spins = 1; !ddp_flags_reached(flags, members, generation); spins++) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        // Ranks may outnumber cores: past a short spin, let the rank being waited for run.
        if (spins >= 64) sched_yield();
    }
}

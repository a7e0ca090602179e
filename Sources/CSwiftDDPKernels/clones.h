// What every kernel file of this target shares: each exported loop is compiled for x86-64-v4
// (AVX-512), x86-64-v3 (AVX2) and baseline, and the loader picks the clone for the CPU
// (`CLONES`); no multiply-add contraction, so every clone gives the same bits.
#ifndef SWIFTDDP_CKERNELS_CLONES_H
#define SWIFTDDP_CKERNELS_CLONES_H

#pragma clang fp contract(off)

#if defined(__x86_64__) && defined(__clang__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

#endif

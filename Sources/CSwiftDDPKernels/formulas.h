// What kernels.c and pooling.c share: the per-element formulas of BatchNorm and the fused
// activations, and the walk over a pixel's channels in blocks. Each kernel compiles them into
// its own target_clones instances (INLINE), so every x86-64 level gets the same operations.
#ifndef SWIFTDDP_CKERNELS_FORMULAS_H
#define SWIFTDDP_CKERNELS_FORMULAS_H

#include <stddef.h>

#include "clones.h"

// Inlined into each exported kernel, so that every target_clones instance compiles it for its level.
#define INLINE static inline __attribute__((always_inline))

// Channels per block: one 64-byte cache line of floats, one AVX-512 vector.
enum { BLOCK = 16 };

// call(BLOCK) for each whole block of `cols` channels (c0 the block's first), then call(rest): a
// constant trip count lets a block's running values stay in registers across a loop around it.
#define FOR_BLOCKS(c0, cols, call)                                                                                     \
    do {                                                                                                               \
        ptrdiff_t c0 = 0;                                                                                              \
        for (; c0 + BLOCK <= (cols); c0 += BLOCK) call(BLOCK);                                                         \
        if (c0 < (cols)) call((cols) - c0);                                                                            \
    } while (0)

// The fused activation (`activation` 0 none, 1 ReLU, 2 LeakyReLU with negative `slope`).
INLINE float activate(float v, int activation, float slope) {
    switch (activation) {
    case 1: return v < 0 ? 0 : v;
    case 2: return v <= 0 ? slope * v : v;
    default: return v;
    }
}

// The fused activation's derivative applied to g, decided from the pre-activation value
// v = γ·x̂ + β: v ≤ 0 exactly where the activation's output is ≤ 0, so the mask needs neither
// the output nor a pass over it.
INLINE float activation_gradient(float g, float v, float slope) { return v <= 0 ? g * slope : g; }

// x̂ is recomputed from the layer's input in backward, with the same two operations as forward
// (so the same bits), instead of being stored: one array less to write and to read back.
INLINE float normalized(float x, float mean, float inv) { return (x - mean) * inv; }

#endif

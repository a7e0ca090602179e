#include "CSwiftDDPKernels.h"

#include <stdint.h>
#include <string.h>

#include "clones.h"

// Channels per block in the per-column reductions: one 64-byte cache line of floats.
enum { BLOCK = 16 };
// Rows summed in float32 before the partial sums go into the Double accumulators.
enum { PARTIAL_ROWS = 16 };

static inline int is_non_finite(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x7f800000u) == 0x7f800000u;
}

CLONES int ddp_sgd_momentum(float *restrict p, const float *restrict grad, float *restrict buf, ptrdiff_t n, float lr,
                            float mu, float dampening, float wd, int nesterov, int first) {
    const float keep = 1 - dampening;
    int bad = 0;
    // One loop per case, so none branches inside.
    if (first && !nesterov) {
        for (ptrdiff_t i = 0; i < n; i++) {
            float g = grad[i] + wd * p[i];
            bad |= is_non_finite(g);
            buf[i] = g;
            p[i] = p[i] - lr * g;
        }
    } else if (first) {
        for (ptrdiff_t i = 0; i < n; i++) {
            float g = grad[i] + wd * p[i];
            bad |= is_non_finite(g);
            buf[i] = g;
            p[i] = p[i] - lr * (g + mu * g);
        }
    } else if (!nesterov) {
        for (ptrdiff_t i = 0; i < n; i++) {
            float g = grad[i] + wd * p[i];
            bad |= is_non_finite(g);
            float b = mu * buf[i] + keep * g;
            buf[i] = b;
            p[i] = p[i] - lr * b;
        }
    } else {
        for (ptrdiff_t i = 0; i < n; i++) {
            float g = grad[i] + wd * p[i];
            bad |= is_non_finite(g);
            float b = mu * buf[i] + keep * g;
            buf[i] = b;
            p[i] = p[i] - lr * (g + mu * b);
        }
    }
    return !bad;
}

// Adds a block's float32 partial sums into its Double accumulators.
static inline void add_partials(double *restrict d1, double *restrict d2, const float *restrict p1,
                                const float *restrict p2) {
    for (int j = 0; j < BLOCK; j++) {
        d1[j] += p1[j];
        d2[j] += p2[j];
    }
}

// Writes a block's sums for its `width` columns.
static inline void store_sums(double *restrict s1, double *restrict s2, const double *restrict d1,
                              const double *restrict d2, ptrdiff_t width) {
    for (ptrdiff_t j = 0; j < width; j++) {
        s1[j] = d1[j];
        s2[j] = d2[j];
    }
}

// The per-column reductions walk BLOCK columns at a time down all rows, keeping the partial
// sums in registers (a row-major walk would keep them in memory). `width` < BLOCK only for the
// last block; each column's arithmetic is the same either way.
CLONES void ddp_shifted_moments(const float *restrict x, ptrdiff_t rows, ptrdiff_t cols, const float *restrict shift,
                                double *restrict s1, double *restrict s2) {
    for (ptrdiff_t c0 = 0; c0 < cols; c0 += BLOCK) {
        const ptrdiff_t width = cols - c0 < BLOCK ? cols - c0 : BLOCK;
        double d1[BLOCK] = {0}, d2[BLOCK] = {0};
        float k[BLOCK] = {0};
        for (ptrdiff_t j = 0; j < width; j++) k[j] = shift[c0 + j];
        for (ptrdiff_t r0 = 0; r0 < rows; r0 += PARTIAL_ROWS) {
            const ptrdiff_t end = rows - r0 < PARTIAL_ROWS ? rows : r0 + PARTIAL_ROWS;
            float p1[BLOCK] = {0}, p2[BLOCK] = {0};
            if (width == BLOCK) {
                for (ptrdiff_t r = r0; r < end; r++) {
                    const float *row = x + r * cols + c0;
                    for (int j = 0; j < BLOCK; j++) {
                        float d = row[j] - k[j];
                        p1[j] += d;
                        p2[j] += d * d;
                    }
                }
            } else {
                for (ptrdiff_t r = r0; r < end; r++) {
                    const float *row = x + r * cols + c0;
                    for (ptrdiff_t j = 0; j < width; j++) {
                        float d = row[j] - k[j];
                        p1[j] += d;
                        p2[j] += d * d;
                    }
                }
            }
            add_partials(d1, d2, p1, p2);
        }
        store_sums(s1 + c0, s2 + c0, d1, d2, width);
    }
}

// The fused activation's derivative applied to g, decided from the pre-activation value
// v = γ·x̂ + β: v ≤ 0 exactly where the activation's output is ≤ 0, so the mask needs neither
// the output nor a pass over it.
static inline float activation_gradient(float g, float v, float slope) { return v <= 0 ? g * slope : g; }

static inline float activate(float v, int activation, float slope) {
    switch (activation) {
    case 1: return v < 0 ? 0 : v;
    case 2: return v <= 0 ? slope * v : v;
    default: return v;
    }
}

// x̂ is recomputed from the layer's input in backward, with the same two operations as forward
// (so the same bits), instead of being stored: one array less to write and to read back.
static inline float normalized(float x, float mean, float inv) { return (x - mean) * inv; }

CLONES void ddp_gradient_sums(const float *restrict g, const float *restrict x, ptrdiff_t rows, ptrdiff_t cols,
                              const float *restrict mean, const float *restrict inv, const float *restrict gamma,
                              const float *restrict beta, int activation, float slope, double *restrict s1,
                              double *restrict s2) {
    for (ptrdiff_t c0 = 0; c0 < cols; c0 += BLOCK) {
        const ptrdiff_t width = cols - c0 < BLOCK ? cols - c0 : BLOCK;
        double d1[BLOCK] = {0}, d2[BLOCK] = {0};
        float m[BLOCK] = {0}, v[BLOCK] = {0}, w[BLOCK] = {0}, b[BLOCK] = {0};
        for (ptrdiff_t j = 0; j < width; j++) {
            m[j] = mean[c0 + j];
            v[j] = inv[c0 + j];
            w[j] = gamma[c0 + j];
            b[j] = beta[c0 + j];
        }
        for (ptrdiff_t r0 = 0; r0 < rows; r0 += PARTIAL_ROWS) {
            const ptrdiff_t end = rows - r0 < PARTIAL_ROWS ? rows : r0 + PARTIAL_ROWS;
            float p1[BLOCK] = {0}, p2[BLOCK] = {0};
            if (width == BLOCK && activation) {
                for (ptrdiff_t r = r0; r < end; r++) {
                    const ptrdiff_t o = r * cols + c0;
                    for (int j = 0; j < BLOCK; j++) {
                        float h = normalized(x[o + j], m[j], v[j]);
                        float gv = activation_gradient(g[o + j], w[j] * h + b[j], slope);
                        p1[j] += gv;
                        p2[j] += gv * h;
                    }
                }
            } else if (width == BLOCK) {
                for (ptrdiff_t r = r0; r < end; r++) {
                    const ptrdiff_t o = r * cols + c0;
                    for (int j = 0; j < BLOCK; j++) {
                        float h = normalized(x[o + j], m[j], v[j]);
                        p1[j] += g[o + j];
                        p2[j] += g[o + j] * h;
                    }
                }
            } else {
                for (ptrdiff_t r = r0; r < end; r++) {
                    const ptrdiff_t o = r * cols + c0;
                    for (ptrdiff_t j = 0; j < width; j++) {
                        float h = normalized(x[o + j], m[j], v[j]);
                        float gv = activation ? activation_gradient(g[o + j], w[j] * h + b[j], slope) : g[o + j];
                        p1[j] += gv;
                        p2[j] += gv * h;
                    }
                }
            }
            add_partials(d1, d2, p1, p2);
        }
        store_sums(s1 + c0, s2 + c0, d1, d2, width);
    }
}

CLONES void ddp_batchnorm_forward(const float *restrict x, ptrdiff_t rows, ptrdiff_t cols, const float *restrict mean,
                                  const float *restrict inv, const float *restrict gamma, const float *restrict beta,
                                  float *restrict y, int activation, float slope) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        switch (activation) {
        case 1:
            for (ptrdiff_t c = 0; c < cols; c++)
                yr[c] = activate(gamma[c] * normalized(xr[c], mean[c], inv[c]) + beta[c], 1, 0);
            break;
        case 2:
            for (ptrdiff_t c = 0; c < cols; c++)
                yr[c] = activate(gamma[c] * normalized(xr[c], mean[c], inv[c]) + beta[c], 2, slope);
            break;
        default:
            for (ptrdiff_t c = 0; c < cols; c++) yr[c] = gamma[c] * normalized(xr[c], mean[c], inv[c]) + beta[c];
        }
    }
}

CLONES void ddp_batchnorm_backward(const float *restrict g, const float *restrict x, ptrdiff_t rows, ptrdiff_t cols,
                                   const float *restrict mean, const float *restrict inv, const float *restrict gamma,
                                   const float *restrict beta, int activation, float slope, const float *restrict k,
                                   const float *restrict a, const float *restrict s, float *restrict d) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const ptrdiff_t o = r * cols;
        if (activation) {
            for (ptrdiff_t c = 0; c < cols; c++) {
                float h = normalized(x[o + c], mean[c], inv[c]);
                float gv = activation_gradient(g[o + c], gamma[c] * h + beta[c], slope);
                d[o + c] = k[c] * (gv - a[c] - h * s[c]);
            }
        } else {
            for (ptrdiff_t c = 0; c < cols; c++)
                d[o + c] = k[c] * (g[o + c] - a[c] - normalized(x[o + c], mean[c], inv[c]) * s[c]);
        }
    }
}

CLONES void ddp_relu(const float *restrict x, float *restrict y, ptrdiff_t n, float slope) {
    if (slope == 0) {
        for (ptrdiff_t i = 0; i < n; i++) y[i] = activate(x[i], 1, 0);
    } else {
        for (ptrdiff_t i = 0; i < n; i++) y[i] = activate(x[i], 2, slope);
    }
}

CLONES void ddp_add_relu(const float *restrict a, const float *restrict b, float *restrict y, ptrdiff_t n,
                         float slope) {
    if (slope == 0) {
        for (ptrdiff_t i = 0; i < n; i++) y[i] = activate(a[i] + b[i], 1, 0);
    } else {
        for (ptrdiff_t i = 0; i < n; i++) y[i] = activate(a[i] + b[i], 2, slope);
    }
}

CLONES void ddp_add(const float *restrict a, const float *restrict b, float *restrict y, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

CLONES void ddp_relu_backward(const float *restrict y, const float *restrict g, float *restrict d, ptrdiff_t n,
                              float slope) {
    // y ≤ 0 exactly where the input was ≤ 0 (slope ≥ 0), so the output decides like the input.
    for (ptrdiff_t i = 0; i < n; i++) d[i] = activation_gradient(g[i], y[i], slope);
}

CLONES void ddp_sum_members(float *dst, const float *const *src, int members, ptrdiff_t n) {
    // Tiles through a local accumulator, so dst may alias a source and the loops still vectorize.
    enum { TILE = 512 };
    float acc[TILE];
    for (ptrdiff_t i0 = 0; i0 < n; i0 += TILE) {
        const ptrdiff_t width = n - i0 < TILE ? n - i0 : TILE;
        const float *first = src[0] + i0;
        for (ptrdiff_t j = 0; j < width; j++) acc[j] = first[j];
        for (int m = 1; m < members; m++) {
            const float *s = src[m] + i0;
            for (ptrdiff_t j = 0; j < width; j++) acc[j] += s[j];
        }
        for (ptrdiff_t j = 0; j < width; j++) dst[i0 + j] = acc[j];
    }
}

#if defined(__x86_64__) && defined(__clang__)
const char *ddp_kernels_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3";
    return "baseline";
}
#else
const char *ddp_kernels_level(void) { return "baseline"; }
#endif

#include "CSwiftDDPKernels.h"

#include <stdint.h>
#include <string.h>

#include "clones.h"

// Inlined into each exported kernel, so that every target_clones instance compiles it for its level.
#define INLINE static inline __attribute__((always_inline))

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

// The moments walk BLOCK columns at a time down all rows, keeping the partial sums in registers
// (a row-major walk would keep them in memory). `width` < BLOCK only for the last block; each
// column's arithmetic is the same either way. (The gradient sums below go a group of rows at a
// time instead, with the same arithmetic per column.)
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

// Where a row of the input sits in its max pooling's windows (ddp_pooled_gradient), stepped row by
// row without divisions: pixel (y, x) of sample b, in window (py, px) at offset (ky, kx).
typedef struct {
    ptrdiff_t b, y, x, py, px, ky, kx;
} pool_cursor;

INLINE void pool_cursor_step(pool_cursor *q, const ddp_pooled_gradient *p) {
    q->x++;
    if (++q->kx == p->k) {
        q->kx = 0;
        q->px++;
    }
    if (q->x < p->w) return;
    q->x = q->kx = q->px = 0;
    q->y++;
    if (++q->ky == p->k) {
        q->ky = 0;
        q->py++;
    }
    if (q->y < p->h) return;
    q->y = q->ky = q->py = 0;
    q->b++;
}

// Columns c0 ..< c0 + width of the dense input gradient at the cursor's row, into out: the pooled
// gradient where this input was its window's maximum, else 0 (what ddp_maxpool_backward writes).
INLINE const float *pooled_row(const ddp_pooled_gradient *p, ptrdiff_t cols, const pool_cursor *q, ptrdiff_t c0,
                               ptrdiff_t width, float *restrict out) {
    if (q->py < p->oh && q->px < p->ow) {
        const ptrdiff_t o = ((q->b * p->oh + q->py) * p->ow + q->px) * cols + c0;
        const int32_t at = (int32_t)((q->y * p->w + q->x) * cols + c0);
        const float *restrict g = p->g + o;
        const int32_t *restrict index = p->index + o;
        for (ptrdiff_t j = 0; j < width; j++) out[j] = index[j] == at + (int32_t)j ? g[j] : 0;
    } else {
        for (ptrdiff_t j = 0; j < width; j++) out[j] = 0;  // outside every window (floor mode)
    }
    return out;
}

// Columns per chunk when a pooled gradient is unpacked: a group of rows at a time, into a tile
// that stays in L1.
enum { ROW_CHUNK = 256 };

// The gradient sums of one group of n ≤ PARTIAL_ROWS rows over `width` columns, added into s1, s2:
// per column, float partial sums over the group's rows in order, then one add into the Double
// sum. g and x are the group's first rows (row strides gs and xs); mean … s2 start at the same
// column. Dense and pooled gradients both go through here, group after group in row order, so
// they give the same bits.
INLINE void group_sums(const float *restrict g, ptrdiff_t gs, const float *restrict x, ptrdiff_t xs, ptrdiff_t n,
                       ptrdiff_t width, const float *restrict mean, const float *restrict inv,
                       const float *restrict gamma, const float *restrict beta, int activation, float slope,
                       double *restrict s1, double *restrict s2) {
    for (ptrdiff_t c0 = 0; c0 < width; c0 += BLOCK) {
        const ptrdiff_t bw = width - c0 < BLOCK ? width - c0 : BLOCK;
        float p1[BLOCK] = {0}, p2[BLOCK] = {0}, m[BLOCK] = {0}, v[BLOCK] = {0}, w[BLOCK] = {0}, b[BLOCK] = {0};
        for (ptrdiff_t j = 0; j < bw; j++) {
            m[j] = mean[c0 + j];
            v[j] = inv[c0 + j];
            w[j] = gamma[c0 + j];
            b[j] = beta[c0 + j];
        }
        const float *restrict gb = g + c0, *restrict xb = x + c0;
        if (bw == BLOCK && activation) {
            for (ptrdiff_t t = 0; t < n; t++) {
                for (int j = 0; j < BLOCK; j++) {
                    float h = normalized(xb[t * xs + j], m[j], v[j]);
                    float gv = activation_gradient(gb[t * gs + j], w[j] * h + b[j], slope);
                    p1[j] += gv;
                    p2[j] += gv * h;
                }
            }
        } else if (bw == BLOCK) {
            for (ptrdiff_t t = 0; t < n; t++) {
                for (int j = 0; j < BLOCK; j++) {
                    float h = normalized(xb[t * xs + j], m[j], v[j]);
                    p1[j] += gb[t * gs + j];
                    p2[j] += gb[t * gs + j] * h;
                }
            }
        } else {
            for (ptrdiff_t t = 0; t < n; t++) {
                for (ptrdiff_t j = 0; j < bw; j++) {
                    float h = normalized(xb[t * xs + j], m[j], v[j]), gj = gb[t * gs + j];
                    float gv = activation ? activation_gradient(gj, w[j] * h + b[j], slope) : gj;
                    p1[j] += gv;
                    p2[j] += gv * h;
                }
            }
        }
        for (ptrdiff_t j = 0; j < bw; j++) {
            s1[c0 + j] += p1[j];
            s2[c0 + j] += p2[j];
        }
    }
}

INLINE void gradient_sums(const float *restrict g, const ddp_pooled_gradient *pool, const float *restrict x,
                          ptrdiff_t rows, ptrdiff_t cols, const float *restrict mean, const float *restrict inv,
                          const float *restrict gamma, const float *restrict beta, int activation, float slope,
                          double *restrict s1, double *restrict s2) {
    for (ptrdiff_t c = 0; c < cols; c++) s1[c] = s2[c] = 0;
    if (!pool) {
        for (ptrdiff_t r0 = 0; r0 < rows; r0 += PARTIAL_ROWS) {
            const ptrdiff_t n = rows - r0 < PARTIAL_ROWS ? rows - r0 : PARTIAL_ROWS;
            group_sums(g + r0 * cols, cols, x + r0 * cols, cols, n, cols, mean, inv, gamma, beta, activation, slope,
                       s1, s2);
        }
        return;
    }
    float tile[PARTIAL_ROWS * ROW_CHUNK];
    for (ptrdiff_t cc = 0; cc < cols; cc += ROW_CHUNK) {
        const ptrdiff_t chunk = cols - cc < ROW_CHUNK ? cols - cc : ROW_CHUNK;
        pool_cursor cursor = {0};
        for (ptrdiff_t r0 = 0; r0 < rows; r0 += PARTIAL_ROWS) {
            const ptrdiff_t n = rows - r0 < PARTIAL_ROWS ? rows - r0 : PARTIAL_ROWS;
            for (ptrdiff_t t = 0; t < n; t++) {
                pooled_row(pool, cols, &cursor, cc, chunk, tile + t * chunk);
                pool_cursor_step(&cursor, pool);
            }
            group_sums(tile, chunk, x + r0 * cols + cc, cols, n, chunk, mean + cc, inv + cc, gamma + cc, beta + cc,
                       activation, slope, s1 + cc, s2 + cc);
        }
    }
}

CLONES void ddp_gradient_sums(const float *restrict g, const ddp_pooled_gradient *pool, const float *restrict x,
                              ptrdiff_t rows, ptrdiff_t cols, const float *restrict mean, const float *restrict inv,
                              const float *restrict gamma, const float *restrict beta, int activation, float slope,
                              double *restrict s1, double *restrict s2) {
    // Two instances, so that each one's loops know whether the gradient is pooled.
    if (pool)
        gradient_sums(NULL, pool, x, rows, cols, mean, inv, gamma, beta, activation, slope, s1, s2);
    else
        gradient_sums(g, NULL, x, rows, cols, mean, inv, gamma, beta, activation, slope, s1, s2);
}

// One row of ddp_batchnorm_forward for a constant `activation`; with a residual row, the sum
// (γ·x̂ + β) + residual is rounded as ddp_add_relu rounds it.
INLINE void batchnorm_forward_row(const float *restrict xr, const float *restrict rr, ptrdiff_t cols,
                                  const float *restrict mean, const float *restrict inv, const float *restrict gamma,
                                  const float *restrict beta, float *restrict yr, int activation, float slope) {
    if (rr) {
        for (ptrdiff_t c = 0; c < cols; c++)
            yr[c] = activate((gamma[c] * normalized(xr[c], mean[c], inv[c]) + beta[c]) + rr[c], activation, slope);
    } else {
        for (ptrdiff_t c = 0; c < cols; c++)
            yr[c] = activate(gamma[c] * normalized(xr[c], mean[c], inv[c]) + beta[c], activation, slope);
    }
}

CLONES void ddp_batchnorm_forward(const float *restrict x, const float *restrict residual, ptrdiff_t rows,
                                  ptrdiff_t cols, const float *restrict mean, const float *restrict inv,
                                  const float *restrict gamma, const float *restrict beta, float *restrict y,
                                  int activation, float slope) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols, *rr = residual ? residual + r * cols : NULL;
        float *yr = y + r * cols;
        switch (activation) {
        case 1: batchnorm_forward_row(xr, rr, cols, mean, inv, gamma, beta, yr, 1, 0); break;
        case 2: batchnorm_forward_row(xr, rr, cols, mean, inv, gamma, beta, yr, 2, slope); break;
        default: batchnorm_forward_row(xr, rr, cols, mean, inv, gamma, beta, yr, 0, 0);
        }
    }
}

// One window row of ddp_batchnorm_maxpool_forward for a constant `activation` (so each instance's
// channel loop vectorizes): the values of k pixels, each as ddp_batchnorm_forward computes it,
// into the running maxima in ddp_maxpool_forward's scan order and rules.
INLINE void normalized_window_row(
    const float *restrict xv, ptrdiff_t k, ptrdiff_t c, ptrdiff_t at, int first, const float *restrict mean,
    const float *restrict inv, const float *restrict gamma, const float *restrict beta, int activation, float slope,
    float *restrict yo, int32_t *restrict io) {
    for (ptrdiff_t kw = 0; kw < k; kw++, xv += c, at += c) {
        for (ptrdiff_t ch = 0; ch < c; ch++) {
            const float v = activate(gamma[ch] * normalized(xv[ch], mean[ch], inv[ch]) + beta[ch], activation, slope);
            const int take = (first && kw == 0) || v > yo[ch] || v != v;
            yo[ch] = take ? v : yo[ch];
            io[ch] = take ? (int32_t)(at + ch) : io[ch];
        }
    }
}

INLINE void batchnorm_maxpool_forward(
    const float *restrict x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t k, ptrdiff_t oh,
    ptrdiff_t ow, const float *restrict mean, const float *restrict inv, const float *restrict gamma,
    const float *restrict beta, int activation, float slope, float *restrict y, int32_t *restrict index) {
    const ptrdiff_t in = h * w * c, out = oh * ow * c;
    for (ptrdiff_t b = 0; b < n; b++) {
        for (ptrdiff_t i = 0; i < oh; i++) {
            for (ptrdiff_t j = 0; j < ow; j++) {
                float *restrict yo = y + b * out + (i * ow + j) * c;
                int32_t *restrict io = index + b * out + (i * ow + j) * c;
                for (ptrdiff_t kh = 0; kh < k; kh++) {
                    const ptrdiff_t at = ((i * k + kh) * w + j * k) * c;
                    normalized_window_row(x + b * in + at, k, c, at, kh == 0, mean, inv, gamma, beta,
                                          activation, slope, yo, io);
                }
            }
        }
    }
}

CLONES void ddp_batchnorm_maxpool_forward(const float *restrict x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w,
                                          ptrdiff_t c, ptrdiff_t k, ptrdiff_t oh, ptrdiff_t ow,
                                          const float *restrict mean, const float *restrict inv,
                                          const float *restrict gamma, const float *restrict beta, int activation,
                                          float slope, float *restrict y, int32_t *restrict index) {
    // The same maxima, indices and bits as ddp_batchnorm_forward then ddp_maxpool_forward.
    switch (activation) {
    case 1: batchnorm_maxpool_forward(x, n, h, w, c, k, oh, ow, mean, inv, gamma, beta, 1, 0, y, index); break;
    case 2: batchnorm_maxpool_forward(x, n, h, w, c, k, oh, ow, mean, inv, gamma, beta, 2, slope, y, index); break;
    default: batchnorm_maxpool_forward(x, n, h, w, c, k, oh, ow, mean, inv, gamma, beta, 0, 0, y, index);
    }
}

// One element of BatchNorm's input gradient, k·(g' − a − x̂·s), g' = g times the fused activation's
// derivative (`activated` is a constant where it is inlined, so each caller's loop stays branch-free).
INLINE float input_gradient(float g, float x, ptrdiff_t c, const float *restrict mean, const float *restrict inv,
                            const float *restrict gamma, const float *restrict beta, int activated, float slope,
                            const float *restrict k, const float *restrict a, const float *restrict s) {
    const float h = normalized(x, mean[c], inv[c]);
    const float gv = activated ? activation_gradient(g, gamma[c] * h + beta[c], slope) : g;
    return k[c] * (gv - a[c] - h * s[c]);
}

INLINE void batchnorm_backward_dense(
    const float *restrict g, const float *restrict x, ptrdiff_t rows, ptrdiff_t cols, const float *restrict mean,
    const float *restrict inv, const float *restrict gamma, const float *restrict beta, int activation, float slope,
    const float *restrict k, const float *restrict a, const float *restrict s, float *restrict d) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const ptrdiff_t o = r * cols;
        if (activation) {
            for (ptrdiff_t c = 0; c < cols; c++)
                d[o + c] = input_gradient(g[o + c], x[o + c], c, mean, inv, gamma, beta, 1, slope, k, a, s);
        } else {
            for (ptrdiff_t c = 0; c < cols; c++)
                d[o + c] = input_gradient(g[o + c], x[o + c], c, mean, inv, gamma, beta, 0, slope, k, a, s);
        }
    }
}

// batchnorm_backward_dense over the unpacked pooled gradient, element by element the same
// operations; the loops follow the windows, so each pixel finds its pooled gradient without a
// division.
INLINE void batchnorm_backward_pooled(
    const ddp_pooled_gradient *pool, const float *restrict x, ptrdiff_t rows, ptrdiff_t cols,
    const float *restrict mean, const float *restrict inv, const float *restrict gamma, const float *restrict beta,
    int activation, float slope, const float *restrict k, const float *restrict a, const float *restrict s,
    float *restrict d) {
    const ptrdiff_t h = pool->h, w = pool->w, kk = pool->k, oh = pool->oh, ow = pool->ow, n = rows / (h * w);
    for (ptrdiff_t b = 0; b < n; b++) {
        for (ptrdiff_t y = 0; y < h; y++) {
            const ptrdiff_t py = y / kk;
            for (ptrdiff_t px = 0; px * kk < w; px++) {
                const int inside = py < oh && px < ow;  // else outside every window (floor mode): gradient 0
                const ptrdiff_t po = ((b * oh + (inside ? py : 0)) * ow + (inside ? px : 0)) * cols;
                const float *restrict gp = pool->g + po;
                const int32_t *restrict ip = pool->index + po;
                for (ptrdiff_t x0 = px * kk; x0 < (px + 1) * kk && x0 < w; x0++) {
                    const ptrdiff_t o = ((b * h + y) * w + x0) * cols;
                    const int32_t at = (int32_t)((y * w + x0) * cols);
#define POOLED_GRADIENT(c) (inside && ip[c] == at + (int32_t)(c) ? gp[c] : 0)
                    if (activation) {
                        for (ptrdiff_t c = 0; c < cols; c++)
                            d[o + c] = input_gradient(POOLED_GRADIENT(c), x[o + c], c, mean, inv, gamma, beta, 1,
                                                      slope, k, a, s);
                    } else {
                        for (ptrdiff_t c = 0; c < cols; c++)
                            d[o + c] = input_gradient(POOLED_GRADIENT(c), x[o + c], c, mean, inv, gamma, beta, 0,
                                                      slope, k, a, s);
                    }
#undef POOLED_GRADIENT
                }
            }
        }
    }
}

CLONES void ddp_batchnorm_backward(const float *restrict g, const ddp_pooled_gradient *pool, const float *restrict x,
                                   ptrdiff_t rows, ptrdiff_t cols, const float *restrict mean,
                                   const float *restrict inv, const float *restrict gamma, const float *restrict beta,
                                   int activation, float slope, const float *restrict k, const float *restrict a,
                                   const float *restrict s, float *restrict d) {
    if (pool)
        batchnorm_backward_pooled(pool, x, rows, cols, mean, inv, gamma, beta, activation, slope, k, a, s, d);
    else
        batchnorm_backward_dense(g, x, rows, cols, mean, inv, gamma, beta, activation, slope, k, a, s, d);
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

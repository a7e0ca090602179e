#include "CSwiftDDPKernels.h"

#include <stdint.h>
#include <string.h>

#include "formulas.h"

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

// Where a row of the input sits in its max pooling's windows (ddp_pooled_gradient), stepped row by
// row without divisions: pixel (y, x) of sample b, in window (py, px) at offset (ky, kx).
typedef struct {
    ptrdiff_t b, y, x, py, px, ky, kx;
} pool_cursor;

INLINE void pool_cursor_step(pool_cursor *q, const ddp_pooled_gradient *p, ptrdiff_t k) {
    q->x++;
    if (++q->kx == k) {
        q->kx = 0;
        q->px++;
    }
    if (q->x < p->w) return;
    q->x = q->kx = q->px = 0;
    q->y++;
    if (++q->ky == k) {
        q->ky = 0;
        q->py++;
    }
    if (q->y < p->h) return;
    q->y = q->ky = q->py = 0;
    q->b++;
}

// Where the cursor's row finds its gradient (what ddp_maxpool_backward would have written there):
// g[offset + j] where index[offset + j] == at + j, else 0. A row outside every window (floor mode)
// gets an `at` that no index (≥ 0) equals.
INLINE void pooled_source(const ddp_pooled_gradient *p, ptrdiff_t cols, const pool_cursor *q, ptrdiff_t *offset,
                          int32_t *at) {
    const int inside = q->py < p->oh && q->px < p->ow;
    *offset = inside ? ((q->b * p->oh + q->py) * p->ow + q->px) * cols : 0;
    *at = inside ? (int32_t)((q->y * p->w + q->x) * cols) : INT32_MIN;
}

// Row t's gradient at column c in group_sums: dense (row stride gs) or pooled (pooled_source's
// offset[t] and at[t]). `pooled` is a constant where this is inlined.
INLINE float row_gradient(const float *restrict g, const int32_t *restrict index, ptrdiff_t gs,
                          const ptrdiff_t *restrict offset, const int32_t *restrict at, int pooled, ptrdiff_t t,
                          ptrdiff_t c) {
    if (!pooled) return g[t * gs + c];
    return index[offset[t] + c] == at[t] + (int32_t)c ? g[offset[t] + c] : 0;
}

// The gradient sums of one group of n ≤ PARTIAL_ROWS rows, added into s1, s2: per column, float
// partial sums over the group's rows in order, then one add into the Double sum. x is the
// group's first row; g's rows come through row_gradient. Dense and pooled gradients both go
// through here, group after group in row order, so they give the same bits.
INLINE void group_sums(const float *restrict g, const int32_t *restrict index, ptrdiff_t gs,
                       const ptrdiff_t *restrict offset, const int32_t *restrict at, int pooled,
                       const float *restrict x, ptrdiff_t n, ptrdiff_t cols, const float *restrict mean,
                       const float *restrict inv, const float *restrict gamma, const float *restrict beta,
                       int activation, float slope, double *restrict s1, double *restrict s2) {
    for (ptrdiff_t c0 = 0; c0 < cols; c0 += BLOCK) {
        const ptrdiff_t bw = cols - c0 < BLOCK ? cols - c0 : BLOCK;
        float p1[BLOCK] = {0}, p2[BLOCK] = {0}, m[BLOCK] = {0}, v[BLOCK] = {0}, w[BLOCK] = {0}, b[BLOCK] = {0};
        for (ptrdiff_t j = 0; j < bw; j++) {
            m[j] = mean[c0 + j];
            v[j] = inv[c0 + j];
            w[j] = gamma[c0 + j];
            b[j] = beta[c0 + j];
        }
#define GRADIENT(t, j) row_gradient(g, index, gs, offset, at, pooled, t, c0 + (j))
        if (bw == BLOCK && activation) {
            for (ptrdiff_t t = 0; t < n; t++) {
                for (int j = 0; j < BLOCK; j++) {
                    float h = normalized(x[t * cols + c0 + j], m[j], v[j]);
                    float gv = activation_gradient(GRADIENT(t, j), w[j] * h + b[j], slope);
                    p1[j] += gv;
                    p2[j] += gv * h;
                }
            }
        } else if (bw == BLOCK) {
            for (ptrdiff_t t = 0; t < n; t++) {
                for (int j = 0; j < BLOCK; j++) {
                    float h = normalized(x[t * cols + c0 + j], m[j], v[j]), gv = GRADIENT(t, j);
                    p1[j] += gv;
                    p2[j] += gv * h;
                }
            }
        } else {
            for (ptrdiff_t t = 0; t < n; t++) {
                for (ptrdiff_t j = 0; j < bw; j++) {
                    float h = normalized(x[t * cols + c0 + j], m[j], v[j]), gj = GRADIENT(t, j);
                    float gv = activation ? activation_gradient(gj, w[j] * h + b[j], slope) : gj;
                    p1[j] += gv;
                    p2[j] += gv * h;
                }
            }
        }
#undef GRADIENT
        for (ptrdiff_t j = 0; j < bw; j++) {
            s1[c0 + j] += p1[j];
            s2[c0 + j] += p2[j];
        }
    }
}

INLINE void pooled_gradient_sums(const ddp_pooled_gradient *pool, ptrdiff_t k, const float *restrict x,
                                 ptrdiff_t rows, ptrdiff_t cols, const float *restrict mean, const float *restrict inv,
                                 const float *restrict gamma, const float *restrict beta, int activation, float slope,
                                 double *restrict s1, double *restrict s2) {
    pool_cursor cursor = {0};
    ptrdiff_t offset[PARTIAL_ROWS];
    int32_t at[PARTIAL_ROWS];
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += PARTIAL_ROWS) {
        const ptrdiff_t n = rows - r0 < PARTIAL_ROWS ? rows - r0 : PARTIAL_ROWS;
        for (ptrdiff_t t = 0; t < n; t++) {
            pooled_source(pool, cols, &cursor, offset + t, at + t);
            pool_cursor_step(&cursor, pool, k);
        }
        group_sums(pool->g, pool->index, 0, offset, at, 1, x + r0 * cols, n, cols, mean, inv, gamma, beta,
                   activation, slope, s1, s2);
    }
}

CLONES void ddp_gradient_sums(const float *restrict g, const ddp_pooled_gradient *pool, const float *restrict x,
                              ptrdiff_t rows, ptrdiff_t cols, const float *restrict mean, const float *restrict inv,
                              const float *restrict gamma, const float *restrict beta, int activation, float slope,
                              double *restrict s1, double *restrict s2) {
    for (ptrdiff_t c = 0; c < cols; c++) s1[c] = s2[c] = 0;
    // Separate instances, so that each one's loops know whether (and how) the gradient is pooled.
    if (pool && pool->k == 2) {
        pooled_gradient_sums(pool, 2, x, rows, cols, mean, inv, gamma, beta, activation, slope, s1, s2);
    } else if (pool) {
        pooled_gradient_sums(pool, pool->k, x, rows, cols, mean, inv, gamma, beta, activation, slope, s1, s2);
    } else {
        for (ptrdiff_t r0 = 0; r0 < rows; r0 += PARTIAL_ROWS) {
            const ptrdiff_t n = rows - r0 < PARTIAL_ROWS ? rows - r0 : PARTIAL_ROWS;
            group_sums(g + r0 * cols, NULL, cols, NULL, NULL, 0, x + r0 * cols, n, cols, mean, inv, gamma, beta,
                       activation, slope, s1, s2);
        }
    }
}

// One row of ddp_batchnorm_forward (`activation` and `added` are constants where inlined); with a
// residual row r (added), the sum (γ·x̂ + β) + r is rounded as ddp_add_relu rounds it.
INLINE void batchnorm_forward_row(const float *restrict x, const float *restrict r, int added, ptrdiff_t cols,
                                  const float *restrict mean, const float *restrict inv, const float *restrict gamma,
                                  const float *restrict beta, float *restrict y, int activation, float slope) {
    for (ptrdiff_t c = 0; c < cols; c++) {
        const float v = gamma[c] * normalized(x[c], mean[c], inv[c]) + beta[c];
        y[c] = activate(added ? v + r[c] : v, activation, slope);
    }
}

CLONES void ddp_batchnorm_forward(const float *restrict x, const float *restrict residual, ptrdiff_t rows,
                                  ptrdiff_t cols, const float *restrict mean, const float *restrict inv,
                                  const float *restrict gamma, const float *restrict beta, float *restrict y,
                                  int activation, float slope) {
    for (ptrdiff_t i = 0; i < rows; i++) {
        const float *xr = x + i * cols, *rr = residual ? residual + i * cols : NULL;
        float *yr = y + i * cols;
        // One instance per case, so no loop branches inside.
#define ROW(added, act, s) batchnorm_forward_row(xr, rr, added, cols, mean, inv, gamma, beta, yr, act, s)
        switch ((activation == 1 || activation == 2 ? activation : 0) * 2 + (rr != NULL)) {
        case 3: ROW(1, 1, 0); break;
        case 2: ROW(0, 1, 0); break;
        case 5: ROW(1, 2, slope); break;
        case 4: ROW(0, 2, slope); break;
        case 1: ROW(1, 0, 0); break;
        default: ROW(0, 0, 0);
        }
#undef ROW
    }
}

// One row of BatchNorm's input gradient, k·(g' − a − x̂·s), where g' is g times the fused
// activation's derivative. The row's g is dense or, `pooled`, a pooled gradient (index[c] == at + c
// selects g[c], else 0); `activated` and `pooled` are constants where this is inlined, so each
// caller's loop stays branch-free.
INLINE void input_gradient_row(const float *restrict g, int pooled, const int32_t *restrict index, int32_t at,
                               const float *restrict x, ptrdiff_t cols, const float *restrict mean,
                               const float *restrict inv, const float *restrict gamma, const float *restrict beta,
                               int activated, float slope, const float *restrict k, const float *restrict a,
                               const float *restrict s, float *restrict d) {
    for (ptrdiff_t c = 0; c < cols; c++) {
        const float gc = pooled ? (index[c] == at + (int32_t)c ? g[c] : 0) : g[c];
        const float h = normalized(x[c], mean[c], inv[c]);
        const float gv = activated ? activation_gradient(gc, gamma[c] * h + beta[c], slope) : gc;
        d[c] = k[c] * (gv - a[c] - h * s[c]);
    }
}

INLINE void batchnorm_backward_dense(
    const float *restrict g, const float *restrict x, ptrdiff_t rows, ptrdiff_t cols, const float *restrict mean,
    const float *restrict inv, const float *restrict gamma, const float *restrict beta, int activation, float slope,
    const float *restrict k, const float *restrict a, const float *restrict s, float *restrict d) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const ptrdiff_t o = r * cols;
        input_gradient_row(g + o, 0, NULL, 0, x + o, cols, mean, inv, gamma, beta, activation, slope, k, a, s, d + o);
    }
}

// batchnorm_backward_dense over the unpacked pooled gradient (k×k windows, kk a constant where it
// is common), element by element the same operations; the loops follow the windows, so each pixel
// finds its pooled gradient without a division.
INLINE void batchnorm_backward_pooled(
    const ddp_pooled_gradient *pool, ptrdiff_t kk, const float *restrict x, ptrdiff_t rows, ptrdiff_t cols,
    const float *restrict mean, const float *restrict inv, const float *restrict gamma, const float *restrict beta,
    int activation, float slope, const float *restrict k, const float *restrict a, const float *restrict s,
    float *restrict d) {
    const ptrdiff_t h = pool->h, w = pool->w, oh = pool->oh, ow = pool->ow, n = rows / (h * w);
    for (ptrdiff_t b = 0; b < n; b++) {
        for (ptrdiff_t y = 0; y < h; y++) {
            const ptrdiff_t py = y / kk;
            for (ptrdiff_t px = 0; px * kk < w; px++) {
                const int inside = py < oh && px < ow;  // else outside every window (floor mode): gradient 0
                const ptrdiff_t po = inside ? ((b * oh + py) * ow + px) * cols : 0;
                for (ptrdiff_t x0 = px * kk; x0 < (px + 1) * kk && x0 < w; x0++) {
                    const ptrdiff_t o = ((b * h + y) * w + x0) * cols;
                    const int32_t at = inside ? (int32_t)((y * w + x0) * cols) : INT32_MIN;
                    input_gradient_row(pool->g + po, 1, pool->index + po, at, x + o, cols, mean, inv, gamma, beta,
                                       activation, slope, k, a, s, d + o);
                }
            }
        }
    }
}

CLONES void ddp_batchnorm_backward(const float *g, const ddp_pooled_gradient *pool, const float *restrict x,
                                   ptrdiff_t rows, ptrdiff_t cols, const float *restrict mean,
                                   const float *restrict inv, const float *restrict gamma, const float *restrict beta,
                                   int activation, float slope, const float *restrict k, const float *restrict a,
                                   const float *restrict s, float *restrict d) {
    // One instance per case, so no loop branches inside.
#define POOLED(kk, act)                                                                                                \
    batchnorm_backward_pooled(pool, kk, x, rows, cols, mean, inv, gamma, beta, act, slope, k, a, s, d)
    if (pool && pool->k == 2)
        activation ? POOLED(2, 1) : POOLED(2, 0);
    else if (pool)
        activation ? POOLED(pool->k, 1) : POOLED(pool->k, 0);
#undef POOLED
    else if (activation)
        batchnorm_backward_dense(g, x, rows, cols, mean, inv, gamma, beta, 1, slope, k, a, s, d);
    else
        batchnorm_backward_dense(g, x, rows, cols, mean, inv, gamma, beta, 0, slope, k, a, s, d);
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

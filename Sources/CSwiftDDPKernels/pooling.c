// Pooling over channels-last images [N, H, W, C]: the innermost loop runs over the C channels of
// one pixel, which are contiguous, so it vectorizes (the Swift loops it replaces did not).
#include "CSwiftDDPKernels.h"

#include <string.h>

#include "formulas.h"

// Channels c0 ..< c0 + width of one k×k max pooling window, with PyTorch's scan order and rules:
// rows of the window, then columns; a later value wins only when strictly larger (the first
// maximum keeps ties) or NaN. With `normalize` (a constant where inlined, as is `activation`) the
// values are act(γ·x̂ + β), each as ddp_batchnorm_forward computes it; else x itself. The running
// maxima stay in registers for a whole block. x is the window's first pixel, `at` its offset within
// the sample; the maxima go to y[c0 …], their offsets to index[c0 …].
INLINE void window_max(const float *restrict x, ptrdiff_t at, ptrdiff_t w, ptrdiff_t c, ptrdiff_t k, ptrdiff_t c0,
                       ptrdiff_t width, int normalize, const float *restrict mean, const float *restrict inv,
                       const float *restrict gamma, const float *restrict beta, int activation, float slope,
                       float *restrict y, int32_t *restrict index) {
    float best[BLOCK];
    int32_t arg[BLOCK];
#define VALUE(o, j)                                                                                                    \
    (normalize ? activate(gamma[c0 + (j)] * normalized(x[(o) + (j)], mean[c0 + (j)], inv[c0 + (j)]) + beta[c0 + (j)], \
                          activation, slope)                                                                           \
               : x[(o) + (j)])
    for (ptrdiff_t j = 0; j < width; j++) {
        best[j] = VALUE(c0, j);
        arg[j] = (int32_t)(at + c0 + j);
    }
    for (ptrdiff_t kh = 0; kh < k; kh++) {
        for (ptrdiff_t kw = kh == 0; kw < k; kw++) {
            const ptrdiff_t o = (kh * w + kw) * c + c0;
            for (ptrdiff_t j = 0; j < width; j++) {
                const float v = VALUE(o, j);
                const int take = v > best[j] || v != v;
                best[j] = take ? v : best[j];
                arg[j] = take ? (int32_t)(at + o + j) : arg[j];
            }
        }
    }
#undef VALUE
    for (ptrdiff_t j = 0; j < width; j++) {
        y[c0 + j] = best[j];
        index[c0 + j] = arg[j];
    }
}

// Every window of ddp_maxpool_forward (stride s) or ddp_batchnorm_maxpool_forward (s = k).
INLINE void maxpool_forward(const float *restrict x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t k,
                            ptrdiff_t s, ptrdiff_t oh, ptrdiff_t ow, int normalize, const float *restrict mean,
                            const float *restrict inv, const float *restrict gamma, const float *restrict beta,
                            int activation, float slope, float *restrict y, int32_t *restrict index) {
    const ptrdiff_t in = h * w * c, out = oh * ow * c;
    for (ptrdiff_t b = 0; b < n; b++) {
        for (ptrdiff_t i = 0; i < oh; i++) {
            for (ptrdiff_t j = 0; j < ow; j++) {
                const ptrdiff_t at = (i * s * w + j * s) * c, o = b * out + (i * ow + j) * c;
#define BLOCK_CALL(width)                                                                                              \
    window_max(x + b * in + at, at, w, c, k, c0, width, normalize, mean, inv, gamma, beta, activation, slope, y + o,   \
               index + o)
                FOR_BLOCKS(c0, c, BLOCK_CALL);
#undef BLOCK_CALL
            }
        }
    }
}

CLONES void ddp_maxpool_forward(const float *x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t k,
                                ptrdiff_t s, ptrdiff_t oh, ptrdiff_t ow, float *y, int32_t *index) {
    // The common 2×2 windows with stride 2 get their own instance, with the window loops unrolled.
    if (k == 2 && s == 2)
        maxpool_forward(x, n, h, w, c, 2, 2, oh, ow, 0, NULL, NULL, NULL, NULL, 0, 0, y, index);
    else
        maxpool_forward(x, n, h, w, c, k, s, oh, ow, 0, NULL, NULL, NULL, NULL, 0, 0, y, index);
}

CLONES void ddp_batchnorm_maxpool_forward(const float *restrict x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w,
                                          ptrdiff_t c, ptrdiff_t k, ptrdiff_t oh, ptrdiff_t ow,
                                          const float *restrict mean, const float *restrict inv,
                                          const float *restrict gamma, const float *restrict beta, int activation,
                                          float slope, float *restrict y, int32_t *restrict index) {
    // The same maxima, indices and bits as ddp_batchnorm_forward then ddp_maxpool_forward. One
    // instance per activation, and one for the common 2×2 windows.
#define INSTANCE(kk, act, sl)                                                                                          \
    maxpool_forward(x, n, h, w, c, kk, kk, oh, ow, 1, mean, inv, gamma, beta, act, sl, y, index)
    switch (activation * 2 + (k == 2)) {
    case 3: INSTANCE(2, 1, 0); break;
    case 2: INSTANCE(k, 1, 0); break;
    case 5: INSTANCE(2, 2, slope); break;
    case 4: INSTANCE(k, 2, slope); break;
    case 1: INSTANCE(2, 0, 0); break;
    default: INSTANCE(k, 0, 0);
    }
#undef INSTANCE
}

CLONES void ddp_maxpool_backward(const float *g, const int32_t *index, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w,
                                 ptrdiff_t c, ptrdiff_t k, ptrdiff_t s, ptrdiff_t oh, ptrdiff_t ow, float *d) {
    const ptrdiff_t in = h * w * c, out = oh * ow * c;
    if (s == k) {
        // The windows do not overlap: every input belongs to at most one window, so one pass writes
        // each input of a window (the gradient where it was the maximum, else 0), and only the rows
        // and columns outside every window (floor mode) are zeroed first.
        if (oh * k < h || ow * k < w) {
            for (ptrdiff_t b = 0; b < n; b++) {
                for (ptrdiff_t y = 0; y < h; y++) {
                    const ptrdiff_t from = y < oh * k ? ow * k : 0;
                    memset(d + b * in + (y * w + from) * c, 0, (size_t)((w - from) * c) * sizeof(float));
                }
            }
        }
        for (ptrdiff_t b = 0; b < n; b++) {
            for (ptrdiff_t i = 0; i < oh; i++) {
                for (ptrdiff_t j = 0; j < ow; j++) {
                    const float *restrict go = g + b * out + (i * ow + j) * c;
                    const int32_t *restrict io = index + b * out + (i * ow + j) * c;
                    for (ptrdiff_t kh = 0; kh < k; kh++) {
                        for (ptrdiff_t kw = 0; kw < k; kw++) {
                            const ptrdiff_t at = ((i * k + kh) * w + j * k + kw) * c;
                            float *restrict dv = d + b * in + at;
                            for (ptrdiff_t ch = 0; ch < c; ch++) dv[ch] = io[ch] == (int32_t)(at + ch) ? go[ch] : 0;
                        }
                    }
                }
            }
        }
        return;
    }
    memset(d, 0, (size_t)(n * in) * sizeof(float));
    for (ptrdiff_t b = 0; b < n; b++) {
        const float *gb = g + b * out;
        const int32_t *ib = index + b * out;
        float *db = d + b * in;
        // A scatter-add: overlapping windows (stride < kernel) may pick one input twice.
        for (ptrdiff_t o = 0; o < out; o++) db[ib[o]] += gb[o];
    }
}

CLONES void ddp_avgpool_forward(const float *x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t k,
                                ptrdiff_t s, ptrdiff_t oh, ptrdiff_t ow, float *y) {
    const ptrdiff_t in = h * w * c, out = oh * ow * c;
    const float scale = 1.0f / (float)(k * k);
    for (ptrdiff_t b = 0; b < n; b++) {
        const float *xb = x + b * in;
        float *yb = y + b * out;
        for (ptrdiff_t i = 0; i < oh; i++) {
            for (ptrdiff_t j = 0; j < ow; j++) {
                float *restrict yo = yb + (i * ow + j) * c;
                for (ptrdiff_t ch = 0; ch < c; ch++) yo[ch] = 0;
                for (ptrdiff_t kh = 0; kh < k; kh++) {
                    for (ptrdiff_t kw = 0; kw < k; kw++) {
                        const float *restrict xv = xb + ((i * s + kh) * w + j * s + kw) * c;
                        for (ptrdiff_t ch = 0; ch < c; ch++) yo[ch] += xv[ch];
                    }
                }
                for (ptrdiff_t ch = 0; ch < c; ch++) yo[ch] *= scale;
            }
        }
    }
}

CLONES void ddp_avgpool_backward(const float *g, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t k,
                                 ptrdiff_t s, ptrdiff_t oh, ptrdiff_t ow, float *d) {
    const ptrdiff_t in = h * w * c, out = oh * ow * c;
    const float scale = 1.0f / (float)(k * k);
    memset(d, 0, (size_t)(n * in) * sizeof(float));
    for (ptrdiff_t b = 0; b < n; b++) {
        const float *gb = g + b * out;
        float *db = d + b * in;
        for (ptrdiff_t i = 0; i < oh; i++) {
            for (ptrdiff_t j = 0; j < ow; j++) {
                const float *restrict go = gb + (i * ow + j) * c;
                for (ptrdiff_t kh = 0; kh < k; kh++) {
                    for (ptrdiff_t kw = 0; kw < k; kw++) {
                        float *restrict dv = db + ((i * s + kh) * w + j * s + kw) * c;
                        for (ptrdiff_t ch = 0; ch < c; ch++) dv[ch] += go[ch] * scale;
                    }
                }
            }
        }
    }
}

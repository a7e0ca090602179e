// Pooling over channels-last images [N, H, W, C]: the innermost loop runs over the C channels of
// one pixel, which are contiguous, so it vectorizes (the Swift loops it replaces did not).
#include "CSwiftDDPKernels.h"

#include <string.h>

#include "clones.h"

CLONES void ddp_maxpool_forward(const float *x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t k,
                                ptrdiff_t s, ptrdiff_t oh, ptrdiff_t ow, float *y, int32_t *index) {
    const ptrdiff_t in = h * w * c, out = oh * ow * c;
    for (ptrdiff_t b = 0; b < n; b++) {
        const float *xb = x + b * in;
        float *yb = y + b * out;
        int32_t *ib = index + b * out;
        for (ptrdiff_t i = 0; i < oh; i++) {
            for (ptrdiff_t j = 0; j < ow; j++) {
                float *restrict yo = yb + (i * ow + j) * c;
                int32_t *restrict io = ib + (i * ow + j) * c;
                const ptrdiff_t first = ((i * s) * w + j * s) * c;
                for (ptrdiff_t ch = 0; ch < c; ch++) {
                    yo[ch] = xb[first + ch];
                    io[ch] = (int32_t)(first + ch);
                }
                // Scan order as PyTorch's: rows of the window, then columns; a later value wins
                // only when strictly larger (the first maximum keeps ties) or NaN.
                for (ptrdiff_t kh = 0; kh < k; kh++) {
                    for (ptrdiff_t kw = 0; kw < k; kw++) {
                        if (kh == 0 && kw == 0) continue;
                        const ptrdiff_t at = ((i * s + kh) * w + j * s + kw) * c;
                        const float *restrict xv = xb + at;
                        for (ptrdiff_t ch = 0; ch < c; ch++) {
                            const float v = xv[ch];
                            const int take = v > yo[ch] || v != v;
                            yo[ch] = take ? v : yo[ch];
                            io[ch] = take ? (int32_t)(at + ch) : io[ch];
                        }
                    }
                }
            }
        }
    }
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

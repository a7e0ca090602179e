// Element-wise and per-channel kernels of the training step (SGD, BatchNorm, ReLU), in C so
// that each can be compiled for several x86-64 levels and picked at load time for the CPU it
// runs on (`target_clones`), as PyTorch's ATen does with its CPU_CAPABILITY builds: Swift has
// no per-function target attribute, and SwiftPM allows no -march flag without unsafeFlags.
// The Swift side (NN/Core/Kernels.swift) documents the formulas.
//
// Determinism: no FMA contraction, and every reduction runs along rows within one channel in
// a fixed order, so the results are the same bits on every x86-64 level and on other
// architectures.
#ifndef SWIFTDDP_CKERNELS_H
#define SWIFTDDP_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// SGD with momentum, PyTorch's rule; returns 1 when every gradient was finite.
int ddp_sgd_momentum(float *p, const float *grad, float *buf, ptrdiff_t n, float lr, float momentum,
                     float dampening, float weight_decay, int nesterov, int first);

/// Moments of each column about `shift`: s1 = Σ(x − shift), s2 = Σ(x − shift)², over a row-major
/// [rows, cols] matrix.
void ddp_shifted_moments(const float *x, ptrdiff_t rows, ptrdiff_t cols, const float *shift, double *s1, double *s2);

// BatchNorm: x is the layer's input, mean/inv/gamma/beta its per-channel float32 constants of
// the forward pass; x̂ = (x − mean)·inv. `activation` is the fused activation: 0 none, 1 ReLU,
// 2 LeakyReLU with negative `slope`. Backward recomputes x̂ and the activation's derivative
// from x with the forward's operations, so nothing but the output is stored.

/// y = act(γ·x̂ + β) over a row-major [rows, cols] matrix; with a residual [rows, cols] (not NULL),
/// y = act((γ·x̂ + β) + residual), the same bits as ddp_add_relu of the normalized output.
void ddp_batchnorm_forward(const float *x, const float *residual, ptrdiff_t rows, ptrdiff_t cols, const float *mean,
                           const float *inv, const float *gamma, const float *beta, float *y, int activation,
                           float slope);

/// A max pooling's output gradient standing for the dense gradient of its input, as
/// ddp_maxpool_backward would write it: the [rows, cols] input of a BatchNorm is the pooling's
/// [n, h, w, cols] input (rows = n·h·w); its gradient at (row, col) is g at the pooled output whose
/// window chose it (index, as ddp_maxpool_forward writes it), else 0. The k×k windows must not
/// overlap (stride k), with oh = h / k ≥ 1 and ow = w / k ≥ 1 (floor mode: the rest of the rows and
/// columns belongs to no window and gets 0).
typedef struct {
    const float *g;        // [n, oh, ow, cols]
    const int32_t *index;  // [n, oh, ow, cols]: offsets within a sample
    ptrdiff_t h, w, k, oh, ow;
} ddp_pooled_gradient;

/// y [n, oh, ow, c] = max pooling (k×k windows, stride k, oh = h / k, ow = w / k) of act(γ·x̂ + β)
/// for x [n, h, w, c], and index as ddp_maxpool_forward: the same bits as ddp_batchnorm_forward
/// then ddp_maxpool_forward, without writing the full-size output.
void ddp_batchnorm_maxpool_forward(const float *x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t k,
                                   ptrdiff_t oh, ptrdiff_t ow, const float *mean, const float *inv, const float *gamma,
                                   const float *beta, int activation, float slope, float *y, int32_t *index);

/// Backward's per-column sums s1 = Σ g', s2 = Σ g'·x̂, where g' is the incoming gradient g times
/// the fused activation's derivative at γ·x̂ + β. g is [rows, cols], or NULL with `pool` giving it.
void ddp_gradient_sums(const float *g, const ddp_pooled_gradient *pool, const float *x, ptrdiff_t rows,
                       ptrdiff_t cols, const float *mean, const float *inv, const float *gamma, const float *beta,
                       int activation, float slope, double *s1, double *s2);

/// Input gradient d = k·(g' − a − x̂·s), with per-column k, a, s; g (or pool) as in ddp_gradient_sums.
void ddp_batchnorm_backward(const float *g, const ddp_pooled_gradient *pool, const float *x, ptrdiff_t rows,
                            ptrdiff_t cols, const float *mean, const float *inv, const float *gamma,
                            const float *beta, int activation, float slope, const float *k, const float *a,
                            const float *s, float *d);

/// y = x < 0 ? 0 : x   (slope 0)   or   y = x ≤ 0 ? slope·x : x   (LeakyReLU).
void ddp_relu(const float *x, float *y, ptrdiff_t n, float slope);

/// y = relu(a + b) (slope 0) or LeakyReLU(a + b): a residual block's sum and activation in one pass.
void ddp_add_relu(const float *a, const float *b, float *y, ptrdiff_t n, float slope);

/// y = a + b.
void ddp_add(const float *a, const float *b, float *y, ptrdiff_t n);

/// d = y ≤ 0 ? slope·g : g, from the activation's output y.
void ddp_relu_backward(const float *y, const float *g, float *d, ptrdiff_t n, float slope);

/// Max pooling of x [n, h, w, c] (channels-last) with a k×k window and stride s, no padding, into
/// y [n, oh, ow, c]; index receives, per output, the offset of the chosen input within its sample
/// (the first maximum in scan order; NaN wins, as in PyTorch).
void ddp_maxpool_forward(const float *x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t k,
                         ptrdiff_t s, ptrdiff_t oh, ptrdiff_t ow, float *y, int32_t *index);

/// The gradient of max pooling: d [n, h, w, c] = 0, then d[index] += g per sample (g and index
/// are [n, oh, ow, c], as ddp_maxpool_forward left them); where the windows do not overlap
/// (s == k), d[index] = g (each input gets at most one value, a −0 stays −0).
void ddp_maxpool_backward(const float *g, const int32_t *index, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c,
                          ptrdiff_t k, ptrdiff_t s, ptrdiff_t oh, ptrdiff_t ow, float *d);

/// Average pooling, shapes as ddp_maxpool_forward.
void ddp_avgpool_forward(const float *x, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t k,
                         ptrdiff_t s, ptrdiff_t oh, ptrdiff_t ow, float *y);

/// d [n, h, w, c] = the gradient of average pooling for g [n, oh, ow, c].
void ddp_avgpool_backward(const float *g, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t k,
                          ptrdiff_t s, ptrdiff_t oh, ptrdiff_t ow, float *d);

/// dst[i] = src[0][i] + src[1][i] + … + src[members − 1][i], added in that order (so every
/// caller gets the same bits); dst may be one of the sources.
void ddp_sum_members(float *dst, const float *const *src, int members, ptrdiff_t n);

/// Cache-line ping-pong between exactly two callers sharing `line` (initially 0): the initiator
/// returns the mean round trip in nanoseconds over `rounds`, the other caller 0; either returns
/// −1 if its partner has not answered within `timeout_seconds` of the call.
double ddp_cache_line_round_trip(int32_t *line, int initiator, int rounds, double timeout_seconds);

/// Which clone the loader picked, for `ddp info` and benchmark records: "x86-64-v4",
/// "x86-64-v3" or "baseline".
const char *ddp_kernels_level(void);

#endif

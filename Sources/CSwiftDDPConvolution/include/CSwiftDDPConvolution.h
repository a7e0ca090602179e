// CSwiftDDPConvolution: PyTorch's nn.Conv2d (groups = 1, dilation = 1) on oneDNN 2.x's CPU convolution primitives.
//
// Layouts at this boundary:
//   activations  NHWC float32: x and dx are N×H×W×C, y and dy are N×OH×OW×O (channels fastest)
//   weights      OIHW float32 (PyTorch's layout): w and dw are O×C×kh×kw; bias and dbias are [O]
// Output size as in PyTorch: OH = (H + 2·ph − kh) / sh + 1, OW = (W + 2·pw − kw) / sw + 1 (integer division).
//
// A handle caches the primitives, memory objects and buffers for the last few batch sizes N (4, least recently
// used evicted), so a call with a cached N allocates nothing here: the caller's buffers are used in place, weights
// are reordered into the primitive's preferred layout in a buffer the cache entry owns, and so is the scratchpad;
// what oneDNN's dnnl_primitive_execute allocates per call comes from a per-thread arena (arena.cpp).
// N = 0 is allowed everywhere (a rank without samples): forward and backward_data do nothing, backward_weights
// writes zeros. Buffers may be NULL when N = 0.
//
// Threading: one thread per handle, and one global oneDNN CPU engine and stream per process (created by the first
// ddp_conv_create). Functions never exit or abort: they return an error (NULL or non-zero) with a one-line message.
#ifndef CCONVOLUTION_H
#define CCONVOLUTION_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// One Conv2d geometry and its cache of oneDNN primitives (opaque).
typedef struct ddp_conv ddp_conv;

/// Creates a handle for a Conv2d with C input channels, O output channels, input H×W, kernel kh×kw, stride sh×sw
/// and zero padding ph×pw on both sides (PyTorch's `padding`). Builds no primitive yet (that happens on the first
/// call for each N). Returns NULL on failure (a non-positive size, negative padding, a kernel larger than the
/// padded input, oneDNN unavailable) and writes a one-line message into err (errlen bytes; err may be NULL).
ddp_conv *ddp_conv_create(int C, int O, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                          char *err, size_t errlen);

/// Frees the handle and everything it caches. NULL is a no-op.
void ddp_conv_destroy(ddp_conv *conv);

/// Output height OH and width OW (0 for a NULL handle).
int ddp_conv_output_height(const ddp_conv *conv);
int ddp_conv_output_width(const ddp_conv *conv);

/// y = conv(x, w) + bias. x: N×H×W×C, w: O×C×kh×kw, bias: [O] or NULL (no bias), y: N×OH×OW×O (overwritten).
/// Returns 0 on success, non-zero with the message in ddp_conv_last_error on failure.
int ddp_conv_forward(ddp_conv *conv, int N, const float *x, const float *w, const float *bias, float *y);

/// dx = the gradient of the forward with respect to x (a transposed convolution of dy with w).
/// dy: N×OH×OW×O, w: O×C×kh×kw, dx: N×H×W×C (overwritten).
/// Call it after a ddp_conv_forward with the same N and the same weight buffer holding the same values: the
/// weights that forward reordered are reused when the primitives agree on their layout.
int ddp_conv_backward_data(ddp_conv *conv, int N, const float *dy, const float *w, float *dx);

/// dw = Σ over the batch of the gradient with respect to w (O×C×kh×kw, OIHW), and dbias[o] = Σ dy[n, i, j, o] when
/// dbias is not NULL. Both are overwritten (not accumulated); N = 0 writes zeros.
/// x: N×H×W×C (the forward's input), dy: N×OH×OW×O.
int ddp_conv_backward_weights(ddp_conv *conv, int N, const float *x, const float *dy, float *dw, float *dbias);

/// Whether ddp_conv_backward_weights of N images computes dw by Winograd F(3×3, 2×2) with OpenBLAS products rather
/// than oneDNN: for 3×3 kernels, stride 1, padding 1, at least 32 channels in and out, on one thread, with a
/// workspace of at most 256 MB, unless turned off; automatically only from 128 output tiles of 2×2 on, and only
/// where oneDNN has no AVX-512 kernels (ddp_conv_onednn_avx512).
int ddp_conv_uses_winograd(const ddp_conv *conv, int N);

/// Whether oneDNN dispatches to AVX-512 kernels on this CPU (then the automatic policy leaves weight gradients to it).
int ddp_conv_onednn_avx512(void);

/// The implementation that ran pass 0 (forward), 1 (backward data) or 2 (backward weights) for N images: oneDNN's
/// name for it ("jit:avx512_core", ...) or "winograd"; "" where that pass has not run for N yet.
const char *ddp_conv_implementation(const ddp_conv *conv, int N, int pass);

/// This handle's Winograd policy: 0 never, 1 automatic (the default), 2 whenever the geometry allows.
void ddp_conv_set_winograd_policy(ddp_conv *conv, int policy);

/// Turns the Winograd weight gradient on (the default) or off for every handle; SWIFTDDP_CONV_WINOGRAD=0 in the
/// environment turns it off at start.
void ddp_conv_set_winograd(int on);

/// The message of the last failure on this handle ("" if none); valid until the next call on the handle.
const char *ddp_conv_last_error(const ddp_conv *conv);

/// The number of OpenMP threads oneDNN may use, for every handle in the process. Each later call applies it to the
/// calling thread before running oneDNN; cached primitives built for another thread count are rebuilt. n < 1 stops
/// enforcing a count (OpenMP's own setting then applies). The default is 1: an MPI rank uses one core.
void ddp_conv_set_threads(int n);

/// oneDNN's per-call bookkeeping is served from a per-thread arena (arena.cpp). Totals since start: allocations
/// served from it, requests that did not fit (went to malloc), and calls that left arena memory allocated.
void ddp_conv_arena_stats(unsigned long *served, unsigned long *fallbacks, unsigned long *outlived);
/// Exercises the arena's rules on a thread of its own (for the tests): 0 if they hold.
int ddp_conv_arena_selftest(void);

#ifdef __cplusplus
}
#endif

#endif  // CCONVOLUTION_H

// winograd.h: the weight gradient of 3×3 / stride 1 / padding 1 convolutions by Winograd F(3×3, 2×2) (winograd.c).
#ifndef CSWIFTDDP_WINOGRAD_H
#define CSWIFTDDP_WINOGRAD_H

#include <stddef.h>

// Whether the tiles of N×H×W fit BLAS's int sizes.
int ddp_wino_dw_applies(int N, int H, int W);

// Floats of workspace ddp_wino_dw needs for this geometry.
size_t ddp_wino_dw_workspace_floats(int N, int H, int W, int C, int O);

// dw (O×C×3×3, OIHW) = Σ over the batch of the weight gradient, and dbias[o] = Σ dy[·, o] when dbias is not NULL;
// both overwritten. x: N×H×W×C, dy: N×H×W×O (NHWC); workspace: ddp_wino_dw_workspace_floats(…) floats.
void ddp_wino_dw(int N, int H, int W, int C, int O, const float *x, const float *dy, float *dw, float *dbias,
                 float *workspace);

// dbias[o] = Σ over the rows of dy [rows, O], in row order in float (the bias gradient of either path: oneDNN's own
// bias reduction runs at a fraction of memory speed, a whole per-row loop of SSE loads and stores).
void ddp_bias_gradient(const float *dy, size_t rows, int O, float *dbias);

#endif

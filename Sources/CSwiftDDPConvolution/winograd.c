// winograd.c: the weight gradient of a 3×3, stride-1, padding-1 convolution by Winograd F(3×3, 2×2)
// (Lavin & Gray 2015), its 16 matrix products in OpenBLAS. Docs/performance.md ("Conv nets") has the measurements
// that chose it over oneDNN for layers of 32 or more channels.
//
// The output is cut into 2×2 tiles t. Each tile's dy block (2×2) meets a 4×4 block of the padded input, and
//   dw[o][c][kh][kw] = Σ_t Σ_ij dy_t[i][j] · x_t[i+kh][j+kw]
// is a 3×3 result from a 2×2 "filter": F(3×3, 2×2). With B2ᵀ, G2, A2ᵀ below,
//   dw = A2ᵀ [ Σ_t (G2 dy_t G2ᵀ) ⊙ (B2ᵀ x_t B2) ] A2,
// and the sum over tiles of each of the 16 element-wise products is one GEMM:
//   Wt[ξ] [C×O] = V[ξ]ᵀ [C×T] · D[ξ] [T×O],   V[ξ] = (B2ᵀ x_t B2)[ξ],  D[ξ] = (G2 dy_t G2ᵀ)[ξ].
// B2ᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 −1 0 1], G2 = [1 0; ½ ½; ½ −½; 0 1], A2ᵀ = [1 1 1 0; 0 1 −1 0; 0 1 1 1].
#include "winograd.h"

#include <string.h>

#include <cblas.h>

#pragma clang fp contract(off)  // no fused multiply-adds: every clone below gives the same bits

// Each transform is compiled for AVX-512, AVX2 and baseline; the loader picks the CPU's (as CSwiftDDPKernels does).
#if defined(__x86_64__) && defined(__clang__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

// 8 channels at a time: NHWC keeps a pixel's channels contiguous. A last block of fewer is loaded and stored short.
typedef float v8 __attribute__((vector_size(32)));

// Macros, not functions: a v8 passed by value would change the ABI between the clones.
#define LOAD8(v, p, n)                                               \
  do {                                                               \
    v8 l_ = {0};                                                     \
    if ((n) == 8) memcpy(&l_, (p), sizeof l_);                       \
    else memcpy(&l_, (p), (size_t)(n) * sizeof(float));              \
    (v) = l_;                                                        \
  } while (0)
#define STORE8(p, v, n)                                              \
  do {                                                               \
    v8 s_ = (v);                                                     \
    if ((n) == 8) memcpy((p), &s_, sizeof s_);                       \
    else memcpy((p), &s_, (size_t)(n) * sizeof(float));              \
  } while (0)

// Distance in floats between two of the 16 matrices of n floats: rounded up to 4 KiB plus one cache line, so the 16
// streams a transform writes side by side do not all map to one L1 set (a plain multiple of 4 KiB made the
// transforms 2–10× slower in scripts/experiments/winograd-bench.c).
static size_t matrix_stride(size_t n) { return ((n + 1023) & ~(size_t)1023) + 16; }

typedef struct {
  int N, H, W, C, O, tH, tW, T;
  size_t vs, ds, ws;      // matrix strides of V, D, Wt
  float *V, *D, *Wt, *zero;
} plan;

// Sizes only (no buffers yet).
static plan make_sizes(int N, int H, int W, int C, int O) {
  plan p = {.N = N, .H = H, .W = W, .C = C, .O = O, .tH = (H + 1) / 2, .tW = (W + 1) / 2};
  p.T = N * p.tH * p.tW;  // ≤ INT_MAX: ddp_wino_dw_applies
  p.vs = matrix_stride((size_t)p.T * C);
  p.ds = matrix_stride((size_t)p.T * O);
  p.ws = matrix_stride((size_t)C * O);
  return p;
}

int ddp_wino_dw_applies(int N, int H, int W) {
  return (long long)N * ((H + 1) / 2) * ((W + 1) / 2) <= 0x7fffffff;  // BLAS takes T as an int
}

size_t ddp_wino_dw_workspace_floats(int N, int H, int W, int C, int O) {
  plan p = make_sizes(N, H, W, C, O);
  return 16 * (p.vs + p.ds + p.ws) + (size_t)(C > O ? C : O) + 8;
}

// V = B2ᵀ x_t B2 for every tile; taps in the padding (or beyond an odd-sized input) read zeros.
CLONES static void transform_input(const plan *p, const float *x) {
  const int C = p->C, perImage = p->tH * p->tW;
  for (int t = 0; t < p->T; t++) {
    const int n = t / perImage, th = (t % perImage) / p->tW, tw = t % p->tW;
    const float *tap[4][4];
    for (int i = 0; i < 4; i++) {
      const int h = 2 * th - 1 + i;
      for (int j = 0; j < 4; j++) {
        const int w = 2 * tw - 1 + j;
        tap[i][j] = (h < 0 || h >= p->H || w < 0 || w >= p->W) ? p->zero : x + (((size_t)n * p->H + h) * p->W + w) * C;
      }
    }
    float *out = p->V + (size_t)t * C;
    for (int c = 0; c < C; c += 8) {
      const int cb = C - c < 8 ? C - c : 8;
      v8 d[4][4], r[4][4];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) LOAD8(d[i][j], tap[i][j] + c, cb);
      for (int j = 0; j < 4; j++) {
        r[0][j] = d[0][j] - d[2][j];
        r[1][j] = d[1][j] + d[2][j];
        r[2][j] = d[2][j] - d[1][j];
        r[3][j] = d[3][j] - d[1][j];
      }
      for (int i = 0; i < 4; i++) {
        STORE8(out + (i * 4 + 0) * p->vs + c, r[i][0] - r[i][2], cb);
        STORE8(out + (i * 4 + 1) * p->vs + c, r[i][1] + r[i][2], cb);
        STORE8(out + (i * 4 + 2) * p->vs + c, r[i][2] - r[i][1], cb);
        STORE8(out + (i * 4 + 3) * p->vs + c, r[i][3] - r[i][1], cb);
      }
    }
  }
}

// D = G2 dy_t G2ᵀ for every tile; dy beyond an odd-sized output reads zeros.
CLONES static void transform_gradient(const plan *p, const float *dy) {
  const int O = p->O, perImage = p->tH * p->tW;
  for (int t = 0; t < p->T; t++) {
    const int n = t / perImage, th = (t % perImage) / p->tW, tw = t % p->tW;
    const float *tap[2][2];
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 2; j++) {
        const int h = 2 * th + i, w = 2 * tw + j;
        tap[i][j] = (h >= p->H || w >= p->W) ? p->zero : dy + (((size_t)n * p->H + h) * p->W + w) * O;
      }
    float *out = p->D + (size_t)t * O;
    for (int c = 0; c < O; c += 8) {
      const int cb = O - c < 8 ? O - c : 8;
      v8 f[2][2], r[4][2];
      for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) LOAD8(f[i][j], tap[i][j] + c, cb);
      for (int j = 0; j < 2; j++) {
        r[0][j] = f[0][j];
        r[1][j] = 0.5f * (f[0][j] + f[1][j]);
        r[2][j] = 0.5f * (f[0][j] - f[1][j]);
        r[3][j] = f[1][j];
      }
      for (int i = 0; i < 4; i++) {
        STORE8(out + (i * 4 + 0) * p->ds + c, r[i][0], cb);
        STORE8(out + (i * 4 + 1) * p->ds + c, 0.5f * (r[i][0] + r[i][1]), cb);
        STORE8(out + (i * 4 + 2) * p->ds + c, 0.5f * (r[i][0] - r[i][1]), cb);
        STORE8(out + (i * 4 + 3) * p->ds + c, r[i][1], cb);
      }
    }
  }
}

// dw[o][c] (OIHW) = A2ᵀ Wt[·][c][o] A2.
CLONES static void transform_output(const plan *p, float *dw) {
  const int C = p->C, O = p->O;
  for (int c = 0; c < C; c++)
    for (int o = 0; o < O; o += 8) {
      const int ob = O - o < 8 ? O - o : 8;
      v8 m[4][4], s[3][4], k[3][3];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) LOAD8(m[i][j], p->Wt + (i * 4 + j) * p->ws + (size_t)c * O + o, ob);
      for (int j = 0; j < 4; j++) {
        s[0][j] = m[0][j] + m[1][j] + m[2][j];
        s[1][j] = m[1][j] - m[2][j];
        s[2][j] = m[1][j] + m[2][j] + m[3][j];
      }
      for (int i = 0; i < 3; i++) {
        k[i][0] = s[i][0] + s[i][1] + s[i][2];
        k[i][1] = s[i][1] - s[i][2];
        k[i][2] = s[i][1] + s[i][2] + s[i][3];
      }
      for (int l = 0; l < ob; l++)  // scatter to OIHW: C·O·9 values, little next to the rest
        for (int a = 0; a < 3; a++)
          for (int b = 0; b < 3; b++) dw[(((size_t)(o + l) * C + c) * 3 + a) * 3 + b] = k[a][b][l];
    }
}

// Columns per block: one AVX-512 vector of sums, kept in registers down all rows; rows summed in float before each
// partial goes into a Double sum (as BatchNorm's sums do), so the error does not grow with N·H·W.
enum { BIAS_BLOCK = 16, BIAS_ROWS = 16 };

CLONES void ddp_bias_gradient(const float *restrict dy, size_t rows, int O, float *restrict dbias) {
  for (int o0 = 0; o0 < O; o0 += BIAS_BLOCK) {
    const int width = O - o0 < BIAS_BLOCK ? O - o0 : BIAS_BLOCK;
    double acc[BIAS_BLOCK] = {0};
    for (size_t r0 = 0; r0 < rows; r0 += BIAS_ROWS) {
      const size_t end = rows - r0 < BIAS_ROWS ? rows : r0 + BIAS_ROWS;
      float part[BIAS_BLOCK] = {0};
      if (width == BIAS_BLOCK) {
        for (size_t r = r0; r < end; r++)
          for (int j = 0; j < BIAS_BLOCK; j++) part[j] += dy[r * (size_t)O + o0 + j];
      } else {
        for (size_t r = r0; r < end; r++)
          for (int j = 0; j < width; j++) part[j] += dy[r * (size_t)O + o0 + j];
      }
      for (int j = 0; j < BIAS_BLOCK; j++) acc[j] += part[j];
    }
    for (int j = 0; j < width; j++) dbias[o0 + j] = (float)acc[j];
  }
}

void ddp_wino_dw(int N, int H, int W, int C, int O, const float *x, const float *dy, float *dw, float *dbias,
                 float *workspace) {
  plan p = make_sizes(N, H, W, C, O);
  p.V = workspace;
  p.D = p.V + 16 * p.vs;
  p.Wt = p.D + 16 * p.ds;
  p.zero = p.Wt + 16 * p.ws;
  memset(p.zero, 0, ((size_t)(C > O ? C : O) + 8) * sizeof(float));
  transform_input(&p, x);
  transform_gradient(&p, dy);
  for (int xi = 0; xi < 16; xi++)  // Wt[ξ] [C×O] = V[ξ]ᵀ [C×T] · D[ξ] [T×O]
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, O, p.T, 1.f, p.V + xi * p.vs, C, p.D + xi * p.ds, O,
                0.f, p.Wt + xi * p.ws, O);
  transform_output(&p, dw);
  if (dbias) ddp_bias_gradient(dy, (size_t)N * H * W, O, dbias);
}

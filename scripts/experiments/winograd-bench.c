// winograd-bench.c: does Winograd F(2x2,3x3) convolution, with its 16 GEMMs done by OpenBLAS, beat oneDNN's direct
// convolution on the 3x3 / stride 1 / pad 1 layers of the SwiftDDP models? Single thread, fp32, NHWC activations,
// OIHW weights at the API boundary (as in PyTorch and in conv-bench.c).
//
// Winograd (Lavin & Gray 2015), per 2x2 output tile and channel pair:  y = A^T [ (G g G^T) .* (B^T d B) ] A,
// d = 4x4 input tile, g = 3x3 filter. Summing over input channels turns the element-wise product into 16 GEMMs:
//   V[xi] (T x Cin)  = B^T d B of every tile, element xi in 0..15   (input transform)
//   U[xi] (Cin x Cout) = G g G^T                                      (weight transform, once per step)
//   M[xi] (T x Cout) = V[xi] . U[xi]                                  (16 cblas_sgemm)
//   y tile           = A^T m A                                        (output transform)
// Backward-data is the same 3x3/s1/p1 convolution of dy with rot180(w) with C and O swapped.
// Backward-weights (optional) uses F(3x3,2x2): dw = A2^T [ sum_t (G2 dy_t G2^T) .* (B2^T x_t B2) ] A2, where the
// sum over tiles is again 16 GEMMs, V2[xi]^T (Cin x T) . D[xi] (T x Cout).
// Also timed: "winograd_blocked", the same three steps on blocks of TB tiles so V and M stay in L2.
// Baseline: oneDNN direct convolution (jit:avx2 here), NHWC forced, weights in oneDNN's chosen layout, weight
// reorders not timed. Output: JSON lines (argv[2]) and markdown tables on stdout.
//
// Build/run: scripts/experiments/winograd-bench.sh [rounds] [min seconds per measurement]
#define _GNU_SOURCE
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <dnnl.h>
#include <dnnl_debug.h>

extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);
extern char *openblas_get_config(void);
extern char *openblas_get_corename(void);

// ---------------------------------------------------------------- shapes
typedef struct { const char *name; int C, O, H; } Shape;  // 3x3, stride 1, pad 1, square input H x H
static const Shape SHAPES[] = {
    {"cnn_conv2_32to64_14", 32, 64, 14},
    {"res_16to16_28", 16, 16, 28},
    {"res_32to32_14", 32, 32, 14},
    {"res_64to64_7", 64, 64, 7},
};
#define NSHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))
static const int BATCHES[] = {64, 8};
#define NBATCH 2

#ifndef CHECK_N
#define CHECK_N 2  // batch of the correctness checks; -DCHECK_N=64 checks at the benchmark batch (slower reference)
#endif

static double direct_flops(const Shape *s, int N) { return 2.0 * N * s->O * s->H * s->H * s->C * 9; }

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}
static float *falloc(size_t n) {
  float *p = NULL;
  if (posix_memalign((void **)&p, 64, (n ? n : 1) * sizeof(float))) abort();
  memset(p, 0, (n ? n : 1) * sizeof(float));
  return p;
}
static void frand(float *p, size_t n, unsigned *seed) {
  for (size_t i = 0; i < n; i++) {
    *seed = *seed * 1664525u + 1013904223u;
    p[i] = ((*seed >> 8) / 16777216.0f) * 2 - 1;
  }
}

// ---------------------------------------------------------------- 8-lane vectors over channels
// NHWC keeps the channels of one pixel contiguous, so every transform works on 8 channels at once with GCC vector
// extensions (one AVX2 register). A channel count that is not a multiple of 8 gets a short last block.
typedef float v8 __attribute__((vector_size(32)));
static inline v8 ld8(const float *p, int n) {
  v8 v = {0};
  if (n == 8) memcpy(&v, p, 32);  // constant size: compiles to one unaligned vector load
  else memcpy(&v, p, (size_t)n * 4);
  return v;
}
static inline void st8(float *p, v8 v, int n) {
  if (n == 8) memcpy(p, &v, 32);
  else memcpy(p, &v, (size_t)n * 4);
}

// Distance (in floats) between two of the 16 matrices holding n floats each. The natural distance n is often a
// multiple of 4 KiB (e.g. T*C*4 = 98*4096 bytes at N=64, 14x14, C=32): then the 16 streams a transform reads or writes
// side by side all map to the same L1 set and evict each other. Rounding up to 4 KiB and adding one 64-byte line puts
// matrix xi at line offset xi within a 4 KiB page.
static size_t mat_stride(size_t n) { return ((n + 1023) & ~(size_t)1023) + 16; }

// The 16 taps of the 4x4 input tile of output tile (th, tw): input rows 2th-1..2th+2, cols 2tw-1..2tw+2.
// Taps in the zero padding (and beyond the end of odd-sized inputs) point at a buffer of zeros, so the transforms
// need no bounds checks.
static void tile_taps(const float *x, int n, int th, int tw, int H, int W, int C, const float *zero,
                      const float *p[4][4]) {
  for (int i = 0; i < 4; i++) {
    int h = 2 * th - 1 + i;
    for (int j = 0; j < 4; j++) {
      int w = 2 * tw - 1 + j;
      p[i][j] = (h < 0 || h >= H || w < 0 || w >= W) ? zero : x + (((size_t)n * H + h) * W + w) * C;
    }
  }
}

// ---------------------------------------------------------------- Winograd F(2x2, 3x3) plan
typedef struct {
  int N, H, W, Cin, Cout, tH, tW, T, TB;  // T = N*tH*tW tiles; TB = tiles per block in the blocked variant
  float *U;                               // 16 x [Cin x Cout] transformed weights, matrix stride us
  float *V, *M;                           // whole batch: 16 x [T x Cin], 16 x [T x Cout], strides vs, ms
  float *Vb, *Mb;                         // blocked variant: 16 x [TB x Cin], 16 x [TB x Cout], strides vbs, mbs
  size_t us, vs, ms, vbs, mbs;
  float *zero;                            // >= max(Cin, Cout) zeros for padding taps
} Wino;

// Tiles per block for the blocked variant: keep V and M of one block (16*TB*(Cin+Cout) floats) within ~384 KiB so
// they stay in the 512 KiB L2 between the transforms and the GEMMs; at least 64 rows so the GEMMs stay efficient.
static int BLOCK_KB = 384;  // WINO_BLOCK_KB overrides (tuning only)
static int pick_tb(int Cin, int Cout, int T) {
  int tb = (BLOCK_KB * 1024) / (16 * 4 * (Cin + Cout));
  tb = tb < 64 ? 64 : tb & ~15;
  return tb > T ? T : tb;
}

static void wino_plan(Wino *p, int N, int H, int W, int Cin, int Cout) {
  memset(p, 0, sizeof *p);
  p->N = N; p->H = H; p->W = W; p->Cin = Cin; p->Cout = Cout;
  p->tH = (H + 1) / 2; p->tW = (W + 1) / 2;  // 2x2 output tiles cover ceil(H/2) x ceil(W/2); last may be partial
  p->T = N * p->tH * p->tW;
  p->TB = pick_tb(Cin, Cout, p->T);
  p->us = mat_stride((size_t)Cin * Cout);
  p->vs = mat_stride((size_t)p->T * Cin);
  p->ms = mat_stride((size_t)p->T * Cout);
  p->vbs = mat_stride((size_t)p->TB * Cin);
  p->mbs = mat_stride((size_t)p->TB * Cout);
  p->U = falloc(16 * p->us);
  p->V = falloc(16 * p->vs);
  p->M = falloc(16 * p->ms);
  p->Vb = falloc(16 * p->vbs);
  p->Mb = falloc(16 * p->mbs);
  p->zero = falloc((size_t)(Cin > Cout ? Cin : Cout) + 8);
}
static void wino_free(Wino *p) { free(p->U); free(p->V); free(p->M); free(p->Vb); free(p->Mb); free(p->zero); }

// U[xi][ci][co] = (G g G^T)[xi], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
// w is OIHW. Forward: Cin = C, Cout = O, g = w[co][ci]. Backward-data (bwd = 1): the plan has Cin = O, Cout = C and
// g = rot180(w[ci][co]), because dx = dy (*) w^T rotated by 180 degrees.
static void wino_weights(const Wino *p, const float *w, int bwd) {
  const int Cin = p->Cin, Cout = p->Cout;
  const size_t mat = p->us;
  for (int ci = 0; ci < Cin; ci++)
    for (int co = 0; co < Cout; co++) {
      const float *g = bwd ? w + ((size_t)ci * Cout + co) * 9 : w + ((size_t)co * Cin + ci) * 9;
      float k[3][3], gg[4][3];
      for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) k[a][b] = bwd ? g[(2 - a) * 3 + (2 - b)] : g[a * 3 + b];
      for (int b = 0; b < 3; b++) {  // G g (4x3)
        gg[0][b] = k[0][b];
        gg[1][b] = 0.5f * (k[0][b] + k[1][b] + k[2][b]);
        gg[2][b] = 0.5f * (k[0][b] - k[1][b] + k[2][b]);
        gg[3][b] = k[2][b];
      }
      float *u = p->U + (size_t)ci * Cout + co;
      for (int i = 0; i < 4; i++) {  // (G g) G^T (4x4)
        u[(i * 4 + 0) * mat] = gg[i][0];
        u[(i * 4 + 1) * mat] = 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]);
        u[(i * 4 + 2) * mat] = 0.5f * (gg[i][0] - gg[i][1] + gg[i][2]);
        u[(i * 4 + 3) * mat] = gg[i][2];
      }
    }
}

// Input transform of tiles t0..t0+nt-1 into V (16 matrices of nt x Cin, matrix stride mat): B^T d B with
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]; only additions.
static void wino_input(const Wino *p, const float *x, int t0, int nt, float *V, size_t mat) {
  const int Cin = p->Cin, per_img = p->tH * p->tW;
  for (int t = t0; t < t0 + nt; t++) {
    const int n = t / per_img, th = (t % per_img) / p->tW, tw = t % p->tW;
    const float *tap[4][4];
    tile_taps(x, n, th, tw, p->H, p->W, Cin, p->zero, tap);
    float *out = V + (size_t)(t - t0) * Cin;
    for (int c = 0; c < Cin; c += 8) {
      const int cb = Cin - c < 8 ? Cin - c : 8;
      v8 d[4][4], r[4][4];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) d[i][j] = ld8(tap[i][j] + c, cb);
      for (int j = 0; j < 4; j++) {  // B^T d (rows)
        r[0][j] = d[0][j] - d[2][j];
        r[1][j] = d[1][j] + d[2][j];
        r[2][j] = d[2][j] - d[1][j];
        r[3][j] = d[1][j] - d[3][j];
      }
      for (int i = 0; i < 4; i++) {  // (B^T d) B (columns), stored straight into the 16 matrices
        st8(out + (i * 4 + 0) * mat + c, r[i][0] - r[i][2], cb);
        st8(out + (i * 4 + 1) * mat + c, r[i][1] + r[i][2], cb);
        st8(out + (i * 4 + 2) * mat + c, r[i][2] - r[i][1], cb);
        st8(out + (i * 4 + 3) * mat + c, r[i][1] - r[i][3], cb);
      }
    }
  }
}

// The 16 independent GEMMs M[xi] (nt x Cout) = V[xi] (nt x Cin) . U[xi] (Cin x Cout), all row-major.
static void wino_gemm(const Wino *p, int nt, const float *V, size_t vs, float *M, size_t ms) {
  const int Cin = p->Cin, Cout = p->Cout;
  for (int xi = 0; xi < 16; xi++)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, Cout, Cin, 1.f, V + xi * vs, Cin, p->U + xi * p->us,
                Cout, 0.f, M + xi * ms, Cout);
}

// Output transform A^T m A, A^T = [1 1 1 0; 0 1 -1 -1], into NHWC y; the parts of a tile that fall beyond an
// odd-sized output are dropped.
static void wino_output(const Wino *p, const float *M, size_t mat, int t0, int nt, float *y) {
  const int Cout = p->Cout, per_img = p->tH * p->tW;
  for (int t = t0; t < t0 + nt; t++) {
    const int n = t / per_img, th = (t % per_img) / p->tW, tw = t % p->tW;
    const int hmax = p->H - 2 * th < 2 ? p->H - 2 * th : 2, wmax = p->W - 2 * tw < 2 ? p->W - 2 * tw : 2;
    const float *in = M + (size_t)(t - t0) * Cout;
    float *dst = y + (((size_t)n * p->H + 2 * th) * p->W + 2 * tw) * Cout;
    for (int c = 0; c < Cout; c += 8) {
      const int cb = Cout - c < 8 ? Cout - c : 8;
      v8 m[4][4], s[2][4];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) m[i][j] = ld8(in + (i * 4 + j) * mat + c, cb);
      for (int j = 0; j < 4; j++) {  // A^T m
        s[0][j] = m[0][j] + m[1][j] + m[2][j];
        s[1][j] = m[1][j] - m[2][j] - m[3][j];
      }
      for (int i = 0; i < hmax; i++) {  // (A^T m) A
        v8 o0 = s[i][0] + s[i][1] + s[i][2], o1 = s[i][1] - s[i][2] - s[i][3];
        st8(dst + (size_t)i * p->W * Cout + c, o0, cb);
        if (wmax > 1) st8(dst + ((size_t)i * p->W + 1) * Cout + c, o1, cb);
      }
    }
  }
}

// Whole batch: every transform streams all T tiles (V and M are several MB at N=64, beyond L2).
static void wino_conv(const Wino *p, const float *x, float *y) {
  wino_input(p, x, 0, p->T, p->V, p->vs);
  wino_gemm(p, p->T, p->V, p->vs, p->M, p->ms);
  wino_output(p, p->M, p->ms, 0, p->T, y);
}
// Blocked over tiles: the same three steps on TB tiles at a time, so V and M stay in L2 between them.
static void wino_conv_blocked(const Wino *p, const float *x, float *y) {
  for (int t0 = 0; t0 < p->T; t0 += p->TB) {
    int nt = p->T - t0 < p->TB ? p->T - t0 : p->TB;
    wino_input(p, x, t0, nt, p->Vb, p->vbs);
    wino_gemm(p, nt, p->Vb, p->vbs, p->Mb, p->mbs);
    wino_output(p, p->Mb, p->mbs, t0, nt, y);
  }
}

// ---------------------------------------------------------------- Winograd F(3x3, 2x2) for backward-weights
// For each tile t the 2x2 block of dy at output rows/cols (2th.., 2tw..) meets the 4x4 input tile of the forward pass,
// and dw[o][c][kh][kw] += sum_ij dy_t[i][j] x_t[i+kh][j+kw]: a 3x3 output from a 2x2 "filter", i.e. F(3x3, 2x2):
// B2^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 -1 0 1], G2 = [1 0; .5 .5; .5 -.5; 0 1], A2^T = [1 1 1 0; 0 1 -1 0; 0 1 1 1].
typedef struct {
  int N, H, W, C, O, tH, tW, T;
  float *V, *D, *Wt;  // 16 x [T x C], 16 x [T x O], 16 x [C x O], matrix strides vs, ds, ws (see mat_stride)
  size_t vs, ds, ws;
  float *zero;
} WinoDW;

static void dw_plan(WinoDW *p, int N, int H, int W, int C, int O) {
  memset(p, 0, sizeof *p);
  p->N = N; p->H = H; p->W = W; p->C = C; p->O = O;
  p->tH = (H + 1) / 2; p->tW = (W + 1) / 2; p->T = N * p->tH * p->tW;
  p->vs = mat_stride((size_t)p->T * C);
  p->ds = mat_stride((size_t)p->T * O);
  p->ws = mat_stride((size_t)C * O);
  p->V = falloc(16 * p->vs);
  p->D = falloc(16 * p->ds);
  p->Wt = falloc(16 * p->ws);
  p->zero = falloc((size_t)(C > O ? C : O) + 8);
}
static void dw_free(WinoDW *p) { free(p->V); free(p->D); free(p->Wt); free(p->zero); }

static void dw_input(const WinoDW *p, const float *x) {  // V = B2^T x_t B2
  const int C = p->C, per_img = p->tH * p->tW;
  const size_t mat = p->vs;
  for (int t = 0; t < p->T; t++) {
    const int n = t / per_img, th = (t % per_img) / p->tW, tw = t % p->tW;
    const float *tap[4][4];
    tile_taps(x, n, th, tw, p->H, p->W, C, p->zero, tap);
    float *out = p->V + (size_t)t * C;
    for (int c = 0; c < C; c += 8) {
      const int cb = C - c < 8 ? C - c : 8;
      v8 d[4][4], r[4][4];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) d[i][j] = ld8(tap[i][j] + c, cb);
      for (int j = 0; j < 4; j++) {
        r[0][j] = d[0][j] - d[2][j];
        r[1][j] = d[1][j] + d[2][j];
        r[2][j] = d[2][j] - d[1][j];
        r[3][j] = d[3][j] - d[1][j];
      }
      for (int i = 0; i < 4; i++) {
        st8(out + (i * 4 + 0) * mat + c, r[i][0] - r[i][2], cb);
        st8(out + (i * 4 + 1) * mat + c, r[i][1] + r[i][2], cb);
        st8(out + (i * 4 + 2) * mat + c, r[i][2] - r[i][1], cb);
        st8(out + (i * 4 + 3) * mat + c, r[i][3] - r[i][1], cb);
      }
    }
  }
}

static void dw_grad(const WinoDW *p, const float *dy) {  // D = G2 dy_t G2^T; dy beyond odd-sized outputs is zero
  const int O = p->O, per_img = p->tH * p->tW;
  const size_t mat = p->ds;
  for (int t = 0; t < p->T; t++) {
    const int n = t / per_img, th = (t % per_img) / p->tW, tw = t % p->tW;
    const float *tap[2][2];
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 2; j++) {
        int h = 2 * th + i, w = 2 * tw + j;
        tap[i][j] = (h >= p->H || w >= p->W) ? p->zero : dy + (((size_t)n * p->H + h) * p->W + w) * O;
      }
    float *out = p->D + (size_t)t * O;
    for (int c = 0; c < O; c += 8) {
      const int cb = O - c < 8 ? O - c : 8;
      v8 f[2][2], r[4][2];
      for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) f[i][j] = ld8(tap[i][j] + c, cb);
      for (int j = 0; j < 2; j++) {
        r[0][j] = f[0][j];
        r[1][j] = 0.5f * (f[0][j] + f[1][j]);
        r[2][j] = 0.5f * (f[0][j] - f[1][j]);
        r[3][j] = f[1][j];
      }
      for (int i = 0; i < 4; i++) {
        st8(out + (i * 4 + 0) * mat + c, r[i][0], cb);
        st8(out + (i * 4 + 1) * mat + c, 0.5f * (r[i][0] + r[i][1]), cb);
        st8(out + (i * 4 + 2) * mat + c, 0.5f * (r[i][0] - r[i][1]), cb);
        st8(out + (i * 4 + 3) * mat + c, r[i][1], cb);
      }
    }
  }
}

static void dw_gemm(const WinoDW *p) {  // Wt[xi] (C x O) = V[xi]^T (C x T) . D[xi] (T x O): the sum over tiles
  for (int xi = 0; xi < 16; xi++)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p->C, p->O, p->T, 1.f, p->V + xi * p->vs, p->C,
                p->D + xi * p->ds, p->O, 0.f, p->Wt + xi * p->ws, p->O);
}

static void dw_output(const WinoDW *p, float *dw) {  // dw (OIHW) = A2^T Wt A2
  const int C = p->C, O = p->O;
  const size_t mat = p->ws;
  for (int c = 0; c < C; c++)
    for (int o = 0; o < O; o += 8) {
      const int ob = O - o < 8 ? O - o : 8;
      v8 m[4][4], s[3][4], k[3][3];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) m[i][j] = ld8(p->Wt + (i * 4 + j) * mat + (size_t)c * O + o, ob);
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
      for (int l = 0; l < ob; l++)  // OIHW scatter; C*O*9 values, negligible next to the rest
        for (int a = 0; a < 3; a++)
          for (int b = 0; b < 3; b++) dw[(((size_t)(o + l) * C + c) * 3 + a) * 3 + b] = k[a][b][l];
    }
}
static void dw_run(const WinoDW *p, const float *x, const float *dy, float *dw) {
  dw_input(p, x); dw_grad(p, dy); dw_gemm(p); dw_output(p, dw);
}

// ---------------------------------------------------------------- oneDNN (as in conv-bench.c's onednn_nhwc)
// Activations forced to plain NHWC, weights format_tag_any (oneDNN picks a blocked layout). The OIHW -> blocked weight
// reorders run once at setup and are not timed; the diff-weights reorder back to OIHW is only used by the check.
#define CK(f)                                                                                                     \
  do {                                                                                                            \
    dnnl_status_t st_ = (f);                                                                                      \
    if (st_ != dnnl_success) {                                                                                    \
      fprintf(stderr, "oneDNN error %s at line %d: %s\n", dnnl_status2str(st_), __LINE__, #f);                    \
      exit(3);                                                                                                    \
    }                                                                                                             \
  } while (0)
static dnnl_engine_t ENG;
static dnnl_stream_t STRM;

typedef struct {
  dnnl_primitive_desc_t fpd, bdpd, bwpd;
  dnnl_primitive_t fwd, bwd_d, bwd_w;
  dnnl_memory_t x, y, dy, dx, wf, wbd, dw, u_w, u_dw;  // x/y/dy/dx plain NHWC; u_w/u_dw plain OIHW
  char impl[3][64];
} Dnnl;

static const dnnl_memory_desc_t *md_of(dnnl_memory_t m) {
  const dnnl_memory_desc_t *md;
  CK(dnnl_memory_get_memory_desc(m, &md));
  return md;
}
static dnnl_memory_t mem_md(const dnnl_memory_desc_t *md) {
  dnnl_memory_t m;
  CK(dnnl_memory_create(&m, md, ENG, DNNL_MEMORY_ALLOCATE));
  return m;
}
static float *ptr_of(dnnl_memory_t m) {
  void *p;
  CK(dnnl_memory_get_data_handle(m, &p));
  return p;
}
static void reorder(dnnl_memory_t src, dnnl_memory_t dst) {
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t r;
  CK(dnnl_reorder_primitive_desc_create(&pd, md_of(src), ENG, md_of(dst), ENG, NULL));
  CK(dnnl_primitive_create(&r, pd));
  dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
  CK(dnnl_primitive_execute(r, STRM, 2, a));
  CK(dnnl_stream_wait(STRM));
  dnnl_primitive_destroy(r);
  dnnl_primitive_desc_destroy(pd);
}
static void conv_mds(const Shape *s, int N, dnnl_format_tag_t act, dnnl_memory_desc_t *x, dnnl_memory_desc_t *w,
                     dnnl_memory_desc_t *y) {
  dnnl_dims_t xd = {N, s->C, s->H, s->H}, yd = {N, s->O, s->H, s->H}, wd = {s->O, s->C, 3, 3};
  CK(dnnl_memory_desc_init_by_tag(x, 4, xd, dnnl_f32, act));
  CK(dnnl_memory_desc_init_by_tag(y, 4, yd, dnnl_f32, act));
  CK(dnnl_memory_desc_init_by_tag(w, 4, wd, dnnl_f32, dnnl_format_tag_any));
}
static const dnnl_dims_t STRIDES = {1, 1}, PADS = {1, 1};  // full dnnl_dims_t: the API takes that array type

static void dnnl_init(Dnnl *d, const Shape *s, int N) {
  memset(d, 0, sizeof *d);
  dnnl_memory_desc_t xmd, wmd, ymd;
  conv_mds(s, N, dnnl_nhwc, &xmd, &wmd, &ymd);
  dnnl_convolution_desc_t fd, bd, bw;
  CK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &xmd, &wmd, NULL, &ymd,
                                        STRIDES, PADS, PADS));
  CK(dnnl_primitive_desc_create(&d->fpd, &fd, NULL, ENG, NULL));
  CK(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &xmd, &wmd, &ymd, STRIDES, PADS, PADS));
  CK(dnnl_primitive_desc_create(&d->bdpd, &bd, NULL, ENG, d->fpd));
  CK(dnnl_convolution_backward_weights_desc_init(&bw, dnnl_convolution_direct, &xmd, &wmd, NULL, &ymd, STRIDES, PADS,
                                                 PADS));
  CK(dnnl_primitive_desc_create(&d->bwpd, &bw, NULL, ENG, d->fpd));
  CK(dnnl_primitive_create(&d->fwd, d->fpd));
  CK(dnnl_primitive_create(&d->bwd_d, d->bdpd));
  CK(dnnl_primitive_create(&d->bwd_w, d->bwpd));
  // activations are NHWC in every primitive, so one buffer per tensor serves all three passes
  d->x = mem_md(&xmd); d->dx = mem_md(&xmd); d->y = mem_md(&ymd); d->dy = mem_md(&ymd);
  d->wf = mem_md(dnnl_primitive_desc_query_md(d->fpd, dnnl_query_weights_md, 0));
  d->wbd = mem_md(dnnl_primitive_desc_query_md(d->bdpd, dnnl_query_weights_md, 0));
  d->dw = mem_md(dnnl_primitive_desc_query_md(d->bwpd, dnnl_query_diff_weights_md, 0));
  dnnl_memory_desc_t oihw;
  dnnl_dims_t wd = {s->O, s->C, 3, 3};
  CK(dnnl_memory_desc_init_by_tag(&oihw, 4, wd, dnnl_f32, dnnl_oihw));
  d->u_w = mem_md(&oihw); d->u_dw = mem_md(&oihw);
  const char *str;
  dnnl_primitive_desc_t pds[3] = {d->fpd, d->bdpd, d->bwpd};
  for (int i = 0; i < 3; i++) {
    CK(dnnl_primitive_desc_query(pds[i], dnnl_query_impl_info_str, 0, &str));
    snprintf(d->impl[i], sizeof d->impl[i], "%s", str);
  }
}
// copy NHWC x, dy and OIHW w in; the weight reorders happen here, outside the timing
static void dnnl_load(Dnnl *d, const float *x, const float *w, const float *dy, const Shape *s, int N) {
  memcpy(ptr_of(d->x), x, sizeof(float) * N * s->H * s->H * s->C);
  memcpy(ptr_of(d->dy), dy, sizeof(float) * N * s->H * s->H * s->O);
  memcpy(ptr_of(d->u_w), w, sizeof(float) * s->O * s->C * 9);
  reorder(d->u_w, d->wf);
  reorder(d->u_w, d->wbd);
}
static void dnnl_free(Dnnl *d) {
  dnnl_primitive_destroy(d->fwd); dnnl_primitive_destroy(d->bwd_d); dnnl_primitive_destroy(d->bwd_w);
  dnnl_primitive_desc_destroy(d->fpd); dnnl_primitive_desc_destroy(d->bdpd); dnnl_primitive_desc_destroy(d->bwpd);
  dnnl_memory_t ms[] = {d->x, d->y, d->dy, d->dx, d->wf, d->wbd, d->dw, d->u_w, d->u_dw};
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) dnnl_memory_destroy(ms[i]);
}
static void dnnl_fwd(Dnnl *d) {
  dnnl_exec_arg_t a[3] = {{DNNL_ARG_SRC, d->x}, {DNNL_ARG_WEIGHTS, d->wf}, {DNNL_ARG_DST, d->y}};
  CK(dnnl_primitive_execute(d->fwd, STRM, 3, a));
  CK(dnnl_stream_wait(STRM));
}
static void dnnl_bwd_data(Dnnl *d) {
  dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, d->dy}, {DNNL_ARG_WEIGHTS, d->wbd}, {DNNL_ARG_DIFF_SRC, d->dx}};
  CK(dnnl_primitive_execute(d->bwd_d, STRM, 3, a));
  CK(dnnl_stream_wait(STRM));
}
static void dnnl_bwd_weights(Dnnl *d) {
  dnnl_exec_arg_t a[3] = {{DNNL_ARG_SRC, d->x}, {DNNL_ARG_DIFF_DST, d->dy}, {DNNL_ARG_DIFF_WEIGHTS, d->dw}};
  CK(dnnl_primitive_execute(d->bwd_w, STRM, 3, a));
  CK(dnnl_stream_wait(STRM));
}

// Can oneDNN 2.6 build its own Winograd convolution here? Its CPU Winograd kernels are AVX-512 only, so on an AVX2
// machine primitive-descriptor creation is expected to fail with dnnl_unimplemented. Also report what
// dnnl_convolution_auto resolves to.
static void probe_onednn_winograd(const Shape *s, int N) {
  const dnnl_prop_kind_t props[2] = {dnnl_forward_training, dnnl_forward_inference};
  const char *pname[2] = {"forward_training", "forward_inference"};
  const dnnl_format_tag_t tags[2] = {dnnl_nhwc, dnnl_format_tag_any};
  const char *tname[2] = {"nhwc", "any"};
  for (int a = 0; a < 2; a++)
    for (int pi = 0; pi < 2; pi++)
      for (int ti = 0; ti < 2; ti++) {
        dnnl_memory_desc_t xmd, wmd, ymd;
        conv_mds(s, N, tags[ti], &xmd, &wmd, &ymd);
        dnnl_convolution_desc_t cd;
        dnnl_alg_kind_t alg = a == 0 ? dnnl_convolution_winograd : dnnl_convolution_auto;
        dnnl_status_t st = dnnl_convolution_forward_desc_init(&cd, props[pi], alg, &xmd, &wmd, NULL, &ymd, STRIDES,
                                                              PADS, PADS);
        dnnl_primitive_desc_t pd = NULL;
        dnnl_status_t st2 = st == dnnl_success ? dnnl_primitive_desc_create(&pd, &cd, NULL, ENG, NULL) : st;
        const char *impl = "-";
        if (st2 == dnnl_success) CK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
        printf("# onednn probe %s N=%d alg=%s prop=%s act=%s: desc_init=%s primitive_desc_create=%s impl=%s\n",
               s->name, N, a == 0 ? "convolution_winograd" : "convolution_auto", pname[pi], tname[ti],
               dnnl_status2str(st), dnnl_status2str(st2), impl);
        if (pd) dnnl_primitive_desc_destroy(pd);
      }
}

// ---------------------------------------------------------------- naive reference (NHWC, OIHW, double)
static void ref_conv(const Shape *s, int N, const float *x, const float *w, const float *dy, double *y, double *dx,
                     double *dw) {
  const int C = s->C, O = s->O, H = s->H, W = s->H;
  memset(y, 0, sizeof(double) * N * H * W * O);
  memset(dx, 0, sizeof(double) * N * H * W * C);
  memset(dw, 0, sizeof(double) * O * C * 9);
  for (int n = 0; n < N; n++)
    for (int h = 0; h < H; h++)
      for (int ww = 0; ww < W; ww++)
        for (int o = 0; o < O; o++) {
          size_t yi = (((size_t)n * H + h) * W + ww) * O + o;
          double acc = 0, g = dy[yi];
          for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++) {
              int ih = h + kh - 1, iw = ww + kw - 1;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              for (int c = 0; c < C; c++) {
                size_t xi = (((size_t)n * H + ih) * W + iw) * C + c, wi = (((size_t)o * C + c) * 3 + kh) * 3 + kw;
                acc += (double)x[xi] * w[wi];
                dx[xi] += g * w[wi];
                dw[wi] += g * x[xi];
              }
            }
          y[yi] = acc;
        }
}
static double relerr(const float *a, const double *ref, size_t n) {  // max |a - ref| / max |ref|
  double md = 0, mr = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(a[i] - ref[i]);
    if (e > md) md = e;
    if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
  }
  return md / (mr > 0 ? mr : 1);
}

static FILE *JSON;
static int check(const Shape *s, int N) {
  const size_t xs = (size_t)N * s->H * s->H * s->C, ys = (size_t)N * s->H * s->H * s->O, ws = (size_t)s->O * s->C * 9;
  float *x = falloc(xs), *w = falloc(ws), *dy = falloc(ys), *y = falloc(ys), *dx = falloc(xs), *dw = falloc(ws);
  double *ry = malloc(ys * 8), *rdx = malloc(xs * 8), *rdw = malloc(ws * 8);
  unsigned seed = 12345;
  frand(x, xs, &seed); frand(w, ws, &seed); frand(dy, ys, &seed);
  ref_conv(s, N, x, w, dy, ry, rdx, rdw);
  Wino f, b;
  WinoDW g;
  wino_plan(&f, N, s->H, s->H, s->C, s->O);
  wino_plan(&b, N, s->H, s->H, s->O, s->C);
  dw_plan(&g, N, s->H, s->H, s->C, s->O);
  wino_weights(&f, w, 0);
  wino_weights(&b, w, 1);
  double e[8];
  wino_conv(&f, x, y); e[0] = relerr(y, ry, ys);
  wino_conv(&b, dy, dx); e[1] = relerr(dx, rdx, xs);
  memset(y, 0, ys * 4); memset(dx, 0, xs * 4);
  wino_conv_blocked(&f, x, y); e[2] = relerr(y, ry, ys);
  wino_conv_blocked(&b, dy, dx); e[3] = relerr(dx, rdx, xs);
  dw_run(&g, x, dy, dw); e[4] = relerr(dw, rdw, ws);
  Dnnl d;  // oneDNN against the same reference, so both sides compute the same thing
  dnnl_init(&d, s, N);
  dnnl_load(&d, x, w, dy, s, N);
  dnnl_fwd(&d); dnnl_bwd_data(&d); dnnl_bwd_weights(&d);
  reorder(d.dw, d.u_dw);
  e[5] = relerr(ptr_of(d.y), ry, ys); e[6] = relerr(ptr_of(d.dx), rdx, xs); e[7] = relerr(ptr_of(d.u_dw), rdw, ws);
  int ok = 1;
  for (int i = 0; i < 8; i++) ok &= e[i] < 1e-4;
  printf("# check %-20s N=%d C=%2d O=%2d %2dx%-2d tiles=%d: winograd y=%.2e dx=%.2e | blocked y=%.2e dx=%.2e | "
         "winograd dw F(3,2)=%.2e | onednn y=%.2e dx=%.2e dw=%.2e  %s\n",
         s->name, N, s->C, s->O, s->H, s->H, f.T, e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], ok ? "OK" : "FAIL");
  fprintf(JSON, "{\"check\":\"%s\",\"N\":%d,\"C\":%d,\"O\":%d,\"H\":%d,\"winograd_y\":%.3e,\"winograd_dx\":%.3e,"
          "\"winograd_blocked_y\":%.3e,\"winograd_blocked_dx\":%.3e,\"winograd_dw\":%.3e,\"onednn_y\":%.3e,"
          "\"onednn_dx\":%.3e,\"onednn_dw\":%.3e,\"ok\":%s}\n",
          s->name, N, s->C, s->O, s->H, e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], ok ? "true" : "false");
  dnnl_free(&d);
  wino_free(&f); wino_free(&b); dw_free(&g);
  free(x); free(w); free(dy); free(y); free(dx); free(dw); free(ry); free(rdx); free(rdw);
  return !ok;
}

// ---------------------------------------------------------------- timed jobs
typedef struct {
  const Shape *s;
  int N;
  float *x, *w, *dy, *y, *dx, *dw;  // NHWC activations, OIHW weights
  Wino f, b;                        // forward plan (C -> O) and backward-data plan (O -> C)
  WinoDW g;
  Dnnl d;
} Case;

// Each job is one thing timed on its own. A part (transform, GEMMs) is timed by repeating just that part, so its
// inputs are as warm as they are after the previous step in a full call (or warmer, for data that fits in cache).
enum {
  J_DNNL_FWD, J_W_FWD, J_W_FWD_IN, J_W_FWD_GEMM, J_W_FWD_OUT, J_W_FWD_WT, J_WB_FWD,
  J_DNNL_BWD, J_W_BWD, J_W_BWD_IN, J_W_BWD_GEMM, J_W_BWD_OUT, J_W_BWD_WT, J_WB_BWD,
  J_DNNL_BWW, J_W_BWW, J_W_BWW_IN, J_W_BWW_DY, J_W_BWW_GEMM, J_W_BWW_OUT,
  NJOB
};
static const struct { const char *variant, *pass, *part; } JOB[NJOB] = {
    {"onednn_direct", "fwd", "total"},
    {"winograd", "fwd", "total"},
    {"winograd", "fwd", "input_transform"},
    {"winograd", "fwd", "gemm"},
    {"winograd", "fwd", "output_transform"},
    {"winograd", "fwd", "weight_transform"},
    {"winograd_blocked", "fwd", "total"},
    {"onednn_direct", "bwd_data", "total"},
    {"winograd", "bwd_data", "total"},
    {"winograd", "bwd_data", "input_transform"},
    {"winograd", "bwd_data", "gemm"},
    {"winograd", "bwd_data", "output_transform"},
    {"winograd", "bwd_data", "weight_transform"},
    {"winograd_blocked", "bwd_data", "total"},
    {"onednn_direct", "bwd_weights", "total"},
    {"winograd", "bwd_weights", "total"},
    {"winograd", "bwd_weights", "input_transform"},
    {"winograd", "bwd_weights", "dy_transform"},
    {"winograd", "bwd_weights", "gemm"},
    {"winograd", "bwd_weights", "output_transform"},
};

static void run_job(Case *k, int j) {
  switch (j) {
    case J_DNNL_FWD: dnnl_fwd(&k->d); break;
    case J_W_FWD: wino_conv(&k->f, k->x, k->y); break;
    case J_W_FWD_IN: wino_input(&k->f, k->x, 0, k->f.T, k->f.V, k->f.vs); break;
    case J_W_FWD_GEMM: wino_gemm(&k->f, k->f.T, k->f.V, k->f.vs, k->f.M, k->f.ms); break;
    case J_W_FWD_OUT: wino_output(&k->f, k->f.M, k->f.ms, 0, k->f.T, k->y); break;
    case J_W_FWD_WT: wino_weights(&k->f, k->w, 0); break;
    case J_WB_FWD: wino_conv_blocked(&k->f, k->x, k->y); break;
    case J_DNNL_BWD: dnnl_bwd_data(&k->d); break;
    case J_W_BWD: wino_conv(&k->b, k->dy, k->dx); break;
    case J_W_BWD_IN: wino_input(&k->b, k->dy, 0, k->b.T, k->b.V, k->b.vs); break;
    case J_W_BWD_GEMM: wino_gemm(&k->b, k->b.T, k->b.V, k->b.vs, k->b.M, k->b.ms); break;
    case J_W_BWD_OUT: wino_output(&k->b, k->b.M, k->b.ms, 0, k->b.T, k->dx); break;
    case J_W_BWD_WT: wino_weights(&k->b, k->w, 1); break;
    case J_WB_BWD: wino_conv_blocked(&k->b, k->dy, k->dx); break;
    case J_DNNL_BWW: dnnl_bwd_weights(&k->d); break;
    case J_W_BWW: dw_run(&k->g, k->x, k->dy, k->dw); break;
    case J_W_BWW_IN: dw_input(&k->g, k->x); break;
    case J_W_BWW_DY: dw_grad(&k->g, k->dy); break;
    case J_W_BWW_GEMM: dw_gemm(&k->g); break;
    case J_W_BWW_OUT: dw_output(&k->g, k->dw); break;
  }
}

static double MIN_MEAS_S = 0.02;
// ms per call: 1 warm-up call, 1 probe call to size the loop, then the mean over enough calls to last >= MIN_MEAS_S
static double measure(Case *k, int j) {
  run_job(k, j);
  double t0 = now_s();
  run_job(k, j);
  double t1 = now_s() - t0;
  int reps = (int)(MIN_MEAS_S / (t1 > 1e-7 ? t1 : 1e-7)) + 1;
  if (reps > 100000) reps = 100000;
  t0 = now_s();
  for (int r = 0; r < reps; r++) run_job(k, j);
  return (now_s() - t0) * 1e3 / reps;
}

static void case_init(Case *k, const Shape *s, int N, unsigned seed) {
  memset(k, 0, sizeof *k);
  k->s = s; k->N = N;
  const size_t xs = (size_t)N * s->H * s->H * s->C, ys = (size_t)N * s->H * s->H * s->O, ws = (size_t)s->O * s->C * 9;
  k->x = falloc(xs); k->dx = falloc(xs); k->y = falloc(ys); k->dy = falloc(ys); k->w = falloc(ws); k->dw = falloc(ws);
  frand(k->x, xs, &seed); frand(k->dy, ys, &seed); frand(k->w, ws, &seed);
  wino_plan(&k->f, N, s->H, s->H, s->C, s->O);
  wino_plan(&k->b, N, s->H, s->H, s->O, s->C);
  dw_plan(&k->g, N, s->H, s->H, s->C, s->O);
  wino_weights(&k->f, k->w, 0);
  wino_weights(&k->b, k->w, 1);
  wino_conv(&k->f, k->x, k->y);  // so that every part starts from real data
  wino_conv(&k->b, k->dy, k->dx);
  dnnl_init(&k->d, s, N);
  dnnl_load(&k->d, k->x, k->w, k->dy, s, N);
}
static void case_free(Case *k) {
  wino_free(&k->f); wino_free(&k->b); dw_free(&k->g); dnnl_free(&k->d);
  free(k->x); free(k->dx); free(k->y); free(k->dy); free(k->w); free(k->dw);
}

#define MAXR 31
typedef struct { double t[MAXR]; int n; } Samples;
static Samples S[NSHAPES][NBATCH][NJOB];
typedef struct { double med, min, max; } Stat;
static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static Stat stat_of(const Samples *s) {
  double t[MAXR];
  memcpy(t, s->t, s->n * sizeof(double));
  qsort(t, s->n, sizeof(double), cmpd);
  Stat r = {s->n % 2 ? t[s->n / 2] : 0.5 * (t[s->n / 2 - 1] + t[s->n / 2]), t[0], t[s->n - 1]};
  return r;
}

// ---------------------------------------------------------------- report
static void print_tables(void) {
  for (int bi = 0; bi < NBATCH; bi++) {
    printf("\n### N=%d (ms per call, median over rounds; speedup = oneDNN / Winograd, > 1: Winograd faster)\n\n",
           BATCHES[bi]);
    printf("| shape | oneDNN fwd | Winograd fwd total (in / GEMMs / out) | weight tr. | speedup (incl. weight tr.) "
           "| blocked fwd | oneDNN bwd-data | Winograd bwd-data total (in / GEMMs / out) | weight tr. "
           "| speedup (incl. weight tr.) | blocked bwd-data | oneDNN bwd-weights | Winograd bwd-weights "
           "(x tr. / dy tr. / GEMMs / out) |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int si = 0; si < NSHAPES; si++) {
      Stat m[NJOB];
      for (int j = 0; j < NJOB; j++) m[j] = stat_of(&S[si][bi][j]);
      double fl = direct_flops(&SHAPES[si], BATCHES[bi]) / 1e6;  // MFLOP, so MFLOP / ms = GFLOP/s
      printf("| %s | %.3f (%.0f GF/s) | %.3f (%.0f GF/s) (%.3f / %.3f / %.3f) | %.3f | %.2f (%.2f) | %.3f "
             "| %.3f (%.0f GF/s) | %.3f (%.0f GF/s) (%.3f / %.3f / %.3f) | %.3f | %.2f (%.2f) | %.3f "
             "| %.3f (%.0f GF/s) | %.3f (%.3f / %.3f / %.3f / %.3f) |\n",
             SHAPES[si].name, m[J_DNNL_FWD].med, fl / m[J_DNNL_FWD].med, m[J_W_FWD].med, fl / m[J_W_FWD].med,
             m[J_W_FWD_IN].med, m[J_W_FWD_GEMM].med, m[J_W_FWD_OUT].med, m[J_W_FWD_WT].med,
             m[J_DNNL_FWD].med / m[J_W_FWD].med, m[J_DNNL_FWD].med / (m[J_W_FWD].med + m[J_W_FWD_WT].med),
             m[J_WB_FWD].med, m[J_DNNL_BWD].med, fl / m[J_DNNL_BWD].med, m[J_W_BWD].med, fl / m[J_W_BWD].med,
             m[J_W_BWD_IN].med, m[J_W_BWD_GEMM].med, m[J_W_BWD_OUT].med, m[J_W_BWD_WT].med,
             m[J_DNNL_BWD].med / m[J_W_BWD].med, m[J_DNNL_BWD].med / (m[J_W_BWD].med + m[J_W_BWD_WT].med),
             m[J_WB_BWD].med, m[J_DNNL_BWW].med, fl / m[J_DNNL_BWW].med, m[J_W_BWW].med, m[J_W_BWW_IN].med,
             m[J_W_BWW_DY].med, m[J_W_BWW_GEMM].med, m[J_W_BWW_OUT].med);
    }
    printf("\nGEMM part alone (actual flops 16*2*T*Cin*Cout / GEMM time) and transforms / GEMMs time ratio:\n\n");
    printf("| shape | T | fwd GEMM GF/s | fwd (in+out)/GEMM | bwd-data GEMM GF/s | bwd-data (in+out)/GEMM "
           "| blocked TB fwd / bwd |\n|---|---|---|---|---|---|---|\n");
    for (int si = 0; si < NSHAPES; si++) {
      const Shape *s = &SHAPES[si];
      Stat m[NJOB];
      for (int j = 0; j < NJOB; j++) m[j] = stat_of(&S[si][bi][j]);
      int T = BATCHES[bi] * ((s->H + 1) / 2) * ((s->H + 1) / 2);
      double gf = 16.0 * 2 * T * s->C * s->O / 1e6;
      printf("| %s | %d | %.1f | %.2f | %.1f | %.2f | %d / %d |\n", s->name, T, gf / m[J_W_FWD_GEMM].med,
             (m[J_W_FWD_IN].med + m[J_W_FWD_OUT].med) / m[J_W_FWD_GEMM].med, gf / m[J_W_BWD_GEMM].med,
             (m[J_W_BWD_IN].med + m[J_W_BWD_OUT].med) / m[J_W_BWD_GEMM].med, pick_tb(s->C, s->O, T),
             pick_tb(s->O, s->C, T));
    }
  }
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 9;
  if (rounds > MAXR) rounds = MAXR;
  if (rounds < 1) rounds = 1;
  const char *out = argc > 2 ? argv[2] : "results.jsonl";
  if (argc > 3) MIN_MEAS_S = atof(argv[3]);
  if (getenv("WINO_BLOCK_KB")) BLOCK_KB = atoi(getenv("WINO_BLOCK_KB"));
  openblas_set_num_threads(1);
  omp_set_num_threads(1);
  CK(dnnl_engine_create(&ENG, dnnl_cpu, 0));
  CK(dnnl_stream_create(&STRM, ENG, dnnl_stream_default_flags));
  JSON = fopen(out, "w");
  if (!JSON) { perror(out); return 1; }
  const dnnl_version_t *dv = dnnl_version();
  printf("# openblas threads=%d corename=%s config=%s\n", openblas_get_num_threads(), openblas_get_corename(),
         openblas_get_config());
  printf("# omp_get_max_threads=%d oneDNN %d.%d.%d (cpu_runtime=%u); rounds=%d min_meas_s=%.3f\n",
         omp_get_max_threads(), dv->major, dv->minor, dv->patch, dv->cpu_runtime, rounds, MIN_MEAS_S);
  fprintf(JSON, "{\"openblas_corename\":\"%s\",\"openblas_config\":\"%s\",\"onednn\":\"%d.%d.%d\",\"rounds\":%d,"
          "\"min_meas_s\":%.3f}\n", openblas_get_corename(), openblas_get_config(), dv->major, dv->minor, dv->patch,
          rounds, MIN_MEAS_S);

  // correctness first: every shape at N=CHECK_N, plus odd small cases (C, O not multiples of 8; odd H)
  int fails = 0;
  const Shape small[] = {{"small_3to5_7", 3, 5, 7}, {"small_9to12_6", 9, 12, 6}, {"small_17to3_5", 17, 3, 5}};
  for (int i = 0; i < 3; i++) fails += check(&small[i], CHECK_N);
  for (int i = 0; i < NSHAPES; i++) fails += check(&SHAPES[i], CHECK_N);
  printf("# correctness failures: %d\n", fails);
  probe_onednn_winograd(&SHAPES[2], 64);
  for (int si = 0; si < NSHAPES; si++) {
    Dnnl d;
    dnnl_init(&d, &SHAPES[si], 64);
    printf("# onednn %s: impl fwd=%s bwd_data=%s bwd_weights=%s\n", SHAPES[si].name, d.impl[0], d.impl[1], d.impl[2]);
    dnnl_free(&d);
  }
  fflush(stdout);
  if (fails) return 1;

  // rounds: shape -> batch -> job, so the variants alternate within each round and share any background load
  for (int r = 0; r < rounds; r++) {
    double tr = now_s();
    for (int si = 0; si < NSHAPES; si++)
      for (int bi = 0; bi < NBATCH; bi++) {
        Case k;
        case_init(&k, &SHAPES[si], BATCHES[bi], 7u + 31u * si + bi);
        for (int j = 0; j < NJOB; j++) {
          Samples *sm = &S[si][bi][j];
          sm->t[sm->n++] = measure(&k, j);
        }
        case_free(&k);
      }
    printf("# round %d done in %.1f s\n", r + 1, now_s() - tr);
    fflush(stdout);
  }

  for (int si = 0; si < NSHAPES; si++)
    for (int bi = 0; bi < NBATCH; bi++)
      for (int j = 0; j < NJOB; j++) {
        const Shape *s = &SHAPES[si];
        Stat m = stat_of(&S[si][bi][j]);
        int T = BATCHES[bi] * ((s->H + 1) / 2) * ((s->H + 1) / 2);
        double fl = direct_flops(s, BATCHES[bi]);
        char gf[32] = "null";  // effective GFLOP/s with the direct count, only meaningful for whole passes
        if (!strcmp(JOB[j].part, "total")) snprintf(gf, sizeof gf, "%.2f", fl / (m.med * 1e-3) / 1e9);
        fprintf(JSON, "{\"variant\":\"%s\",\"pass\":\"%s\",\"part\":\"%s\",\"shape\":\"%s\",\"N\":%d,\"C\":%d,\"O\":%d,"
                "\"H\":%d,\"tiles\":%d,\"ms_median\":%.4f,\"ms_min\":%.4f,\"ms_max\":%.4f,\"gflops_direct_count\":%s,"
                "\"rounds\":%d}\n",
                JOB[j].variant, JOB[j].pass, JOB[j].part, s->name, BATCHES[bi], s->C, s->O, s->H, T, m.med, m.min,
                m.max, gf, S[si][bi][j].n);
      }
  fclose(JSON);
  print_tables();
  printf("\n# wrote %s\n", out);
  return 0;
}

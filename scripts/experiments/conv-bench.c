// conv-bench.c: single-threaded CPU convolution benchmark (fwd, bwd-data, bwd-weights, fp32)
// for the layer shapes of the planned SwiftDDP models (CNN C=32, ResNet w=16 on 1x28x28).
// Variants: im2col+OpenBLAS NCHW, im2col+OpenBLAS NHWC, oneDNN (format any, and plain nhwc),
// im2col NHWC + libxsmm JIT small-GEMM tiles. Weights are OIHW (PyTorch) at the API boundary.
// Build/run: scripts/experiments/conv-bench.sh
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
#include <libxsmm.h>

extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);
extern char *openblas_get_config(void);

typedef struct { const char *name; int C, O, H, k, s, p; } Shape;
static const Shape SHAPES[] = {
    {"cnn_conv1_1to32_28", 1, 32, 28, 3, 1, 1},
    {"cnn_conv2_32to64_14", 32, 64, 14, 3, 1, 1},
    {"res_stem_1to16_28", 1, 16, 28, 3, 1, 1},
    {"res_16to16_28", 16, 16, 28, 3, 1, 1},
    {"res_16to32_28_s2", 16, 32, 28, 3, 2, 1},
    {"res_32to32_14", 32, 32, 14, 3, 1, 1},
    {"res_32to64_14_s2", 32, 64, 14, 3, 2, 1},
    {"res_64to64_7", 64, 64, 7, 3, 1, 1},
    {"res_proj1x1_16to32_28_s2", 16, 32, 28, 1, 2, 0},
    {"res_proj1x1_32to64_14_s2", 32, 64, 14, 1, 2, 0},
};
#define NSHAPES ((int)(sizeof(SHAPES) / sizeof(SHAPES[0])))
static const int BATCHES[] = {64, 8, 2};
#define NBATCH 3

typedef struct { int N, C, H, W, O, k, s, p, OH, OW, P, K; } Conv;
static Conv mkconv(const Shape *sh, int N) {
  Conv c = {N, sh->C, sh->H, sh->H, sh->O, sh->k, sh->s, sh->p, 0, 0, 0, 0};
  c.OH = (c.H + 2 * c.p - c.k) / c.s + 1;
  c.OW = (c.W + 2 * c.p - c.k) / c.s + 1;
  c.P = c.OH * c.OW;
  c.K = c.C * c.k * c.k;
  return c;
}
static double conv_flops(const Conv *c) { return 2.0 * c->N * c->O * c->P * c->K; }

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

// ---------------- layout helpers ----------------
static void nchw_to_nhwc(const float *a, float *b, int N, int C, int H, int W) {
  for (int n = 0; n < N; n++) for (int c = 0; c < C; c++) for (int h = 0; h < H; h++) for (int w = 0; w < W; w++)
    b[((size_t)(n * H + h) * W + w) * C + c] = a[((size_t)(n * C + c) * H + h) * W + w];
}
static void nhwc_to_nchw(const float *a, float *b, int N, int C, int H, int W) {
  for (int n = 0; n < N; n++) for (int c = 0; c < C; c++) for (int h = 0; h < H; h++) for (int w = 0; w < W; w++)
    b[((size_t)(n * C + c) * H + h) * W + w] = a[((size_t)(n * H + h) * W + w) * C + c];
}
// OIHW -> O x (kh,kw,c)  (row-major, "OHWI")
static void oihw_to_ohwi(const Conv *c, const float *w, float *o) {
  for (int oc = 0; oc < c->O; oc++) for (int ic = 0; ic < c->C; ic++)
    for (int kh = 0; kh < c->k; kh++) for (int kw = 0; kw < c->k; kw++)
    o[(size_t)oc * c->K + (kh * c->k + kw) * c->C + ic] = w[(((size_t)oc * c->C + ic) * c->k + kh) * c->k + kw];
}
static void ohwi_to_oihw(const Conv *c, const float *o, float *w) {
  for (int oc = 0; oc < c->O; oc++) for (int ic = 0; ic < c->C; ic++)
    for (int kh = 0; kh < c->k; kh++) for (int kw = 0; kw < c->k; kw++)
    w[(((size_t)oc * c->C + ic) * c->k + kh) * c->k + kw] = o[(size_t)oc * c->K + (kh * c->k + kw) * c->C + ic];
}
// OIHW -> (kh,kw,c) x O  (row-major, "HWIO")
static void oihw_to_hwio(const Conv *c, const float *w, float *o) {
  for (int oc = 0; oc < c->O; oc++) for (int ic = 0; ic < c->C; ic++)
    for (int kh = 0; kh < c->k; kh++) for (int kw = 0; kw < c->k; kw++)
    o[(size_t)((kh * c->k + kw) * c->C + ic) * c->O + oc] = w[(((size_t)oc * c->C + ic) * c->k + kh) * c->k + kw];
}

// ---------------- naive reference (NCHW, double accumulation) ----------------
static void ref_all(const Conv *c, const float *x, const float *w, const float *dy, float *y, float *dx, float *dw) {
  int N = c->N, C = c->C, H = c->H, W = c->W, O = c->O, k = c->k;
  double *ddx = calloc((size_t)N * C * H * W, sizeof(double)), *ddw = calloc((size_t)O * C * k * k, sizeof(double));
  for (int n = 0; n < N; n++) for (int o = 0; o < O; o++)
    for (int oh = 0; oh < c->OH; oh++) for (int ow = 0; ow < c->OW; ow++) {
    double acc = 0;
    double g = dy[((size_t)(n * O + o) * c->OH + oh) * c->OW + ow];
    for (int ic = 0; ic < C; ic++) for (int kh = 0; kh < k; kh++) for (int kw = 0; kw < k; kw++) {
      int ih = oh * c->s - c->p + kh, iw = ow * c->s - c->p + kw;
      if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
      size_t xi = ((size_t)(n * C + ic) * H + ih) * W + iw, wi = (((size_t)o * C + ic) * k + kh) * k + kw;
      acc += (double)x[xi] * w[wi];
      ddx[xi] += g * w[wi];
      ddw[wi] += g * x[xi];
    }
    y[((size_t)(n * O + o) * c->OH + oh) * c->OW + ow] = (float)acc;
  }
  for (size_t i = 0; i < (size_t)N * C * H * W; i++) dx[i] = (float)ddx[i];
  for (size_t i = 0; i < (size_t)O * C * k * k; i++) dw[i] = (float)ddw[i];
  free(ddx); free(ddw);
}
static double relerr(const float *a, const float *ref, size_t n) {
  double md = 0, mr = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - ref[i]);
    if (d > md) md = d;
    if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
  }
  return md / (mr > 0 ? mr : 1);
}

// ---------------- im2col / col2im ----------------
// NCHW, one image: col[K x P], K ordered (c,kh,kw)
static void im2col_nchw(const Conv *c, const float *x, float *col) {
  int k = c->k;
  for (int ic = 0; ic < c->C; ic++) for (int kh = 0; kh < k; kh++) for (int kw = 0; kw < k; kw++) {
    float *row = col + (size_t)((ic * k + kh) * k + kw) * c->P;
    const float *xc = x + (size_t)ic * c->H * c->W;
    for (int oh = 0; oh < c->OH; oh++) {
      int ih = oh * c->s - c->p + kh;
      float *r = row + oh * c->OW;
      if (ih < 0 || ih >= c->H) { memset(r, 0, c->OW * sizeof(float)); continue; }
      const float *xr = xc + (size_t)ih * c->W;
      if (c->s == 1) {
        int lo = c->p - kw, ow0 = lo > 0 ? lo : 0, ow1 = c->W + c->p - kw; if (ow1 > c->OW) ow1 = c->OW;
        for (int ow = 0; ow < ow0; ow++) r[ow] = 0;
        if (ow1 > ow0) memcpy(r + ow0, xr + ow0 - c->p + kw, (ow1 - ow0) * sizeof(float));
        for (int ow = ow1 > ow0 ? ow1 : ow0; ow < c->OW; ow++) r[ow] = 0;
      } else {
        for (int ow = 0; ow < c->OW; ow++) {
          int iw = ow * c->s - c->p + kw;
          r[ow] = (iw >= 0 && iw < c->W) ? xr[iw] : 0.f;
        }
      }
    }
  }
}
static void col2im_nchw(const Conv *c, const float *col, float *dx) {
  int k = c->k;
  memset(dx, 0, (size_t)c->C * c->H * c->W * sizeof(float));
  for (int ic = 0; ic < c->C; ic++) for (int kh = 0; kh < k; kh++) for (int kw = 0; kw < k; kw++) {
    const float *row = col + (size_t)((ic * k + kh) * k + kw) * c->P;
    float *xc = dx + (size_t)ic * c->H * c->W;
    for (int oh = 0; oh < c->OH; oh++) {
      int ih = oh * c->s - c->p + kh;
      if (ih < 0 || ih >= c->H) continue;
      float *xr = xc + (size_t)ih * c->W;
      const float *r = row + oh * c->OW;
      for (int ow = 0; ow < c->OW; ow++) { int iw = ow * c->s - c->p + kw; if (iw >= 0 && iw < c->W) xr[iw] += r[ow]; }
    }
  }
}
// NHWC, whole batch: col[(N*P) x K], K ordered (kh,kw,c)
static void im2col_nhwc(const Conv *c, const float *x, float *col) {
  int k = c->k, C = c->C;
  for (int n = 0; n < c->N; n++) for (int oh = 0; oh < c->OH; oh++) for (int ow = 0; ow < c->OW; ow++) {
    float *r = col + ((size_t)n * c->P + oh * c->OW + ow) * c->K;
    for (int kh = 0; kh < k; kh++) {
      int ih = oh * c->s - c->p + kh;
      for (int kw = 0; kw < k; kw++) {
        int iw = ow * c->s - c->p + kw;
        float *d = r + (kh * k + kw) * C;
        if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) memset(d, 0, C * sizeof(float));
        else memcpy(d, x + (((size_t)n * c->H + ih) * c->W + iw) * C, C * sizeof(float));
      }
    }
  }
}
static void col2im_nhwc(const Conv *c, const float *col, float *dx) {
  int k = c->k, C = c->C;
  memset(dx, 0, (size_t)c->N * c->H * c->W * C * sizeof(float));
  for (int n = 0; n < c->N; n++) for (int oh = 0; oh < c->OH; oh++) for (int ow = 0; ow < c->OW; ow++) {
    const float *r = col + ((size_t)n * c->P + oh * c->OW + ow) * c->K;
    for (int kh = 0; kh < k; kh++) {
      int ih = oh * c->s - c->p + kh;
      if (ih < 0 || ih >= c->H) continue;
      for (int kw = 0; kw < k; kw++) {
        int iw = ow * c->s - c->p + kw;
        if (iw < 0 || iw >= c->W) continue;
        float *d = dx + (((size_t)n * c->H + ih) * c->W + iw) * C;
        const float *sr = r + (kh * k + kw) * C;
        for (int ic = 0; ic < C; ic++) d[ic] += sr[ic];
      }
    }
  }
}

// ---------------- libxsmm tiled row-major GEMM: C[MxN] = A[MxK] B[KxN] (+ beta C) ----------------
// row-major C = A B  <=>  col-major C^T = B^T A^T: kernel(m=N, n=M, k=K, a=B, b=A).
#define XT_M 64
#define XT_N 64
#define XT_K 256
static void xsmm_gemm_rm(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
                         float beta) {
  const libxsmm_blasint la = ldb, lb = lda, lc = ldc;
  const float one = 1.f, zero = 0.f;
  for (int j0 = 0; j0 < N; j0 += XT_M) {            // col-major m (vectorized) = row-major N
    int mm = N - j0 < XT_M ? N - j0 : XT_M;
    for (int i0 = 0; i0 < M; i0 += XT_N) {          // col-major n = row-major M
      int nn = M - i0 < XT_N ? M - i0 : XT_N;
      for (int k0 = 0; k0 < K; k0 += XT_K) {
        int kk = K - k0 < XT_K ? K - k0 : XT_K;
        const float *b = (k0 == 0 && beta == 0.f) ? &zero : &one;
        libxsmm_smmfunction f = libxsmm_smmdispatch(mm, nn, kk, &la, &lb, &lc, &one, b, NULL, NULL);
        if (!f) { fprintf(stderr, "libxsmm dispatch failed m=%d n=%d k=%d\n", mm, nn, kk); exit(2); }
        f(B + (size_t)k0 * ldb + j0, A + (size_t)i0 * lda + k0, C + (size_t)i0 * ldc + j0);
      }
    }
  }
}

// ---------------- GEMM variants ----------------
enum { V_NCHW_BLAS, V_NHWC_BLAS, V_NHWC_XSMM, V_DNNL_ANY, V_DNNL_NHWC, V_XSMM_DNN, NVAR };
static const char *VNAME[NVAR] = {"im2col_openblas_nchw", "im2col_openblas_nhwc", "im2col_libxsmm_nhwc",
                                  "onednn_any", "onednn_nhwc", "libxsmm_dnn_direct"};

typedef struct {
  Conv c;
  int nhwc, xsmm;
  float *x, *w, *dy, *y, *dx, *dw;  // activations in the variant's layout; w/dw OIHW
  float *col, *wp, *wt, *dwp, *dyt; // scratch
} GemmCtx;

static void gemm_init(GemmCtx *g, const Conv *c, int nhwc, int xsmm) {
  memset(g, 0, sizeof *g);
  g->c = *c; g->nhwc = nhwc; g->xsmm = xsmm;
  size_t xs = (size_t)c->N * c->C * c->H * c->W, ys = (size_t)c->N * c->O * c->P, ws = (size_t)c->O * c->K;
  g->x = falloc(xs); g->dx = falloc(xs); g->y = falloc(ys); g->dy = falloc(ys); g->w = falloc(ws); g->dw = falloc(ws);
  g->col = falloc(nhwc ? (size_t)c->N * c->P * c->K : (size_t)c->P * c->K);
  g->wp = falloc(ws); g->wt = falloc(ws); g->dwp = falloc(ws);
  if (xsmm) g->dyt = falloc(ys);
}
static void gemm_free(GemmCtx *g) {
  free(g->x); free(g->dx); free(g->y); free(g->dy); free(g->w); free(g->dw);
  free(g->col); free(g->wp); free(g->wt); free(g->dwp); free(g->dyt);
}
static void gemm_fwd(GemmCtx *g) {
  const Conv *c = &g->c;
  if (!g->nhwc) {
    for (int n = 0; n < c->N; n++) {
      im2col_nchw(c, g->x + (size_t)n * c->C * c->H * c->W, g->col);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->O, c->P, c->K, 1.f, g->w, c->K, g->col, c->P, 0.f,
                  g->y + (size_t)n * c->O * c->P, c->P);
    }
  } else if (!g->xsmm) {
    oihw_to_ohwi(c, g->w, g->wp);
    im2col_nhwc(c, g->x, g->col);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->N * c->P, c->O, c->K, 1.f, g->col, c->K, g->wp, c->K,
                0.f, g->y, c->O);
  } else {
    oihw_to_hwio(c, g->w, g->wt);
    im2col_nhwc(c, g->x, g->col);
    xsmm_gemm_rm(c->N * c->P, c->O, c->K, g->col, c->K, g->wt, c->O, g->y, c->O, 0.f);
  }
}
static void gemm_bwd_data(GemmCtx *g) {
  const Conv *c = &g->c;
  if (!g->nhwc) {
    for (int n = 0; n < c->N; n++) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c->K, c->P, c->O, 1.f, g->w, c->K,
                  g->dy + (size_t)n * c->O * c->P, c->P, 0.f, g->col, c->P);
      col2im_nchw(c, g->col, g->dx + (size_t)n * c->C * c->H * c->W);
    }
  } else {
    oihw_to_ohwi(c, g->w, g->wp);
    if (!g->xsmm)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->N * c->P, c->K, c->O, 1.f, g->dy, c->O, g->wp, c->K,
                  0.f, g->col, c->K);
    else
      xsmm_gemm_rm(c->N * c->P, c->K, c->O, g->dy, c->O, g->wp, c->K, g->col, c->K, 0.f);
    col2im_nhwc(c, g->col, g->dx);
  }
}
static void gemm_bwd_weights(GemmCtx *g) {
  const Conv *c = &g->c;
  if (!g->nhwc) {
    for (int n = 0; n < c->N; n++) {
      im2col_nchw(c, g->x + (size_t)n * c->C * c->H * c->W, g->col);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->O, c->K, c->P, 1.f, g->dy + (size_t)n * c->O * c->P,
                  c->P, g->col, c->P, n ? 1.f : 0.f, g->dw, c->K);
    }
  } else {
    im2col_nhwc(c, g->x, g->col);
    int NP = c->N * c->P;
    if (!g->xsmm) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c->O, c->K, NP, 1.f, g->dy, c->O, g->col, c->K, 0.f,
                  g->dwp, c->K);
    } else {
      for (int i = 0; i < NP; i++) for (int o = 0; o < c->O; o++)
        g->dyt[(size_t)o * NP + i] = g->dy[(size_t)i * c->O + o];
      xsmm_gemm_rm(c->O, c->K, NP, g->dyt, NP, g->col, c->K, g->dwp, c->K, 0.f);
    }
    ohwi_to_oihw(c, g->dwp, g->dw);
  }
}

// ---------------- oneDNN ----------------
#define CK(f)                                                                                              \
  do {                                                                                                     \
    dnnl_status_t st_ = (f);                                                                               \
    if (st_ != dnnl_success) {                                                                             \
      fprintf(stderr, "oneDNN error %s at %s:%d: %s\n", dnnl_status2str(st_), __FILE__, __LINE__, #f);     \
      exit(3);                                                                                             \
    }                                                                                                      \
  } while (0)
static dnnl_engine_t ENG;
static dnnl_stream_t STRM;

typedef struct { dnnl_primitive_t p; dnnl_memory_t src, dst; } Reo;
typedef struct {
  Conv c;
  dnnl_primitive_desc_t fpd, bdpd, bwpd;
  dnnl_primitive_t fwd, bwd_d, bwd_w;
  dnnl_memory_t f_src, f_w, f_dst, bd_ddst, bd_w, bd_dsrc, bw_src, bw_ddst, bw_dw;
  // plain user memories
  dnnl_memory_t u_x[2], u_y[2], u_dy[2], u_dx[2], u_w, u_dw; // [0]=nchw [1]=nhwc
  Reo r_x[2], r_y[2], r_dy[2], r_dx[2], r_w_f, r_w_bd, r_dw; // timed reorders
  Reo r_x_bw[2], r_dy_bw[2];                                  // only for loading bwd_w inputs if layouts differ
  char fmt[6][64];
  char impl[3][64];
} DnnlCtx;

static void md_str(const dnnl_memory_desc_t *md, char *out) {
  if (md->format_kind != dnnl_blocked) { sprintf(out, "%s", dnnl_fmt_kind2str(md->format_kind)); return; }
  const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
  int order[DNNL_MAX_NDIMS], nd = md->ndims;
  for (int i = 0; i < nd; i++) order[i] = i;
  for (int i = 0; i < nd; i++) for (int j = i + 1; j < nd; j++)
    if (b->strides[order[j]] > b->strides[order[i]] ||
        (b->strides[order[j]] == b->strides[order[i]] && order[j] < order[i])) {
      int t = order[i]; order[i] = order[j]; order[j] = t;
    }
  int n = 0;
  for (int i = 0; i < nd; i++) out[n++] = 'a' + order[i];
  for (int i = 0; i < b->inner_nblks; i++)
    n += sprintf(out + n, "%d%c", (int)b->inner_blks[i], (char)('a' + b->inner_idxs[i]));
  out[n] = 0;
}
static dnnl_memory_t mem_of(const dnnl_memory_desc_t *md) {
  dnnl_memory_t m; CK(dnnl_memory_create(&m, md, ENG, DNNL_MEMORY_ALLOCATE)); return m;
}
static dnnl_memory_t plain_mem(int nd, const dnnl_dims_t d, dnnl_format_tag_t tag) {
  dnnl_memory_desc_t md; CK(dnnl_memory_desc_init_by_tag(&md, nd, d, dnnl_f32, tag)); return mem_of(&md);
}
static const dnnl_memory_desc_t *md_of(dnnl_memory_t m) {
  const dnnl_memory_desc_t *md; CK(dnnl_memory_get_memory_desc(m, &md)); return md;
}
static Reo mk_reo(dnnl_memory_t s, dnnl_memory_t d) {
  Reo r = {0, s, d}; dnnl_primitive_desc_t pd;
  CK(dnnl_reorder_primitive_desc_create(&pd, md_of(s), ENG, md_of(d), ENG, NULL));
  CK(dnnl_primitive_create(&r.p, pd)); dnnl_primitive_desc_destroy(pd); return r;
}
static void run_reo(Reo *r) {
  dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, r->src}, {DNNL_ARG_TO, r->dst}};
  CK(dnnl_primitive_execute(r->p, STRM, 2, a));
}
static void free_reo(Reo *r) { if (r->p) dnnl_primitive_destroy(r->p); }
static float *ptr_of(dnnl_memory_t m) { void *p; CK(dnnl_memory_get_data_handle(m, &p)); return p; }
static int md_eq(dnnl_memory_t a, dnnl_memory_t b) { return dnnl_memory_desc_equal(md_of(a), md_of(b)); }

static void dnnl_init_ctx(DnnlCtx *d, const Conv *c, dnnl_format_tag_t act_tag) {
  memset(d, 0, sizeof *d);
  d->c = *c;
  dnnl_dims_t xd = {c->N, c->C, c->H, c->W}, yd = {c->N, c->O, c->OH, c->OW}, wd = {c->O, c->C, c->k, c->k};
  dnnl_dims_t st = {c->s, c->s}, pl = {c->p, c->p};
  // padding_r so that output size matches: (OH-1)*s + k - H - pl
  dnnl_dims_t pr = {(c->OH - 1) * c->s + c->k - c->H - c->p, (c->OW - 1) * c->s + c->k - c->W - c->p};
  dnnl_memory_desc_t xmd, ymd, wmd;
  CK(dnnl_memory_desc_init_by_tag(&xmd, 4, xd, dnnl_f32, act_tag));
  CK(dnnl_memory_desc_init_by_tag(&ymd, 4, yd, dnnl_f32, act_tag));
  CK(dnnl_memory_desc_init_by_tag(&wmd, 4, wd, dnnl_f32, dnnl_format_tag_any));
  dnnl_convolution_desc_t fd, bd, bw;
  CK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &xmd, &wmd, NULL, &ymd,
                                        st, pl, pr));
  CK(dnnl_primitive_desc_create(&d->fpd, &fd, NULL, ENG, NULL));
  CK(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &xmd, &wmd, &ymd, st, pl, pr));
  CK(dnnl_primitive_desc_create(&d->bdpd, &bd, NULL, ENG, d->fpd));
  CK(dnnl_convolution_backward_weights_desc_init(&bw, dnnl_convolution_direct, &xmd, &wmd, NULL, &ymd, st, pl, pr));
  CK(dnnl_primitive_desc_create(&d->bwpd, &bw, NULL, ENG, d->fpd));
  CK(dnnl_primitive_create(&d->fwd, d->fpd));
  CK(dnnl_primitive_create(&d->bwd_d, d->bdpd));
  CK(dnnl_primitive_create(&d->bwd_w, d->bwpd));
  d->f_src = mem_of(dnnl_primitive_desc_query_md(d->fpd, dnnl_query_src_md, 0));
  d->f_w = mem_of(dnnl_primitive_desc_query_md(d->fpd, dnnl_query_weights_md, 0));
  d->f_dst = mem_of(dnnl_primitive_desc_query_md(d->fpd, dnnl_query_dst_md, 0));
  d->bd_ddst = mem_of(dnnl_primitive_desc_query_md(d->bdpd, dnnl_query_diff_dst_md, 0));
  d->bd_w = mem_of(dnnl_primitive_desc_query_md(d->bdpd, dnnl_query_weights_md, 0));
  d->bd_dsrc = mem_of(dnnl_primitive_desc_query_md(d->bdpd, dnnl_query_diff_src_md, 0));
  d->bw_src = mem_of(dnnl_primitive_desc_query_md(d->bwpd, dnnl_query_src_md, 0));
  d->bw_ddst = mem_of(dnnl_primitive_desc_query_md(d->bwpd, dnnl_query_diff_dst_md, 0));
  d->bw_dw = mem_of(dnnl_primitive_desc_query_md(d->bwpd, dnnl_query_diff_weights_md, 0));
  md_str(md_of(d->f_src), d->fmt[0]); md_str(md_of(d->f_w), d->fmt[1]); md_str(md_of(d->f_dst), d->fmt[2]);
  md_str(md_of(d->bd_ddst), d->fmt[3]); md_str(md_of(d->bw_src), d->fmt[4]); md_str(md_of(d->bw_dw), d->fmt[5]);
  const char *s;
  CK(dnnl_primitive_desc_query(d->fpd, dnnl_query_impl_info_str, 0, &s)); snprintf(d->impl[0], 64, "%s", s);
  CK(dnnl_primitive_desc_query(d->bdpd, dnnl_query_impl_info_str, 0, &s)); snprintf(d->impl[1], 64, "%s", s);
  CK(dnnl_primitive_desc_query(d->bwpd, dnnl_query_impl_info_str, 0, &s)); snprintf(d->impl[2], 64, "%s", s);
  dnnl_format_tag_t tags[2] = {dnnl_nchw, dnnl_nhwc};
  for (int t = 0; t < 2; t++) {
    d->u_x[t] = plain_mem(4, xd, tags[t]); d->u_dx[t] = plain_mem(4, xd, tags[t]);
    d->u_y[t] = plain_mem(4, yd, tags[t]); d->u_dy[t] = plain_mem(4, yd, tags[t]);
    d->r_x[t] = mk_reo(d->u_x[t], d->f_src);
    d->r_y[t] = mk_reo(d->f_dst, d->u_y[t]);
    d->r_dy[t] = mk_reo(d->u_dy[t], d->bd_ddst);
    d->r_dx[t] = mk_reo(d->bd_dsrc, d->u_dx[t]);
    d->r_x_bw[t] = mk_reo(d->u_x[t], d->bw_src);
    d->r_dy_bw[t] = mk_reo(d->u_dy[t], d->bw_ddst);
  }
  d->u_w = plain_mem(4, wd, dnnl_oihw); d->u_dw = plain_mem(4, wd, dnnl_oihw);
  d->r_w_f = mk_reo(d->u_w, d->f_w);
  d->r_w_bd = mk_reo(d->u_w, d->bd_w);
  d->r_dw = mk_reo(d->bw_dw, d->u_dw);
}
static void dnnl_free_ctx(DnnlCtx *d) {
  dnnl_primitive_destroy(d->fwd); dnnl_primitive_destroy(d->bwd_d); dnnl_primitive_destroy(d->bwd_w);
  dnnl_primitive_desc_destroy(d->fpd); dnnl_primitive_desc_destroy(d->bdpd); dnnl_primitive_desc_destroy(d->bwpd);
  dnnl_memory_t ms[] = {d->f_src, d->f_w, d->f_dst, d->bd_ddst, d->bd_w, d->bd_dsrc, d->bw_src, d->bw_ddst, d->bw_dw,
                        d->u_x[0], d->u_x[1], d->u_y[0], d->u_y[1], d->u_dy[0], d->u_dy[1], d->u_dx[0], d->u_dx[1],
                        d->u_w, d->u_dw};
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) dnnl_memory_destroy(ms[i]);
  for (int t = 0; t < 2; t++) {
    free_reo(&d->r_x[t]); free_reo(&d->r_y[t]); free_reo(&d->r_dy[t]); free_reo(&d->r_dx[t]);
    free_reo(&d->r_x_bw[t]); free_reo(&d->r_dy_bw[t]);
  }
  free_reo(&d->r_w_f); free_reo(&d->r_w_bd); free_reo(&d->r_dw);
}
static void dnnl_fwd(DnnlCtx *d) {
  dnnl_exec_arg_t a[3] = {{DNNL_ARG_SRC, d->f_src}, {DNNL_ARG_WEIGHTS, d->f_w}, {DNNL_ARG_DST, d->f_dst}};
  CK(dnnl_primitive_execute(d->fwd, STRM, 3, a)); CK(dnnl_stream_wait(STRM));
}
static void dnnl_bwd_data(DnnlCtx *d) {
  dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, d->bd_ddst}, {DNNL_ARG_WEIGHTS, d->bd_w},
                          {DNNL_ARG_DIFF_SRC, d->bd_dsrc}};
  CK(dnnl_primitive_execute(d->bwd_d, STRM, 3, a)); CK(dnnl_stream_wait(STRM));
}
static void dnnl_bwd_weights(DnnlCtx *d) {
  dnnl_exec_arg_t a[3] = {{DNNL_ARG_SRC, d->bw_src}, {DNNL_ARG_DIFF_DST, d->bw_ddst},
                          {DNNL_ARG_DIFF_WEIGHTS, d->bw_dw}};
  CK(dnnl_primitive_execute(d->bwd_w, STRM, 3, a)); CK(dnnl_stream_wait(STRM));
}
// activation reorders at the layer boundary for plain layout t (0=nchw,1=nhwc): x in, y out, dy in, dx out
static void dnnl_reorders_act(DnnlCtx *d, int t) {
  run_reo(&d->r_x[t]); run_reo(&d->r_y[t]); run_reo(&d->r_dy[t]); run_reo(&d->r_dx[t]);
  if (!md_eq(d->f_src, d->bw_src)) run_reo(&d->r_x_bw[t]);
  if (!md_eq(d->bd_ddst, d->bw_ddst)) run_reo(&d->r_dy_bw[t]);
  CK(dnnl_stream_wait(STRM));
}
// weight reorders: OIHW -> fwd layout, OIHW -> bwd-data layout, diff-weights -> OIHW
static void dnnl_reorders_w(DnnlCtx *d) {
  run_reo(&d->r_w_f); run_reo(&d->r_w_bd); run_reo(&d->r_dw); CK(dnnl_stream_wait(STRM));
}

// ---------------- libxsmm DNN direct convolution (its own blocked layout, physically padded input) ----------------
static const libxsmm_dnn_tensor_type XT[6] = {LIBXSMM_DNN_REGULAR_INPUT, LIBXSMM_DNN_REGULAR_OUTPUT,
                                              LIBXSMM_DNN_REGULAR_FILTER, LIBXSMM_DNN_GRADIENT_INPUT,
                                              LIBXSMM_DNN_GRADIENT_OUTPUT, LIBXSMM_DNN_GRADIENT_FILTER};
typedef struct { Conv c; libxsmm_dnn_layer *h; libxsmm_dnn_tensor *t[6]; void *buf[6]; void *scratch; } XdCtx;
#define XCK(f)                                                                                             \
  do {                                                                                                     \
    libxsmm_dnn_err_t st_ = (f);                                                                           \
    if (st_ != LIBXSMM_DNN_SUCCESS) {                                                                      \
      fprintf(stderr, "libxsmm dnn error %s at line %d: %s\n", libxsmm_dnn_get_error(st_), __LINE__, #f);  \
      exit(4);                                                                                             \
    }                                                                                                      \
  } while (0)
static void xd_init(XdCtx *x, const Conv *c) {
  memset(x, 0, sizeof *x); x->c = *c;
  libxsmm_dnn_conv_desc d; memset(&d, 0, sizeof d);
  d.N = c->N; d.C = c->C; d.H = c->H; d.W = c->W; d.K = c->O; d.R = d.S = c->k; d.u = d.v = c->s;
  d.pad_h = d.pad_w = d.pad_h_in = d.pad_w_in = c->p; d.pad_h_out = d.pad_w_out = 0; d.threads = 1;
  d.datatype_in = d.datatype_out = LIBXSMM_DNN_DATATYPE_F32;
  d.buffer_format = LIBXSMM_DNN_TENSOR_FORMAT_LIBXSMM; d.filter_format = LIBXSMM_DNN_TENSOR_FORMAT_LIBXSMM;
  d.algo = LIBXSMM_DNN_CONV_ALGO_DIRECT; d.options = LIBXSMM_DNN_CONV_OPTION_OVERWRITE;
  d.fuse_ops = LIBXSMM_DNN_CONV_FUSE_NONE;
  libxsmm_dnn_err_t st;
  x->h = libxsmm_dnn_create_conv_layer(d, &st); XCK(st);
  for (int i = 0; i < 6; i++) {
    libxsmm_dnn_tensor_datalayout *l = libxsmm_dnn_create_tensor_datalayout(x->h, XT[i], &st); XCK(st);
    size_t sz = libxsmm_dnn_get_tensor_size(l, &st); XCK(st);
    x->buf[i] = falloc(sz / 4 + 16);
    x->t[i] = libxsmm_dnn_link_tensor(l, x->buf[i], &st); XCK(st);
    libxsmm_dnn_destroy_tensor_datalayout(l);
    XCK(libxsmm_dnn_bind_tensor(x->h, x->t[i], XT[i]));
  }
  size_t ss = libxsmm_dnn_get_scratch_size(x->h, LIBXSMM_DNN_COMPUTE_KIND_ALL, &st); XCK(st);
  x->scratch = falloc(ss / 4 + 16);
  XCK(libxsmm_dnn_bind_scratch(x->h, LIBXSMM_DNN_COMPUTE_KIND_ALL, x->scratch));
}
static void xd_free(XdCtx *x) {
  libxsmm_dnn_release_scratch(x->h, LIBXSMM_DNN_COMPUTE_KIND_ALL);
  for (int i = 0; i < 6; i++) {
    libxsmm_dnn_release_tensor(x->h, XT[i]); libxsmm_dnn_destroy_tensor(x->t[i]); free(x->buf[i]);
  }
  libxsmm_dnn_destroy_conv_layer(x->h); free(x->scratch);
}
// load plain NCHW x, OIHW w, NCHW dy (x copied into a zero-padded NCHW buffer first, as the layer expects)
static void xd_load(XdCtx *x, const float *xin, const float *w, const float *dy) {
  const Conv *c = &x->c; int Hp = c->H + 2 * c->p, Wp = c->W + 2 * c->p;
  float *xp = falloc((size_t)c->N * c->C * Hp * Wp);
  for (int n = 0; n < c->N; n++) for (int ic = 0; ic < c->C; ic++) for (int h = 0; h < c->H; h++)
    memcpy(xp + (((size_t)n * c->C + ic) * Hp + h + c->p) * Wp + c->p,
           xin + (((size_t)n * c->C + ic) * c->H + h) * c->W, c->W * 4);
  XCK(libxsmm_dnn_copyin_tensor(x->t[0], xp, LIBXSMM_DNN_TENSOR_FORMAT_NCHW));
  XCK(libxsmm_dnn_copyin_tensor(x->t[2], w, LIBXSMM_DNN_TENSOR_FORMAT_KCRS));
  XCK(libxsmm_dnn_copyin_tensor(x->t[4], dy, LIBXSMM_DNN_TENSOR_FORMAT_NCHW));
  XCK(libxsmm_dnn_zero_tensor(x->t[1])); XCK(libxsmm_dnn_zero_tensor(x->t[3])); XCK(libxsmm_dnn_zero_tensor(x->t[5]));
  free(xp);
}
static void xd_store(XdCtx *x, float *y, float *dx, float *dw) {
  const Conv *c = &x->c; int Hp = c->H + 2 * c->p, Wp = c->W + 2 * c->p;
  float *dxp = falloc((size_t)c->N * c->C * Hp * Wp);
  XCK(libxsmm_dnn_copyout_tensor(x->t[1], y, LIBXSMM_DNN_TENSOR_FORMAT_NCHW));
  XCK(libxsmm_dnn_copyout_tensor(x->t[3], dxp, LIBXSMM_DNN_TENSOR_FORMAT_NCHW));
  XCK(libxsmm_dnn_copyout_tensor(x->t[5], dw, LIBXSMM_DNN_TENSOR_FORMAT_KCRS));
  for (int n = 0; n < c->N; n++) for (int ic = 0; ic < c->C; ic++) for (int h = 0; h < c->H; h++)
    memcpy(dx + (((size_t)n * c->C + ic) * c->H + h) * c->W,
           dxp + (((size_t)n * c->C + ic) * Hp + h + c->p) * Wp + c->p, c->W * 4);
  free(dxp);
}
static void xd_run(XdCtx *x, libxsmm_dnn_compute_kind k) { XCK(libxsmm_dnn_execute_st(x->h, k, 0, 0)); }

// ---------------- correctness ----------------
static int VFAIL[NVAR];
static int check_conv(const Conv *c, const char *label) {
  size_t xs = (size_t)c->N * c->C * c->H * c->W, ys = (size_t)c->N * c->O * c->P, ws = (size_t)c->O * c->K;
  float *x = falloc(xs), *w = falloc(ws), *dy = falloc(ys), *y = falloc(ys), *dx = falloc(xs), *dw = falloc(ws),
        *t1 = falloc(xs > ys ? xs : ys);
  unsigned seed = 12345; frand(x, xs, &seed); frand(w, ws, &seed); frand(dy, ys, &seed);
  ref_all(c, x, w, dy, y, dx, dw);
  int fails = 0;
  for (int v = 0; v < NVAR; v++) {
    float *oy = falloc(ys), *odx = falloc(xs), *odw = falloc(ws);
    if (v <= V_NHWC_XSMM) {
      GemmCtx g; gemm_init(&g, c, v != V_NCHW_BLAS, v == V_NHWC_XSMM);
      memcpy(g.w, w, ws * 4);
      if (g.nhwc) { nchw_to_nhwc(x, g.x, c->N, c->C, c->H, c->W); nchw_to_nhwc(dy, g.dy, c->N, c->O, c->OH, c->OW); }
      else { memcpy(g.x, x, xs * 4); memcpy(g.dy, dy, ys * 4); }
      gemm_fwd(&g); gemm_bwd_data(&g); gemm_bwd_weights(&g);
      if (g.nhwc) { nhwc_to_nchw(g.y, oy, c->N, c->O, c->OH, c->OW); nhwc_to_nchw(g.dx, odx, c->N, c->C, c->H, c->W); }
      else { memcpy(oy, g.y, ys * 4); memcpy(odx, g.dx, xs * 4); }
      memcpy(odw, g.dw, ws * 4);
      gemm_free(&g);
    } else if (v == V_XSMM_DNN) {
      XdCtx xd; xd_init(&xd, c); xd_load(&xd, x, w, dy);
      xd_run(&xd, LIBXSMM_DNN_COMPUTE_KIND_FWD); xd_run(&xd, LIBXSMM_DNN_COMPUTE_KIND_BWD);
      xd_run(&xd, LIBXSMM_DNN_COMPUTE_KIND_UPD);
      xd_store(&xd, oy, odx, odw); xd_free(&xd);
    } else {
      DnnlCtx d; dnnl_init_ctx(&d, c, v == V_DNNL_ANY ? dnnl_format_tag_any : dnnl_nhwc);
      memcpy(ptr_of(d.u_x[0]), x, xs * 4); memcpy(ptr_of(d.u_dy[0]), dy, ys * 4); memcpy(ptr_of(d.u_w), w, ws * 4);
      run_reo(&d.r_x[0]); run_reo(&d.r_dy[0]); run_reo(&d.r_x_bw[0]); run_reo(&d.r_dy_bw[0]);
      run_reo(&d.r_w_f); run_reo(&d.r_w_bd);
      CK(dnnl_stream_wait(STRM));
      dnnl_fwd(&d); dnnl_bwd_data(&d); dnnl_bwd_weights(&d);
      run_reo(&d.r_y[0]); run_reo(&d.r_dx[0]); run_reo(&d.r_dw); CK(dnnl_stream_wait(STRM));
      memcpy(oy, ptr_of(d.u_y[0]), ys * 4); memcpy(odx, ptr_of(d.u_dx[0]), xs * 4); memcpy(odw, ptr_of(d.u_dw), ws * 4);
      if (!strcmp(label, "small") || c->N == 2)
        printf("# onednn %s %s N=%d: fmt src=%s w=%s dst=%s bd_ddst=%s bw_src=%s bw_dw=%s | impl fwd=%s bwd_d=%s "
               "bwd_w=%s\n", VNAME[v], label, c->N,
               d.fmt[0], d.fmt[1], d.fmt[2], d.fmt[3], d.fmt[4], d.fmt[5], d.impl[0], d.impl[1], d.impl[2]);
      dnnl_free_ctx(&d);
    }
    double ey = relerr(oy, y, ys), edx = relerr(odx, dx, xs), edw = relerr(odw, dw, ws);
    int ok = ey < 1e-4 && edx < 1e-4 && edw < 1e-4;
    fails += !ok;
    if (!ok) VFAIL[v] = 1;
    printf("# check %-22s %-26s N=%d: relerr y=%.2e dx=%.2e dw=%.2e %s\n", VNAME[v], label, c->N, ey, edx, edw,
           ok ? "OK" : "FAIL");
    free(oy); free(odx); free(odw);
  }
  free(x); free(w); free(dy); free(y); free(dx); free(dw); free(t1);
  return fails;
}

// ---------------- timing ----------------
#define MAXR 15
typedef struct { double t[MAXR]; int n; } Samples;
enum { P_FWD, P_BWD_DATA, P_BWD_W, P_REO_NCHW, P_REO_NHWC, P_REO_W, NPASS };
static const char *PNAME[NPASS] = {"fwd", "bwd_data", "bwd_weights", "reorder_act_nchw", "reorder_act_nhwc",
                                   "reorder_weights"};
static Samples S[NVAR][NSHAPES][NBATCH][NPASS];
static double MIN_MEAS_S = 0.02;

typedef struct { int v; GemmCtx *g; DnnlCtx *d; int pass; XdCtx *x; } Job;
static void run_job(Job *j) {
  if (j->x) {
    xd_run(j->x, j->pass == P_FWD        ? LIBXSMM_DNN_COMPUTE_KIND_FWD
                 : j->pass == P_BWD_DATA ? LIBXSMM_DNN_COMPUTE_KIND_BWD
                                         : LIBXSMM_DNN_COMPUTE_KIND_UPD);
  } else if (j->g) {
    if (j->pass == P_FWD) gemm_fwd(j->g);
    else if (j->pass == P_BWD_DATA) gemm_bwd_data(j->g);
    else gemm_bwd_weights(j->g);
  } else {
    switch (j->pass) {
      case P_FWD: dnnl_fwd(j->d); break;
      case P_BWD_DATA: dnnl_bwd_data(j->d); break;
      case P_BWD_W: dnnl_bwd_weights(j->d); break;
      case P_REO_NCHW: dnnl_reorders_act(j->d, 0); break;
      case P_REO_NHWC: dnnl_reorders_act(j->d, 1); break;
      case P_REO_W: dnnl_reorders_w(j->d); break;
    }
  }
}
// returns ms per call (mean over reps, reps chosen so that one measurement lasts >= MIN_MEAS_S)
static double measure(Job *j) {
  run_job(j); // warm
  double t0 = now_s(); run_job(j); double t1 = now_s() - t0;
  int reps = (int)(MIN_MEAS_S / (t1 > 1e-7 ? t1 : 1e-7)); if (reps < 1) reps = 1; if (reps > 100000) reps = 100000;
  t0 = now_s();
  for (int r = 0; r < reps; r++) run_job(j);
  return (now_s() - t0) * 1e3 / reps;
}
static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 7;
  if (rounds > MAXR) rounds = MAXR;
  const char *out = argc > 2 ? argv[2] : "results.jsonl";
  if (argc > 3) MIN_MEAS_S = atof(argv[3]);
  openblas_set_num_threads(1);
  omp_set_num_threads(1);
  libxsmm_init();
  CK(dnnl_engine_create(&ENG, dnnl_cpu, 0));
  CK(dnnl_stream_create(&STRM, ENG, dnnl_stream_default_flags));
  const dnnl_version_t *dv = dnnl_version();
  printf("# openblas threads=%d config=%s\n", openblas_get_num_threads(), openblas_get_config());
  printf("# omp_get_max_threads=%d (oneDNN runtime: OpenMP, cpu_runtime=%u) oneDNN %d.%d.%d; libxsmm %s target=%s\n",
         omp_get_max_threads(), dv->cpu_runtime, dv->major, dv->minor, dv->patch, LIBXSMM_VERSION,
         libxsmm_get_target_arch());

  // correctness
  int fails = 0;
  Shape small[] = {{"small_3x3_s1", 3, 5, 7, 3, 1, 1}, {"small_3x3_s2", 3, 5, 7, 3, 2, 1},
                   {"small_1x1_s2", 3, 5, 7, 1, 2, 0}};
  for (int i = 0; i < 3; i++) { Conv c = mkconv(&small[i], 2); fails += check_conv(&c, small[i].name); }
  for (int i = 0; i < NSHAPES; i++) { Conv c = mkconv(&SHAPES[i], 2); fails += check_conv(&c, SHAPES[i].name); }
  printf("# correctness failures: %d\n", fails);

  // sgemm peak
  {
    int n = 1024; float *a = falloc((size_t)n * n), *b = falloc((size_t)n * n), *cc = falloc((size_t)n * n);
    unsigned sd = 1; frand(a, (size_t)n * n, &sd); frand(b, (size_t)n * n, &sd);
    double ts[5];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, cc, n);
    for (int r = 0; r < 5; r++) {
      double t0 = now_s();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, cc, n);
      ts[r] = now_s() - t0;
    }
    qsort(ts, 5, sizeof(double), cmpd);
    double gf = 2.0 * n * n * n / ts[2] / 1e9;
    printf("# sgemm 1024^3 openblas 1 thread: median %.2f ms = %.1f GFLOP/s (min %.2f ms, max %.2f ms)\n",
           ts[2] * 1e3, gf, ts[0] * 1e3, ts[4] * 1e3);
    FILE *f = fopen(out, "w");
    fprintf(f, "{\"variant\":\"openblas_sgemm_1024\",\"shape\":\"sgemm_1024x1024x1024\",\"N\":0,\"pass\":\"sgemm\","
               "\"ms_median\":%.4f,\"ms_min\":%.4f,\"ms_max\":%.4f,\"gflops\":%.2f,\"rounds\":5}\n",
            ts[2] * 1e3, ts[0] * 1e3, ts[4] * 1e3, gf);
    fclose(f);
    free(a); free(b); free(cc);
  }
  fflush(stdout);

  // interleaved rounds: round -> shape -> batch -> variant -> pass
  for (int r = 0; r < rounds; r++) {
    double tr = now_s();
    for (int si = 0; si < NSHAPES; si++) for (int bi = 0; bi < NBATCH; bi++) {
      Conv c = mkconv(&SHAPES[si], BATCHES[bi]);
      GemmCtx g[3]; DnnlCtx d[2];
      unsigned seed = 7 + si;
      for (int v = 0; v < 3; v++) {
        gemm_init(&g[v], &c, v != V_NCHW_BLAS, v == V_NHWC_XSMM);
        frand(g[v].x, (size_t)c.N * c.C * c.H * c.W, &seed); frand(g[v].dy, (size_t)c.N * c.O * c.P, &seed);
        frand(g[v].w, (size_t)c.O * c.K, &seed);
      }
      for (int v = 0; v < 2; v++) {
        dnnl_init_ctx(&d[v], &c, v == 0 ? dnnl_format_tag_any : dnnl_nhwc);
        frand(ptr_of(d[v].u_x[0]), (size_t)c.N * c.C * c.H * c.W, &seed);
        frand(ptr_of(d[v].u_dy[0]), (size_t)c.N * c.O * c.P, &seed);
        frand(ptr_of(d[v].u_w), (size_t)c.O * c.K, &seed);
        run_reo(&d[v].r_x[0]); run_reo(&d[v].r_dy[0]); run_reo(&d[v].r_x_bw[0]); run_reo(&d[v].r_dy_bw[0]);
        run_reo(&d[v].r_w_f); run_reo(&d[v].r_w_bd);
        CK(dnnl_stream_wait(STRM));
        if (r == 0 && bi == 0)
          printf("# onednn %s %s N=%d: fmt src=%s w=%s dst=%s bd_ddst=%s bw_src=%s bw_dw=%s | impl fwd=%s bwd_d=%s "
                 "bwd_w=%s\n", VNAME[V_DNNL_ANY + v],
                 SHAPES[si].name, c.N, d[v].fmt[0], d[v].fmt[1], d[v].fmt[2], d[v].fmt[3], d[v].fmt[4], d[v].fmt[5],
                 d[v].impl[0], d[v].impl[1], d[v].impl[2]);
      }
      XdCtx xd; int have_xd = !VFAIL[V_XSMM_DNN];
      if (have_xd) {
        float *xx = falloc((size_t)c.N * c.C * c.H * c.W), *yy = falloc((size_t)c.N * c.O * c.P),
              *ww = falloc((size_t)c.O * c.K);
        frand(xx, (size_t)c.N * c.C * c.H * c.W, &seed); frand(yy, (size_t)c.N * c.O * c.P, &seed);
        frand(ww, (size_t)c.O * c.K, &seed);
        xd_init(&xd, &c); xd_load(&xd, xx, ww, yy); free(xx); free(yy); free(ww);
      }
      for (int v = 0; v < NVAR; v++) {
        if (v == V_XSMM_DNN && !have_xd) continue;
        if (VFAIL[v]) continue;
        int np = v == V_DNNL_ANY ? NPASS : (v == V_DNNL_NHWC ? P_REO_W + 1 : P_BWD_W + 1);
        for (int p = 0; p < np; p++) {
          if (v == V_DNNL_NHWC && (p == P_REO_NCHW || p == P_REO_NHWC)) continue;
          Job j = {v, v < 3 ? &g[v] : NULL, (v == V_DNNL_ANY || v == V_DNNL_NHWC) ? &d[v - 3] : NULL, p,
                   v == V_XSMM_DNN ? &xd : NULL};
          Samples *s = &S[v][si][bi][p];
          s->t[s->n++] = measure(&j);
        }
      }
      for (int v = 0; v < 3; v++) gemm_free(&g[v]);
      for (int v = 0; v < 2; v++) dnnl_free_ctx(&d[v]);
      if (have_xd) xd_free(&xd);
    }
    printf("# round %d done in %.1f s\n", r + 1, now_s() - tr);
    fflush(stdout);
  }

  FILE *f = fopen(out, "a");
  for (int si = 0; si < NSHAPES; si++) for (int bi = 0; bi < NBATCH; bi++)
    for (int v = 0; v < NVAR; v++) for (int p = 0; p < NPASS; p++) {
    Samples *s = &S[v][si][bi][p];
    if (!s->n) continue;
    double t[MAXR]; memcpy(t, s->t, s->n * sizeof(double)); qsort(t, s->n, sizeof(double), cmpd);
    double med = s->n % 2 ? t[s->n / 2] : 0.5 * (t[s->n / 2 - 1] + t[s->n / 2]);
    Conv c = mkconv(&SHAPES[si], BATCHES[bi]);
    double gf = p <= P_BWD_W ? conv_flops(&c) / (med * 1e-3) / 1e9 : 0;
    fprintf(f, "{\"variant\":\"%s\",\"shape\":\"%s\",\"N\":%d,\"pass\":\"%s\",\"ms_median\":%.4f,\"ms_min\":%.4f,"
               "\"ms_max\":%.4f,\"gflops\":%.2f,\"rounds\":%d}\n",
            VNAME[v], SHAPES[si].name, BATCHES[bi], PNAME[p], med, t[0], t[s->n - 1], gf, s->n);
  }
  fclose(f);
  printf("# wrote %s\n", out);
  return fails ? 1 : 0;
}

// The BatchNorm and pooling kernels alone, on the cnn's and ResNet-20's shapes at batch 64 (min of 100 calls), or
// (no argument) a hash of every kernel's output over awkward shapes, to compare two versions bit for bit:
//   clang -O2 -I Sources/CSwiftDDPKernels/include -I Sources/CSwiftDDPKernels \
//     Docs/performance/conv-zen5-late/microbench/kernels-bench.c Sources/CSwiftDDPKernels/{kernels,pooling,probe}.c \
//     -o /tmp/kb && /tmp/kb t
#include "CSwiftDDPKernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
static double now(void){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec*1e-9;}
static uint64_t H = 1469598103934665603ULL;
static void hash(const void *v, size_t n){const unsigned char*p=v; for(size_t i=0;i<n;i++) H=(H^p[i])*1099511628211ULL;}
static float frand(uint64_t *s){*s=*s*6364136223846793005ULL+1442695040888963407ULL; return (float)((*s>>40)%2001)/1000.f-1;}
// mode 0: bit check on awkward shapes; mode 1: timing
int main(int argc, char **argv) {
  int timing = argc > 1;
  if (!timing) {
    int shapes[][4] = {{3, 28, 32, 2}, {2, 14, 64, 2}, {3, 7, 20, 2}, {2, 5, 260, 2}, {2, 9, 37, 3}, {3, 9, 1, 2}, {2, 6, 16, 3}, {2, 11, 48, 2}};
    for (int si = 0; si < 8; si++) {
      int N = shapes[si][0], Hh = shapes[si][1], C = shapes[si][2], K = shapes[si][3], OH = Hh / K;
      long rows = (long)N * Hh * Hh, prow = (long)N * OH * OH; uint64_t seed = 42 + si;
      float *x = malloc(rows * C * 4), *r = malloc(rows * C * 4), *gd = malloc(rows * C * 4), *d = malloc(rows * C * 4), *y = malloc(rows * C * 4), *g = malloc(prow * C * 4 + 4);
      int32_t *idx = malloc(prow * C * 4 + 4);
      float mean[512], inv[512], gam[512], bet[512], k[512], a[512], s[512]; double s1[512], s2[512];
      for (long i = 0; i < rows * C; i++) { x[i] = frand(&seed); r[i] = frand(&seed); gd[i] = frand(&seed); }
      for (long i = 0; i < rows * C; i += 7) x[i] = x[(i * 13) % (rows * C)];  // ties
      for (long i = 0; i < prow * C; i++) g[i] = frand(&seed);
      for (int c = 0; c < C; c++) { mean[c] = .01f * c; inv[c] = 1.1f + .001f * c; gam[c] = 1 + .01f * c; bet[c] = .1f - .003f * c; k[c]=.9f; a[c]=.01f*c; s[c]=.02f; }
      for (int act = 0; act < 3; act++) {
        ddp_shifted_moments(x, rows, C, mean, s1, s2); hash(s1, C * 8); hash(s2, C * 8);
        ddp_batchnorm_forward(x, NULL, rows, C, mean, inv, gam, bet, y, act, .01f); hash(y, rows * C * 4);
        ddp_batchnorm_forward(x, r, rows, C, mean, inv, gam, bet, y, act, .01f); hash(y, rows * C * 4);
        ddp_batchnorm_maxpool_forward(x, N, Hh, Hh, C, K, OH, OH, mean, inv, gam, bet, act, .01f, y, idx); hash(y, prow * C * 4); hash(idx, prow * C * 4);
        ddp_pooled_gradient p = {g, idx, Hh, Hh, K, OH, OH};
        for (int kk = 1; kk <= 3; kk++) for (int ss = 1; ss <= kk; ss++) {
          ptrdiff_t mo = (Hh - kk) / ss + 1;
          int32_t *mi = malloc(N * mo * mo * C * 4); float *my = malloc(N * mo * mo * C * 4);
          const float *src = act == 0 ? x : y;
          ddp_maxpool_forward(src, N, Hh, Hh, C, kk, ss, mo, mo, my, mi); hash(my, N * mo * mo * C * 4); hash(mi, N * mo * mo * C * 4);
          free(mi); free(my);
        }
        ddp_gradient_sums(gd, NULL, x, rows, C, mean, inv, gam, bet, act, .01f, s1, s2); hash(s1, C * 8); hash(s2, C * 8);
        ddp_gradient_sums(NULL, &p, x, rows, C, mean, inv, gam, bet, act, .01f, s1, s2); hash(s1, C * 8); hash(s2, C * 8);
        ddp_batchnorm_backward(gd, NULL, x, rows, C, mean, inv, gam, bet, act, .01f, k, a, s, d); hash(d, rows * C * 4);
        ddp_batchnorm_backward(NULL, &p, x, rows, C, mean, inv, gam, bet, act, .01f, k, a, s, d); hash(d, rows * C * 4);
        printf("%d/%d/%d/%d act %d %016llx\n", N, Hh, C, K, act, (unsigned long long)H);
      }
    }
    return 0;
  }
  int shapes[][4] = {{64, 28, 32, 1}, {64, 14, 64, 1}, {64, 28, 16, 0}, {64, 14, 32, 0}, {64, 7, 64, 0}};
  int reps = 100;
  for (int si = 0; si < 5; si++) {
    int N = shapes[si][0], Hh = shapes[si][1], C = shapes[si][2], pooled = shapes[si][3], K = 2, OH = Hh / 2;
    long rows = (long)N * Hh * Hh, prow = (long)N * OH * OH;
    float *x = malloc(rows * C * 4), *d = malloc(rows * C * 4), *y = malloc(rows * C * 4), *g = malloc(rows * C * 4), *r = malloc(rows * C * 4);
    int32_t *idx = malloc(prow * C * 4);
    float mean[512], inv[512], gam[512], bet[512], k[512], a[512], s[512]; double s1[512], s2[512];
    for (long i = 0; i < rows * C; i++) { x[i] = (float)((i * 7919) % 1000) / 500.f - 1; g[i] = (float)((i * 31) % 100) / 100.f - .5f; r[i] = x[i]; }
    for (int c = 0; c < C; c++) { mean[c] = .01f * c; inv[c] = 1.1f; gam[c] = 1 + .01f * c; bet[c] = .1f; k[c]=.9f; a[c]=.01f; s[c]=.02f; }
    ddp_pooled_gradient p = {g, idx, Hh, Hh, K, OH, OH};
    double t0, tm = 1e9, tf = 1e9, ts = 1e9, tb = 1e9, tr = 1e9, e;
    for (int it = 0; it < reps; it++) {
      t0 = now(); ddp_shifted_moments(x, rows, C, mean, s1, s2); e = now() - t0; if (e < tm) tm = e;
      if (pooled) {
        t0 = now(); ddp_batchnorm_maxpool_forward(x, N, Hh, Hh, C, K, OH, OH, mean, inv, gam, bet, 1, 0, y, idx); e = now() - t0; if (e < tf) tf = e;
        t0 = now(); ddp_gradient_sums(NULL, &p, x, rows, C, mean, inv, gam, bet, 1, 0, s1, s2); e = now() - t0; if (e < ts) ts = e;
        t0 = now(); ddp_batchnorm_backward(NULL, &p, x, rows, C, mean, inv, gam, bet, 1, 0, k, a, s, d); e = now() - t0; if (e < tb) tb = e;
      } else {
        t0 = now(); ddp_batchnorm_forward(x, NULL, rows, C, mean, inv, gam, bet, y, 1, 0); e = now() - t0; if (e < tf) tf = e;
        t0 = now(); ddp_batchnorm_forward(x, r, rows, C, mean, inv, gam, bet, y, 1, 0); e = now() - t0; if (e < tr) tr = e;
        t0 = now(); ddp_gradient_sums(g, NULL, x, rows, C, mean, inv, gam, bet, 1, 0, s1, s2); e = now() - t0; if (e < ts) ts = e;
        t0 = now(); ddp_batchnorm_backward(g, NULL, x, rows, C, mean, inv, gam, bet, 1, 0, k, a, s, d); e = now() - t0; if (e < tb) tb = e;
      }
    }
    if (pooled)
      printf("pooled N%d H%d C%d: moments %.3f  fwd %.3f  sums %.3f  bwd %.3f ms\n", N, Hh, C, tm * 1e3, tf * 1e3,
             ts * 1e3, tb * 1e3);
    else
      printf("dense  N%d H%d C%d: moments %.3f  fwd %.3f  fwd+res %.3f  sums %.3f  bwd %.3f ms\n", N, Hh, C, tm * 1e3,
             tf * 1e3, tr * 1e3, ts * 1e3, tb * 1e3);
  }
}

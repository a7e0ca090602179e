// How fast can one training step of the benchmark MLP (784-512x4-10, batch 128, SGD momentum)
// be on this machine with OpenBLAS, whatever the rest of the trainer does? Docs/performance.md
// ("Why the remaining targets are out of reach here") uses it to bound the 1-rank target
// against PyTorch, and, two copies at once under mpirun, the 2-rank one against mpi4py (the
// copies do not communicate: MPI only starts them). Each variant runs the step's matrix products exactly as
// `ddp bench train`'s GEMM floor does and adds only:
//   gemm         nothing (the floor itself)
//   gemm+sgd     SGD momentum as a separate pass (read p, g, b; write p, b), as SwiftDDP does
//   gemm+fused   the cheapest SGD momentum there is: the weight-gradient product accumulates
//                straight into the momentum buffer (beta = mu, so b <- mu*b + dY^T X without a
//                gradient buffer), then one pass p <- p - lr*b
//   gather       copying 128 random rows of a 60000x784 float data set (the batch input)
//   gemm+sgd0    the separate SGD pass also zeroes the gradient it read, so the weight-gradient
//                product can accumulate (beta = 1) instead of OpenBLAS clearing C first (beta = 0)
// Build and run:
//   clang -O2 -march=native scripts/experiments/step-lower-bound.c $(pkg-config --cflags --libs openblas) -o /tmp/lb
//   OPENBLAS_NUM_THREADS=1 /tmp/lb [batch]
//   mpirun -np 2 --bind-to core -x OPENBLAS_NUM_THREADS=1 /tmp/lb   (one line per variant and copy)
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { LAYERS = 5, STEPS = 200, REPEATS = 5 };
static const int dims[LAYERS + 1] = {784, 512, 512, 512, 512, 10};

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *filled(size_t n, float v) {
  float *p = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = v;
  return p;
}

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  const int B = argc > 1 ? atoi(argv[1]) : 128;
  float *act[LAYERS + 1], *grad[LAYERS + 1], *w[LAYERS], *g[LAYERS], *m[LAYERS];
  for (int l = 0; l <= LAYERS; l++) {
    act[l] = filled((size_t)B * dims[l], 0.5f);
    grad[l] = filled((size_t)B * dims[l], 0.25f);
  }
  for (int l = 0; l < LAYERS; l++) {
    size_t n = (size_t)dims[l] * dims[l + 1];
    w[l] = filled(n, 0.01f); g[l] = filled(n, 0); m[l] = filled(n, 0);
  }
  const size_t samples = 60000, features = 784;
  float *data = filled(samples * features, 0.5f);
  const float mu = 0.9f, lr = 1e-9f;  // lr tiny: the weights stay put, the work is the same
  enum { VARIANTS = 5 };
  const char *names[VARIANTS] = {"gemm", "gemm+sgd", "gemm+fused", "gather", "gemm+sgd0"};
  unsigned seed = 1;
  double times[VARIANTS][REPEATS];
  // Repeats outermost, so a machine whose speed drifts over minutes slows every variant alike.
  for (int rep = 0; rep < REPEATS; rep++) {
    for (int variant = 0; variant < VARIANTS; variant++) {
      double start = seconds();
      for (int s = 0; s < STEPS; s++) {
        if (variant == 3) {
          for (int r = 0; r < B; r++) {
            seed = seed * 1103515245u + 12345u;
            memcpy(act[0] + (size_t)r * features, data + (seed >> 8) % samples * features, features * sizeof(float));
          }
          continue;
        }
        for (int l = 0; l < LAYERS; l++) {  // Y = X W^T
          int i = dims[l], o = dims[l + 1];
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, o, i, 1, act[l], i, w[l], i, 0, act[l + 1], o);
        }
        for (int l = LAYERS - 1; l >= 0; l--) {  // dW = dY^T X, dX = dY W
          int i = dims[l], o = dims[l + 1];
          float *c = variant == 2 ? m[l] : g[l];
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, i, B, 1, grad[l + 1], o, act[l], i,
                      variant == 2 ? mu : variant == 4 ? 1 : 0, c, i);
          if (l > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, i, o, 1, grad[l + 1], o, w[l], i, 0, grad[l], i);
        }
        for (int l = 0; l < LAYERS && variant > 0; l++) {
          size_t n = (size_t)dims[l] * dims[l + 1];
          float *p = w[l], *gl = g[l], *b = m[l];
          if (variant == 1)
            for (size_t k = 0; k < n; k++) { float v = mu * b[k] + gl[k]; b[k] = v; p[k] -= lr * v; }
          else if (variant == 4)
            for (size_t k = 0; k < n; k++) { float v = mu * b[k] + gl[k]; b[k] = v; p[k] -= lr * v; gl[k] = 0; }
          else
            for (size_t k = 0; k < n; k++) p[k] -= lr * b[k];
        }
      }
      times[variant][rep] = (seconds() - start) / STEPS * 1e3;
    }
  }
  for (int variant = 0; variant < VARIANTS; variant++) {
    qsort(times[variant], REPEATS, sizeof(double), compare);
    printf("{\"variant\": \"%s\", \"batch\": %d, \"ms_per_step_median\": %.3f, \"min\": %.3f, \"max\": %.3f}\n",
           names[variant], B, times[variant][REPEATS / 2], times[variant][0], times[variant][REPEATS - 1]);
  }
  return 0;
}

// Do two ranks' memory-bound passes slow each other down more when they run at the same moment?
// Two processes, one per CPU, repeat a step: a barrier, a streaming pass y = a·x + b over a BatchNorm-sized
// input (a memory-bound normalizing pass; each step the next of `layers` inputs, so the working set is a
// training step's, far beyond the caches), then a compute-bound stretch that touches no memory (a stand-in for
// a convolution's register-bound work). "aligned": both start their pass together, as ranks do after SyncBN's
// exchange. "offset": the second process first spends half a step in the compute stretch, so its pass meets the
// first one's compute. "alone": the second process only computes. Prints the median pass time of each process
// in each mode, rounds interleaved.
//   cc -O2 -o /tmp/aligned-passes scripts/experiments/aligned-passes.c
//   /tmp/aligned-passes [floats per pass] [layers] [rounds]
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { STEPS = 200 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

struct shared {
    _Atomic int arrived;
    _Atomic int generation;
    double pass_seconds[2][STEPS];
};

static void barrier(struct shared *s) {
    int generation = atomic_load(&s->generation);
    if (atomic_fetch_add(&s->arrived, 1) == 1) {
        atomic_store(&s->arrived, 0);
        atomic_fetch_add(&s->generation, 1);
    } else {
        while (atomic_load(&s->generation) == generation) __builtin_ia32_pause();
    }
}

// Register-only work for about `seconds`; returns a value so it is not optimized away.
static float compute(double seconds) {
    float a = 1.0f, b = 1.0001f;
    double end = now() + seconds;
    while (now() < end)
        for (int i = 0; i < 4096; i++) a = a * b + 1e-7f;
    return a;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    return v[n / 2];
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 64L * 16 * 28 * 28;  // ResNet-20's first BatchNorm input at batch 64
    int layers = argc > 2 ? atoi(argv[2]) : 20;
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED) { perror("mmap"); return 1; }
    float *xs = malloc(layers * n * sizeof *xs), *ys = malloc(layers * n * sizeof *ys);
    if (!xs || !ys || layers < 1) { fprintf(stderr, "aligned-passes: out of memory\n"); return 1; }
    for (long i = 0; i < layers * n; i++) xs[i] = (float)(i % 97), ys[i] = 0;
    // passes alone over every layer (pages touched), to size the compute stretch: 4 passes' worth
    double pass = 0;
    for (int l = 0; l < 2 * layers; l++) {
        float *x = xs + (l % layers) * n, *y = ys + (l % layers) * n;
        double t0 = now();
        for (long i = 0; i < n; i++) y[i] = 1.5f * x[i] + 0.5f;
        pass = now() - t0;
    }
    double stretch = 4 * pass;
    static const char *modes[] = {"aligned", "offset", "alone"};
    pid_t child = fork();
    int rank = child == 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(rank, &set);
    sched_setaffinity(0, sizeof set, &set);
    float sink = 0;
    for (int round = 0; round < rounds; round++) {
        for (int mode = 0; mode < 3; mode++) {
            for (int step = 0; step < STEPS; step++) {
                barrier(s);
                if (mode == 2 && rank == 1) {
                    s->pass_seconds[rank][step] = 0;
                    sink += compute(stretch + pass);
                    continue;
                }
                if (mode == 1 && rank == 1) sink += compute(stretch / 2);
                float *x = xs + (step % layers) * n, *y = ys + (step % layers) * n;
                double start = now();
                for (long i = 0; i < n; i++) y[i] = 1.5f * x[i] + 0.5f;
                s->pass_seconds[rank][step] = now() - start;
                sink += compute(mode == 1 && rank == 1 ? stretch / 2 : stretch);
            }
            barrier(s);
            if (rank == 0) {
                double a[STEPS], b[STEPS];
                memcpy(a, s->pass_seconds[0], sizeof a);
                memcpy(b, s->pass_seconds[1], sizeof b);
                printf("round %d %-7s pass µs: rank 0 %.1f, rank 1 %.1f\n", round + 1, modes[mode],
                       1e6 * median(a, STEPS), 1e6 * median(b, STEPS));
                fflush(stdout);
            }
            barrier(s);
        }
    }
    if (child) waitpid(child, NULL, 0);
    return sink == 12345.f;
}

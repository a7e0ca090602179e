// Prototype measured before building `--grad-sync shared` (Docs/performance.md, item 10):
// a 5.3 MB in-place MPI_Allreduce against a reduce-scatter + copy-back through an MPI-3
// shared-memory window, with a 32 MB memset before each iteration to make the caches as cold
// as after a training step. Build and run on one host:
//   mpicc -O2 scripts/experiments/shm-allreduce.c -o /tmp/shm-allreduce
//   mpirun -np 2 --bind-to core /tmp/shm-allreduce

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, W; MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &W);
  long n = 1325000; // ~5.3 MB of floats
  float *seg; MPI_Win win;
  MPI_Win_allocate_shared(n * sizeof(float), sizeof(float), MPI_INFO_NULL, MPI_COMM_WORLD, &seg, &win);
  float *segs[16];
  for (int r = 0; r < W; r++) { MPI_Aint sz; int du; MPI_Win_shared_query(win, r, &sz, &du, &segs[r]); }
  MPI_Win_lock_all(MPI_MODE_NOCHECK, win);
  float *local = malloc(n * sizeof(float));
  float *big = malloc(64 << 20); // cache polluter
  double tm = 0, ts = 0; int iters = 200;
  for (int it = 0; it < 2 * iters; it++) {
    memset(big, it, 32 << 20);  // evict like a training step would
    for (long i = 0; i < n; i++) local[i] = seg[i] = (float)(i % 97) * 0.01f + rank;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    if (it % 2 == 0) {
      MPI_Allreduce(MPI_IN_PLACE, local, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      tm += MPI_Wtime() - t0;
    } else {
      MPI_Win_sync(win); MPI_Barrier(MPI_COMM_WORLD); MPI_Win_sync(win);
      long lo = n * rank / W, hi = n * (rank + 1) / W;
      float *own = segs[rank];
      for (int r = 0; r < W; r++) if (r != rank) {
        const float *o = segs[r]; for (long i = lo; i < hi; i++) own[i] += o[i];
      }
      MPI_Win_sync(win); MPI_Barrier(MPI_COMM_WORLD); MPI_Win_sync(win);
      for (int r = 0; r < W; r++) if (r != rank) {
        long a = n * r / W, b = n * (r + 1) / W; memcpy(own + a, segs[r] + a, (b - a) * sizeof(float));
      }
      MPI_Win_sync(win); MPI_Barrier(MPI_COMM_WORLD); MPI_Win_sync(win);
      ts += MPI_Wtime() - t0;
    }
  }
  // check
  if (rank == 0)
    printf("W=%d MPI_Allreduce %.1f us, shared %.1f us, check %g %g\n", W, tm / iters * 1e6, ts / iters * 1e6,
           local[5], seg[5]);
  MPI_Win_unlock_all(win); MPI_Win_free(&win); MPI_Finalize();
}

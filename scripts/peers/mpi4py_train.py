#!/usr/bin/env python3
"""mpi4py + NumPy peer for `ddp bench train`: the same MLP (784-512x4-10, BatchNorm + ReLU),
per-rank batch 128, SGD momentum 0.9, with synchronized BatchNorm (per-layer all-reduce of
[n·mean | Σ(x−mean)² …] in the forward pass, of [Σdy | Σdy·x̂] in the backward pass) and one
all-reduce of the flat gradient per step — the algorithm SwiftDDP implements, written the way a
NumPy user would (float32 arrays, matrix products through NumPy's BLAS).

  mpirun -np 2 python3 mpi4py_train.py [--steps 200 --warmup 20 --repeats 3] [--json OUT]
"""
import argparse
import json
import time

import numpy as np
from fashion_mnist import read_idx
from mpi4py import MPI




class Net:
    """Flat parameter and gradient buffers, views per layer (one all-reduce per step)."""

    def __init__(self, sizes, rng):
        shapes = []
        for i in range(len(sizes) - 1):
            shapes += [("W", (sizes[i + 1], sizes[i])), ("b", (sizes[i + 1],))]
            if i < len(sizes) - 2:
                shapes += [("g", (sizes[i + 1],)), ("beta", (sizes[i + 1],))]
        total = sum(int(np.prod(s)) for _, s in shapes)
        self.flat = np.empty(total, np.float32)
        self.grad = np.zeros(total, np.float32)
        self.momentum = np.zeros(total, np.float32)
        self.p, self.g, offset = [], [], 0
        for kind, shape in shapes:
            n = int(np.prod(shape))
            view, gview = self.flat[offset:offset + n].reshape(shape), self.grad[offset:offset + n].reshape(shape)
            if kind in ("W", "b"):
                bound = 1 / np.sqrt(shape[-1] if kind == "W" else sizes[len(self.p) // 4])
                view[...] = rng.uniform(-bound, bound, shape)
            else:
                view[...] = 1.0 if kind == "g" else 0.0
            self.p.append(view)
            self.g.append(gview)
            offset += n
        self.layers = len(sizes) - 1


def step(net, x, y, comm, world, lr=0.05, mu=0.9):
    cache = []
    h = x
    for i in range(net.layers):
        base = 4 * i
        W, b = net.p[base], net.p[base + 1]
        z = h @ W.T + b
        if i == net.layers - 1:
            cache.append((h, None))
            break
        gamma, beta = net.p[base + 2], net.p[base + 3]
        n = np.array([z.shape[0]], np.float64)
        s = z.sum(0, dtype=np.float64)
        stats = np.concatenate([n, s, (z.astype(np.float64) ** 2).sum(0)])
        comm.Allreduce(MPI.IN_PLACE, stats, op=MPI.SUM)  # count, Σx, Σx² in float64
        N = stats[0]
        mean = stats[1:1 + z.shape[1]] / N
        var = stats[1 + z.shape[1]:] / N - mean ** 2
        inv = (1 / np.sqrt(var + 1e-5)).astype(np.float32)
        xhat = (z - mean.astype(np.float32)) * inv
        a = np.maximum(gamma * xhat + beta, 0)
        cache.append((h, (xhat, inv, a, N)))
        h = a
    logits = h @ net.p[4 * (net.layers - 1)].T + net.p[4 * (net.layers - 1) + 1]
    logits -= logits.max(1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(1, keepdims=True)
    prob[np.arange(len(y)), y] -= 1
    d = prob / (len(y) * world)  # 1/W folded in: the all-reduce sums to the average
    for i in reversed(range(net.layers)):
        base = 4 * i
        h, bn = cache[i]
        if bn is not None:
            xhat, inv, a, N = bn
            d = d * (a > 0)
            gamma = net.p[base + 2]
            net.g[base + 2][...] = (d * xhat).sum(0)
            net.g[base + 3][...] = d.sum(0)
            sums = np.concatenate([d.sum(0, dtype=np.float64), (d * xhat).sum(0, dtype=np.float64)])
            comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
            C = d.shape[1]
            d = gamma * inv * (d - (sums[:C] / N).astype(np.float32) - xhat * (sums[C:] / N).astype(np.float32))
        W = net.p[base]
        net.g[base][...] = d.T @ h
        net.g[base + 1][...] = d.sum(0)
        if i > 0:
            d = d @ W
    comm.Allreduce(MPI.IN_PLACE, net.grad, op=MPI.SUM)
    net.momentum *= mu
    net.momentum += net.grad
    net.flat -= lr * net.momentum


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--json")
    a = p.parse_args()
    comm = MPI.COMM_WORLD
    rank, world = comm.Get_rank(), comm.Get_size()
    images = read_idx(f"{a.data}/train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255
    labels = read_idx(f"{a.data}/train-labels-idx1-ubyte.gz").astype(np.int64)
    results = []
    for r in range(a.repeats):
        net = Net([784] + [a.width] * a.depth + [10], np.random.default_rng(0))
        order = np.random.default_rng(r).permutation(len(labels))[rank::world]
        per_epoch = len(order) // a.batch
        start = None
        for s in range(a.warmup + a.steps):
            if s == a.warmup:
                comm.Barrier()
                start = time.perf_counter()
            idx = order[(s % per_epoch) * a.batch:(s % per_epoch + 1) * a.batch]
            step(net, images[idx], labels[idx], comm, world)
        elapsed = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
        results.append(a.steps * a.batch * world / elapsed)
    if rank == 0:
        out = {"peer": "mpi4py+numpy", "numpy": np.__version__, "world_size": world, "batch_per_rank": a.batch,
               "norm": "syncbn", "samples_per_second": float(np.median(results)), "samples_per_second_all": results}
        text = json.dumps(out, indent=2)
        if a.json:
            open(a.json, "w").write(text)
        print(text)


if __name__ == "__main__":
    main()

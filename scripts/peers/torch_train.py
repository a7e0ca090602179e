#!/usr/bin/env python3
"""PyTorch CPU peer for `ddp bench train`: the same MLP (784-512x4-10, BatchNorm1d + ReLU),
per-process batch 128, SGD momentum 0.9, on Fashion-MNIST; one process, or DistributedDataParallel
with the gloo backend on N processes (local BN: PyTorch's SyncBatchNorm refuses CPU tensors).

  python3 torch_train.py [--world-size N] [--steps 200 --warmup 20 --repeats 3] [--json OUT]

Prints one JSON object (rank 0): median samples/s over the repeats (all processes together).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from fashion_mnist import read_idx
import torch
import torch.distributed as dist
import torch.multiprocessing as mp




def model(depth, width, norm):
    layers, features = [], 784
    for _ in range(depth):
        layers.append(torch.nn.Linear(features, width))
        if norm:
            layers.append(torch.nn.BatchNorm1d(width))
        layers.append(torch.nn.ReLU())
        features = width
    layers.append(torch.nn.Linear(features, 10))
    return torch.nn.Sequential(*layers)


def worker(rank, world, args, queue):
    torch.set_num_threads(args.threads)
    if world > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29517")
        dist.init_process_group("gloo", rank=rank, world_size=world)
    images = read_idx(f"{args.data}/train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255
    labels = read_idx(f"{args.data}/train-labels-idx1-ubyte.gz").astype(np.int64)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(labels)
    torch.manual_seed(0)
    results = []
    for _ in range(args.repeats):
        net = model(args.depth, args.width, True)
        if world > 1:
            net = torch.nn.parallel.DistributedDataParallel(net)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(0)
        order = torch.randperm(len(y_all), generator=generator)
        shard = order[rank::world]
        steps_per_epoch = len(shard) // args.batch
        start = None
        for step in range(args.warmup + args.steps):
            if step == args.warmup:
                if world > 1:
                    dist.barrier()
                start = time.perf_counter()
            i = step % steps_per_epoch
            idx = shard[i * args.batch:(i + 1) * args.batch]
            x, y = x_all[idx], y_all[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
        if world > 1:
            dist.barrier()
        elapsed = time.perf_counter() - start
        if world > 1:
            t = torch.tensor([elapsed])
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            elapsed = t.item()
        results.append(args.steps * args.batch * world / elapsed)
    if rank == 0:
        queue.put(results)
    if world > 1:
        dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--world-size", type=int, default=1)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--json")
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    if args.world_size == 1:
        worker(0, 1, args, queue)
    else:
        mp.spawn(worker, args=(args.world_size, args, queue), nprocs=args.world_size, join=True)
    results = queue.get()
    out = {"peer": "pytorch" if args.world_size == 1 else "pytorch-ddp-gloo", "torch": torch.__version__,
           "world_size": args.world_size, "threads_per_process": args.threads, "batch_per_process": args.batch,
           "norm": "bn (local)", "samples_per_second": float(np.median(results)), "samples_per_second_all": results}
    text = json.dumps(out, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())

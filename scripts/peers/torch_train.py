#!/usr/bin/env python3
"""PyTorch CPU peer for `ddp bench train`: the same model (default the MLP 784-512x4-10 with
BatchNorm1d + ReLU; `--model cnn|resnet` the conv twins of scripts/peers/models.py, NCHW as PyTorch
runs them by default), per-process batch 128, SGD momentum 0.9, on Fashion-MNIST; one process, or
DistributedDataParallel with the gloo backend on N processes (local BN: PyTorch's SyncBatchNorm
refuses CPU tensors).

  python3 torch_train.py [--model mlp|cnn|resnet|plain] [--depth D] [--world-size N]
                         [--steps 200 --warmup 20 --repeats 3] [--json OUT]

Prints one JSON object (rank 0): median samples/s over the repeats (all processes together).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from fashion_mnist import read_idx
import models
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def model(args):
    if args.model == "mlp":
        return models.mlp(args.depth or 4, args.width or 512, "relu", "bn")
    if args.model == "cnn":
        return models.cnn(width=args.width or 32, norm="bn")
    return models.build(args.model, depth=args.depth or 20, width=args.width or 16, norm="bn")


def worker(rank, world, args, queue):
    torch.set_num_threads(args.threads)
    if world > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29517")
        dist.init_process_group("gloo", rank=rank, world_size=world)
    shape = (-1, 784) if args.model == "mlp" else (-1, 1, 28, 28)
    images = read_idx(f"{args.data}/train-images-idx3-ubyte.gz").reshape(shape).astype(np.float32) / 255
    labels = read_idx(f"{args.data}/train-labels-idx1-ubyte.gz").astype(np.int64)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(labels)
    torch.manual_seed(0)
    results = []
    for _ in range(args.repeats):
        net = model(args)
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
    p.add_argument("--model", choices=["mlp", "cnn", "resnet", "plain"], default="mlp")
    p.add_argument("--depth", type=int, help="mlp: hidden layers (4); resnet: 6n+2 (20)")
    p.add_argument("--width", type=int, help="mlp: units (512); cnn: channels (32); resnet: channels (16)")
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
           "model": args.model, "depth": args.depth, "width": args.width,
           "world_size": args.world_size, "threads_per_process": args.threads, "batch_per_process": args.batch,
           "norm": "bn (local)", "samples_per_second": float(np.median(results)), "samples_per_second_all": results}
    text = json.dumps(out, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())

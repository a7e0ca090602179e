#!/usr/bin/env python3
"""Checks that SwiftDDP checkpoints and PyTorch state dicts are interchangeable.

1. Builds the torch.nn.Sequential equivalent of a SwiftDDP MLP, loads a checkpoint written by
   `ddp train --save` with load_state_dict(strict=True), and evaluates it on the Fashion-MNIST
   test set (the accuracy must match what ddp reported).
2. Saves a freshly initialized torch model with safetensors.torch.save_file, for
   `ddp train --init-from` (the other direction).

Usage: scripts/torch_interop.py CHECKPOINT [--depth 2 --width 256 --activation relu --norm syncbn]
                                [--export torch-init.safetensors]
Needs python3-torch (Debian) and safetensors (pip).
"""
import argparse
import json
import sys

import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from fashion_mnist import read_idx  # noqa: E402

ACTIVATIONS = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh,
               "leaky-relu": lambda: torch.nn.LeakyReLU(0.01)}


def mlp(depth, width, activation, norm, inputs=784, classes=10):
    """The torch model whose state-dict keys equal SwiftDDP's."""
    layers, features = [], inputs
    for _ in range(depth):
        layers.append(torch.nn.Linear(features, width))
        if norm != "none":
            layers.append(torch.nn.BatchNorm1d(width))  # SyncBatchNorm has the same keys
        layers.append(ACTIVATIONS[activation]())
        features = width
    layers.append(torch.nn.Linear(features, classes))
    return torch.nn.Sequential(*layers)




def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--activation", default="relu")
    p.add_argument("--norm", default="syncbn")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--export", help="also write a torch-initialized state dict here")
    a = p.parse_args()

    model = mlp(a.depth, a.width, a.activation, a.norm)
    state = load_file(a.checkpoint)
    model.load_state_dict(state, strict=True)
    model.eval()
    images = read_idx(f"{a.data}/t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255
    labels = read_idx(f"{a.data}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    with torch.no_grad():
        logits = model(torch.from_numpy(images))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels)).item()
        accuracy = (logits.argmax(1).numpy() == labels).mean()
    print(json.dumps({"loaded_keys": len(state), "test_loss": round(loss, 4), "test_accuracy": float(accuracy)}))
    if a.export:
        torch.manual_seed(0)
        fresh = mlp(a.depth, a.width, a.activation, a.norm)
        save_file({k: v.contiguous() for k, v in fresh.state_dict().items()}, a.export, metadata={"format": "pt"})
        print(f"wrote {a.export}")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Checks that SwiftDDP checkpoints and PyTorch state dicts are interchangeable.

1. Builds the torch equivalent of a SwiftDDP model (scripts/peers/models.py: MLP, CNN or ResNet),
   loads a checkpoint written by `ddp train --save` with load_state_dict(strict=True), and
   evaluates it on the Fashion-MNIST test set (the accuracy must match what ddp reported).
2. Saves a freshly initialized torch model with safetensors.torch.save_file, for
   `ddp train --init-from` (the other direction).

Usage: scripts/torch_interop.py CHECKPOINT [--model mlp|cnn|resnet|plain]
                                [--depth 2 --width 256 --activation relu --norm syncbn --groups 8]
                                [--export torch-init.safetensors]
--depth and --width default per model: MLP 2 and 256, CNN - and 32, ResNet 20 and 16.
Needs python3-torch (Debian) and safetensors (pip).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from fashion_mnist import read_idx  # noqa: E402
import models  # noqa: E402

# depth and width when not given: the defaults of the SwiftDDP model of each kind
DEFAULTS = {"mlp": (2, 256), "cnn": (None, 32), "resnet": (20, 16), "plain": (20, 16)}


def model_arguments(a):
    """The keyword arguments of models.build for the parsed command line."""
    depth, width = DEFAULTS[a.model]
    depth = depth if a.depth is None else a.depth
    width = width if a.width is None else a.width
    if a.model == "mlp":
        return {"depth": depth, "width": width, "activation": a.activation, "norm": a.norm, "groups": a.groups}
    if a.model == "cnn":
        if a.depth is not None:
            raise SystemExit("torch_interop.py: --depth does not apply to --model cnn")
        return {"width": width, "norm": a.norm, "activation": a.activation, "groups": a.groups}
    return {"depth": depth, "width": width, "norm": a.norm, "groups": a.groups, "activation": a.activation}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("--model", choices=sorted(DEFAULTS), default="mlp")
    p.add_argument("--depth", type=int, help="hidden layers (MLP) or 6n+2 (ResNet); not for the CNN")
    p.add_argument("--width", type=int, help="hidden width (MLP), first conv channels (CNN, ResNet)")
    p.add_argument("--activation", default="relu", choices=sorted(models.ACTIVATIONS))
    p.add_argument("--norm", default="syncbn", choices=models.NORMS)
    p.add_argument("--groups", type=int, default=8, help="GroupNorm groups (--norm groupnorm)")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--export", help="also write a torch-initialized state dict here")
    a = p.parse_args()

    arguments = model_arguments(a)
    model = models.build(a.model, **arguments)
    state = load_file(a.checkpoint)
    model.load_state_dict(state, strict=True)
    model.eval()
    # the MLP reads flat [N, 784] rows, the convolutional models NCHW images
    shape = (-1, 784) if a.model == "mlp" else (-1, 1, 28, 28)
    images = read_idx(f"{a.data}/t10k-images-idx3-ubyte.gz").reshape(shape).astype(np.float32) / 255
    labels = read_idx(f"{a.data}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    # the convolutional models evaluate in chunks to bound memory (in eval mode an image's logits do not
    # depend on the others in its batch); the MLP keeps its single batch
    chunk = len(images) if a.model == "mlp" else 1000
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(images[i:i + chunk])) for i in range(0, len(images), chunk)])
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels)).item()
        accuracy = (logits.argmax(1).numpy() == labels).mean()
    print(json.dumps({"loaded_keys": len(state), "test_loss": round(loss, 4), "test_accuracy": float(accuracy)}))
    if a.export:
        torch.manual_seed(0)
        fresh = models.build(a.model, **arguments)
        save_file({k: v.contiguous() for k, v in fresh.state_dict().items()}, a.export, metadata={"format": "pt"})
        print(f"wrote {a.export}")


if __name__ == "__main__":
    sys.exit(main())

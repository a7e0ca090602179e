#!/usr/bin/env python3
"""PyTorch reference for SwiftDDP's layer tests: one layer's forward and backward, computed by torch.nn.

Usage: layer_reference.py IN OUT [--dtype float64|float32]

IN is a safetensors file whose metadata key "spec" holds a JSON object describing one layer:
  {"layer": "conv2d", "in": 3, "out": 4, "kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "bias": true}
  {"layer": "maxpool2d", "kernel": 2, "stride": 2}          (stride defaults to kernel, padding to 0)
  {"layer": "avgpool2d", "kernel": 2, "stride": 2}          (same defaults; padding counts in the average)
  {"layer": "adaptiveavgpool2d"}                             (1x1 output: global average pooling)
  {"layer": "batchnorm2d", "channels": C, "training": true} (eps 1e-5, momentum 0.1 unless given)
  {"layer": "groupnorm", "groups": G, "channels": C}        (eps 1e-5 unless given; affine)
  {"layer": "flatten"}                                       (start_dim 1)
  {"layer": "basicblock", "in": 2, "out": 4, "stride": 2, "norm": "bn", "activation": "relu", "shortcut": true}
                                       (models.BasicBlock, torchvision's; norm bn or none)
"training" (default true) selects train or eval mode for every layer; only batchnorm2d differs.
IN's tensors: x (NCHW; groupnorm and flatten also take [N, C, ...] of any rank >= 2), dy (shaped like
the output) and exactly the layer's parameters under PyTorch's names: weight and bias (conv2d: bias
only when "bias" is true; batchnorm2d and groupnorm: both), and for batchnorm2d running_mean and
running_var (basicblock: its state-dict names, conv1.weight, bn1.running_mean, ...).

OUT (safetensors) holds y, dx, "d" + each parameter's name (dweight, dbias; dconv1.weight, ...), and
for batch norms in training the updated running_mean and running_var under their names (PyTorch's
semantics: momentum 0.1, the running variance updated with the unbiased batch variance, while y uses
the biased one).

Precision: the float32 inputs are widened to float64 (exactly) and the module runs in float64, so
the reference carries no float32 rounding of its own; OUT's tensors are float64 too. With
--dtype float32 the module runs in float32 as SwiftDDP does, and OUT is float32.

Exits 2 with one line on stderr when the spec or the tensors are wrong.
"""
import argparse
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

import models


class SpecError(Exception):
    """A bad spec or a tensor that does not fit it; reported as one line."""


def _int(spec, key, default=None, positive=True):
    value = spec.get(key, default)
    if value is None:
        raise SpecError(f"{spec['layer']}: missing {key!r}")
    if not isinstance(value, int) or isinstance(value, bool) or (value < 1 if positive else value < 0):
        raise SpecError(f"{spec['layer']}: {key!r} must be a {'positive' if positive else 'non-negative'} "
                        f"integer, got {value!r}")
    return value


def _pair(spec, key, default=None, positive=True):
    """An int or a list of two ints (PyTorch accepts both for kernel, stride and padding)."""
    value = spec.get(key, default)
    if value is None:
        raise SpecError(f"{spec['layer']}: missing {key!r}")
    values = value if isinstance(value, list) else [value, value]
    if len(values) != 2:
        raise SpecError(f"{spec['layer']}: {key!r} must be an integer or two, got {value!r}")
    return tuple(_int({"layer": spec["layer"], key: v}, key, positive=positive) for v in values)


def _bool(spec, key, default):
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"{spec['layer']}: {key!r} must be true or false, got {value!r}")
    return value


def _float(spec, key, default):
    value = spec.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise SpecError(f"{spec['layer']}: {key!r} must be a non-negative number, got {value!r}")
    return float(value)


def _known(spec, keys):
    unknown = sorted(set(spec) - set(keys) - {"layer", "training"})
    if unknown:
        raise SpecError(f"{spec['layer']}: unknown spec key(s) {', '.join(unknown)}")


def build(spec):
    """The torch module for the spec and the names of the tensors it expects besides x and dy."""
    if not isinstance(spec, dict):
        raise SpecError(f"spec must be a JSON object, got {type(spec).__name__}")
    layer = spec.get("layer")
    nn = torch.nn
    if layer == "conv2d":
        _known(spec, ["in", "out", "kernel", "stride", "padding", "bias"])
        bias = _bool(spec, "bias", True)
        module = nn.Conv2d(_int(spec, "in"), _int(spec, "out"), _pair(spec, "kernel"), stride=_pair(spec, "stride", 1),
                           padding=_pair(spec, "padding", 0, positive=False), bias=bias)
        return module, ["weight", "bias"] if bias else ["weight"]
    if layer in ("maxpool2d", "avgpool2d"):
        _known(spec, ["kernel", "stride", "padding"])
        kernel = _pair(spec, "kernel")
        stride, padding = _pair(spec, "stride", list(kernel)), _pair(spec, "padding", 0, positive=False)
        if any(2 * p > k for p, k in zip(padding, kernel)):
            # PyTorch's own check, raised here so that it reads as a spec error
            raise SpecError(f"{layer}: padding {padding} must be at most half the kernel {kernel}")
        pool = nn.MaxPool2d if layer == "maxpool2d" else nn.AvgPool2d
        return pool(kernel, stride=stride, padding=padding), []
    if layer == "adaptiveavgpool2d":
        _known(spec, [])
        return nn.AdaptiveAvgPool2d(1), []
    if layer == "batchnorm2d":
        _known(spec, ["channels", "eps", "momentum"])
        module = nn.BatchNorm2d(_int(spec, "channels"), eps=_float(spec, "eps", 1e-5),
                                momentum=_float(spec, "momentum", 0.1))
        return module, ["weight", "bias", "running_mean", "running_var"]
    if layer == "groupnorm":
        _known(spec, ["groups", "channels", "eps"])
        groups, channels = _int(spec, "groups"), _int(spec, "channels")
        if channels % groups:
            raise SpecError(f"groupnorm: channels {channels} not divisible by groups {groups}")
        return nn.GroupNorm(groups, channels, eps=_float(spec, "eps", 1e-5)), ["weight", "bias"]
    if layer == "flatten":
        _known(spec, [])
        return nn.Flatten(), []
    if layer == "basicblock":
        _known(spec, ["in", "out", "stride", "norm", "activation", "shortcut"])
        norm, activation = spec.get("norm", "bn"), spec.get("activation", "relu")
        if norm not in ("bn", "none") or activation not in models.ACTIVATIONS:
            raise SpecError(f"basicblock: norm must be bn or none and activation one of {list(models.ACTIVATIONS)}")
        module = models.BasicBlock(_int(spec, "in"), _int(spec, "out"), _int(spec, "stride"), norm, 1, activation,
                                   shortcut=_bool(spec, "shortcut", True))
        return module, [n for n in module.state_dict() if not n.endswith("num_batches_tracked")]
    known = "conv2d, maxpool2d, avgpool2d, adaptiveavgpool2d, batchnorm2d, groupnorm, flatten, basicblock"
    raise SpecError(f"unknown layer {layer!r} (expected one of {known})")


def read(path):
    """IN's spec (parsed) and tensors."""
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as error:  # safetensors raises its own error types for unreadable files
        raise SpecError(f"cannot read {path}: {error}".splitlines()[0]) from error
    if "spec" not in metadata:
        raise SpecError(f"{path} has no 'spec' in its safetensors metadata")
    try:
        spec = json.loads(metadata["spec"])
    except json.JSONDecodeError as error:
        raise SpecError(f"spec is not JSON: {error}") from error
    return spec, tensors


def reference(spec, tensors, dtype=torch.float64):
    """Forward in the spec's mode, backward with dy; the tensors OUT holds."""
    module, names = build(spec)
    training = _bool(spec, "training", True)
    expected = {"x", "dy", *names}
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise SpecError(f"{spec['layer']}: tensors missing {missing or '[]'}, unexpected {extra or '[]'}")
    module = module.to(dtype)
    state = dict(module.named_parameters()) | dict(module.named_buffers())
    with torch.no_grad():
        for name in names:
            target = state[name]
            if tuple(tensors[name].shape) != tuple(target.shape):
                raise SpecError(f"{spec['layer']}: {name} has shape {list(tensors[name].shape)}, "
                                f"expected {list(target.shape)}")
            target.copy_(tensors[name].to(dtype))
    module.train(training)
    x = tensors["x"].to(dtype).requires_grad_(True)
    # GroupNorm and Flatten also take [N, C, ...] of other ranks; the rest want NCHW (conv2d would
    # otherwise read a 3-D x as one unbatched CHW image)
    if x.dim() != 4 and not (spec["layer"] in ("groupnorm", "flatten") and x.dim() >= 2):
        raise SpecError(f"{spec['layer']}: x must be NCHW, got shape {list(x.shape)}")
    try:
        y = module(x)
    except (RuntimeError, ValueError) as error:  # e.g. a channel count or spatial size that does not fit
        raise SpecError(f"{spec['layer']}: forward failed: {str(error).splitlines()[0]}") from error
    dy = tensors["dy"].to(dtype)
    if dy.shape != y.shape:
        raise SpecError(f"{spec['layer']}: dy has shape {list(dy.shape)}, the output {list(y.shape)}")
    y.backward(dy)
    out = {"y": y.detach(), "dx": x.grad}
    for name, parameter in module.named_parameters():
        out["d" + name] = parameter.grad
    if training:
        for name, buffer in module.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                out[name] = buffer
    return {name: t.detach().to(dtype).contiguous() for name, t in out.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    a = p.parse_args()
    try:
        spec, tensors = read(a.input)
        out = reference(spec, tensors, getattr(torch, a.dtype))
    except SpecError as error:
        print(f"layer_reference.py: {error}", file=sys.stderr)
        return 2
    save_file(out, a.output, metadata={"spec": json.dumps(spec)})
    return 0


if __name__ == "__main__":
    sys.exit(main())

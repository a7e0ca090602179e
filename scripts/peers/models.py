"""Reference PyTorch definitions of SwiftDDP's models (MLP, small CNN, CIFAR-style ResNet).

A SwiftDDP checkpoint loads into the model built here with load_state_dict(strict=True): module
names, nesting and parameter shapes are chosen so that the state-dict keys are exactly SwiftDDP's.
Used by scripts/torch_interop.py; `build(name, **kwargs)` picks a model by name.
"""
import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
               "leaky-relu": lambda: nn.LeakyReLU(0.01)}
NORMS = ("none", "bn", "syncbn", "groupnorm")


def _activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r} (expected one of {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]()


def _check_norm(norm):
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r} (expected one of {', '.join(NORMS)})")


def _norm2d(norm, channels, groups):
    """The normalization after a convolution, or None for norm "none"."""
    _check_norm(norm)
    if norm == "none":
        return None
    if norm == "groupnorm":
        return nn.GroupNorm(groups, channels, eps=1e-5, affine=True)
    # SyncBatchNorm has the same state-dict keys as BatchNorm2d, and refuses CPU tensors
    return nn.BatchNorm2d(channels)


def mlp(depth, width, activation, norm, inputs=784, classes=10, groups=8):
    """[Linear, norm (BatchNorm1d or GroupNorm; none for "none"), activation] x depth, then the output Linear."""
    _check_norm(norm)
    layers, features = [], inputs
    for _ in range(depth):
        layers.append(nn.Linear(features, width))
        if norm == "groupnorm":
            layers.append(nn.GroupNorm(groups, width, eps=1e-5, affine=True))
        elif norm != "none":
            layers.append(nn.BatchNorm1d(width))  # SyncBatchNorm has the same keys
        layers.append(_activation(activation))
        features = width
    layers.append(nn.Linear(features, classes))
    return nn.Sequential(*layers)


def cnn(width=32, norm="syncbn", activation="relu", groups=8):
    """Two conv blocks and a hidden Linear on 1x28x28 input, as one nn.Sequential.

    Conv(1,C,3,p1) Norm act MaxPool2 Conv(C,2C,3,p1) Norm act MaxPool2 Flatten Linear(2C*49,128)
    Norm1d act Linear(128,10). Norm "none" leaves the norms out, so the later indices shift down.
    """
    _check_norm(norm)
    c = width

    def norm1d(features):
        if norm == "none":
            return None
        if norm == "groupnorm":
            # GroupNorm takes [N, C] input: each group normalizes its C/G features of one sample
            return nn.GroupNorm(groups, features, eps=1e-5, affine=True)
        return nn.BatchNorm1d(features)

    layers = [nn.Conv2d(1, c, 3, padding=1), _norm2d(norm, c, groups), _activation(activation), nn.MaxPool2d(2),
              nn.Conv2d(c, 2 * c, 3, padding=1), _norm2d(norm, 2 * c, groups), _activation(activation),
              nn.MaxPool2d(2),
              nn.Flatten(), nn.Linear(2 * c * 7 * 7, 128), norm1d(128), _activation(activation),
              nn.Linear(128, 10)]
    return nn.Sequential(*[layer for layer in layers if layer is not None])


def _conv3x3(inputs, outputs, stride=1):
    return nn.Conv2d(inputs, outputs, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(inputs, outputs, stride=1):
    return nn.Conv2d(inputs, outputs, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: out = act(bn2(conv2(act(bn1(conv1(x))))) + shortcut(x)).

    With norm "none" bn1/bn2 are absent (not registered), so the block has no norm keys at all.
    Without `shortcut` it is the block of He et al.'s plain nets: no sum and no `downsample`.
    """

    def __init__(self, inputs, outputs, stride, norm, groups, activation, shortcut=True):
        super().__init__()
        self.conv1 = _conv3x3(inputs, outputs, stride)
        bn1 = _norm2d(norm, outputs, groups)
        if bn1 is not None:
            self.bn1 = bn1
        self.act = _activation(activation)  # parameter-free, so no state-dict keys
        self.conv2 = _conv3x3(outputs, outputs)
        bn2 = _norm2d(norm, outputs, groups)
        if bn2 is not None:
            self.bn2 = bn2
        self.shortcut = shortcut
        self.downsample = None
        if shortcut and (stride != 1 or inputs != outputs):
            # projection shortcut (option B of He et al.), as torchvision builds it
            shortcut = [_conv1x1(inputs, outputs, stride), _norm2d(norm, outputs, groups)]
            self.downsample = nn.Sequential(*[m for m in shortcut if m is not None])

    def forward(self, x):
        out = self.conv1(x)
        if hasattr(self, "bn1"):
            out = self.bn1(out)
        out = self.act(out)
        out = self.conv2(out)
        if hasattr(self, "bn2"):
            out = self.bn2(out)
        if not self.shortcut:
            return self.act(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.act(out + identity)


class ResNet(nn.Module):
    """CIFAR ResNet (He et al. 2016, section 4.2) on 1x28x28 input, with torchvision's module names."""

    def __init__(self, depth=20, width=16, norm="syncbn", groups=8, activation="relu", inputs=1, classes=10,
                 shortcuts=True):
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth}")
        _check_norm(norm)
        blocks = (depth - 2) // 6
        self.conv1 = _conv3x3(inputs, width)
        bn1 = _norm2d(norm, width, groups)
        if bn1 is not None:
            self.bn1 = bn1
        self.act = _activation(activation)
        channels = width
        for stage, (planes, stride) in enumerate([(width, 1), (2 * width, 2), (4 * width, 2)], start=1):
            layer = []
            for i in range(blocks):
                layer.append(BasicBlock(channels, planes, stride if i == 0 else 1, norm, groups, activation,
                                        shortcut=shortcuts))
                channels = planes
            setattr(self, f"layer{stage}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)
        # torchvision's initialization; nn.Linear keeps PyTorch's default; zero_init_residual is off there by
        # default, so the last norm of each block starts at weight 1 too
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.conv1(x)
        if hasattr(self, "bn1"):
            x = self.bn1(x)
        x = self.act(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet(depth=20, width=16, norm="syncbn", groups=8, activation="relu"):
    """ResNet-`depth` (6n+2) with stage widths width, 2*width, 4*width and 10 classes."""
    return ResNet(depth=depth, width=width, norm=norm, groups=groups, activation=activation)


def plain(depth=20, width=16, norm="syncbn", groups=8, activation="relu"):
    """He et al.'s plain net: ResNet-`depth` without its shortcuts (the same names minus `downsample`)."""
    return ResNet(depth=depth, width=width, norm=norm, groups=groups, activation=activation, shortcuts=False)


def build(name, **kwargs):
    """The model called `name` ("mlp", "cnn", "resnet" or "plain"), built with the keyword arguments given."""
    builders = {"mlp": mlp, "cnn": cnn, "resnet": resnet, "plain": plain}
    if name not in builders:
        raise ValueError(f"unknown model {name!r} (expected one of {', '.join(builders)})")
    return builders[name](**kwargs)

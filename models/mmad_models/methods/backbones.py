"""Teacher encoders: a torchvision-compatible ResNet for local checkpoints, and the small
default encoder the project pre-trains by itself.

Both return three feature maps (shallow to deep) from a 3-channel normalised input.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# ---------------------------------------------------------------------------- ResNet
# Module and parameter names follow torchvision's ResNet exactly, so a torchvision
# state_dict (e.g. resnet18-*.pth, wide_resnet50_2-*.pth) loads with strict key checking.


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 base_width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 base_width: int = 64):
        super().__init__()
        width = int(planes * (base_width / 64.0))
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + idt)


RESNETS = {
    "resnet18": (BasicBlock, (2, 2, 2), 64),
    "resnet34": (BasicBlock, (3, 4, 6), 64),
    "resnet50": (Bottleneck, (3, 4, 6), 64),
    "wide_resnet50_2": (Bottleneck, (3, 4, 6), 128),
}


class ResNetEncoder(nn.Module):
    """Stem and layer1..layer3 of a torchvision ResNet (layer4 and fc are not needed)."""

    def __init__(self, arch: str = "resnet18"):
        super().__init__()
        if arch not in RESNETS:
            raise ValueError(f"unknown ResNet {arch!r}; one of {sorted(RESNETS)}")
        block, layers, base_width = RESNETS[arch]
        self.arch = arch
        self.inplanes = 64
        self.base_width = base_width
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make(block, 64, layers[0], 1)
        self.layer2 = self._make(block, 128, layers[1], 2)
        self.layer3 = self._make(block, 256, layers[2], 2)
        self.channels = (64 * block.expansion, 128 * block.expansion, 256 * block.expansion)
        self.strides = (4, 8, 16)

    def _make(self, block, planes, blocks, stride):
        down = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            down = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        mods = [block(self.inplanes, planes, stride, down, self.base_width)]
        self.inplanes = planes * block.expansion
        mods += [block(self.inplanes, planes, base_width=self.base_width) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        return [f1, f2, self.layer3(f2)]


def load_torchvision_checkpoint(encoder: ResNetEncoder, path: str | Path) -> list[str]:
    """Loads a local torchvision ResNet checkpoint; returns the ignored keys (layer4, fc).

    Every key the encoder has must be in the file (strict on what is used), so a wrong
    architecture fails loudly instead of leaving random weights in place.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = encoder.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(f"{path}: not a {encoder.arch} checkpoint, missing {missing[:5]}...")
    bad = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"{path}: shape mismatch for {bad[:5]} (another architecture?)")
    encoder.load_state_dict({k: state[k] for k in own}, strict=True)
    return sorted(k for k in state if k not in own)


# ---------------------------------------------------------------------------- small encoder


class _Stage(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
        self.body = nn.Sequential(
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.down(x)
        return self.relu(x + self.body(x))


class SmallEncoder(nn.Module):
    """A compact residual CNN with feature maps at strides 2, 4 and 8.

    Sized for CPU training at 64-128 px; the default teacher of every modality.
    """

    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128), stem: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        self.stage1 = _Stage(stem, widths[0])
        self.stage2 = _Stage(widths[0], widths[1])
        self.stage3 = _Stage(widths[1], widths[2])
        self.channels = tuple(widths)
        self.strides = (2, 4, 8)
        self.widths = tuple(widths)

    def forward(self, x):
        f1 = self.stage1(self.stem(x))
        f2 = self.stage2(f1)
        return [f1, f2, self.stage3(f2)]


def build_encoder(spec: dict) -> nn.Module:
    """An encoder from its JSON-able spec: {"kind": "small", "widths": [...]} or {"kind": "resnet", "arch": ...}."""
    if spec["kind"] == "small":
        return SmallEncoder(tuple(spec.get("widths", (32, 64, 128))), int(spec.get("stem", 16)))
    if spec["kind"] == "resnet":
        return ResNetEncoder(spec["arch"])
    raise ValueError(f"unknown encoder kind {spec['kind']!r}")


def load_encoder(spec: dict) -> nn.Module:
    """Builds the encoder of a spec and loads its weights file when the spec names one."""
    enc = build_encoder(spec)
    w = spec.get("weights")
    if w:
        if isinstance(enc, ResNetEncoder):
            load_torchvision_checkpoint(enc, w)
        else:
            enc.load_state_dict(torch.load(w, map_location="cpu", weights_only=True))
    return enc

"""What every method's module shares: the named result, the teachers (one shared encoder per
weights file) and the rounding of weights to float16 values."""

from __future__ import annotations

import json
from typing import NamedTuple

import torch
from torch import nn

from .backbones import load_encoder as build_encoder
from .preprocess import build_input


class AnomalyResult(NamedTuple):
    anomaly_map: torch.Tensor  # [B,1,H,W] float32, standardised units (0 ~ typical good pixel)
    score: torch.Tensor  # [B] float32, max of the map
    # [B,1,H,W] float32 for a model that takes ct: per pixel, the slice of the volume where
    # its column deviates most from the material (preprocess.CtInput.depth); else None
    anomaly_depth: torch.Tensor | None = None


class Teacher(nn.Module):
    """Frozen per-modality teacher: in-graph input preprocessing + encoder.

    ``train()`` never switches it to training mode: its batch-norm statistics stay fixed.
    """

    def __init__(self, modality: str, size: tuple[int, int], encoder_spec: dict, encoder: nn.Module | None = None,
                 ir_robust: bool = False, ct_grid: tuple[int, int, int] | None = None, xyz_face: bool = False):
        super().__init__()
        self.modality = modality
        self.encoder_spec = dict(encoder_spec)
        self.input = build_input(modality, size, ir_robust, ct_grid, xyz_face)
        self.encoder = encoder if encoder is not None else build_encoder(encoder_spec)
        self.channels = tuple(self.encoder.channels)
        self.strides = tuple(self.encoder.strides)
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder.eval()

    def train(self, mode: bool = True):  # frozen on purpose: a teacher never leaves eval mode
        super().train(False)
        return self

    def forward(self, raw: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(self.input(raw))


def _weights_key(spec: dict) -> str | None:
    """What identifies a teacher's weights: the file it was loaded from (``weights``), or
    the same path recorded as ``weightsId`` in a checkpoint's spec; None for a random one."""
    w = spec.get("weights") or spec.get("weightsId")
    if not w:
        return None
    return json.dumps({k: v for k, v in spec.items() if k not in ("weights", "weightsId")} | {"w": w}, sort_keys=True)


def build_teachers(modalities: tuple[str, ...], size: tuple[int, int], specs: dict[str, dict],
                   ir_robust: bool = False, ct_grid: tuple[int, int, int] | None = None,
                   xyz_face: bool = False) -> nn.ModuleDict:
    """One ``Teacher`` per modality. Modalities whose teacher is the same weights file share
    one encoder module (the default procedural teacher serves every modality), so an
    exported graph stores those weights once; each keeps its own input normalisation
    (``ir_robust``, ``ct_grid``, ``xyz_face``: see ``preprocess.build_input``)."""
    shared: dict[str, nn.Module] = {}
    teachers = nn.ModuleDict()
    for m in modalities:
        key = _weights_key(specs[m])
        enc = shared.get(key) if key is not None else None
        teachers[m] = Teacher(m, size, specs[m], enc, ir_robust, ct_grid, xyz_face)
        if key is not None and enc is None:
            shared[key] = teachers[m].encoder
    return teachers


@torch.no_grad()
def round_to_half_(module: nn.Module, min_numel: int = 256) -> int:
    """Rounds the module's large floating-point parameters and buffers to float16 values
    (kept as float32 tensors); returns how many tensors were rounded.

    The exported graph then stores exactly these tensors as float16 initializers, losslessly
    (``export.store_half``): half the file size, and the numbers PyTorch evaluated and
    calibrated are the numbers the service runs. Tensors whose values would overflow
    float16 are left as they are.
    """
    n = 0
    seen = set()
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) in seen or not t.is_floating_point() or t.numel() < min_numel:
            continue
        seen.add(id(t))
        h = t.half()
        if torch.isfinite(h).all():
            t.copy_(h.float())
            n += 1
    return n

"""What every method's module shares: the named result and the teacher wrapper."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .backbones import load_encoder as build_encoder
from .preprocess import build_input


class AnomalyResult(NamedTuple):
    anomaly_map: torch.Tensor  # [B,1,H,W] float32, standardised units (0 ~ typical good pixel)
    score: torch.Tensor  # [B] float32, max of the map


class Teacher(nn.Module):
    """Frozen per-modality teacher: in-graph input preprocessing + encoder.

    ``train()`` never switches it to training mode: its batch-norm statistics stay fixed.
    """

    def __init__(self, modality: str, size: tuple[int, int], encoder_spec: dict):
        super().__init__()
        self.modality = modality
        self.encoder_spec = dict(encoder_spec)
        self.input = build_input(modality, size)
        self.encoder = build_encoder(encoder_spec)
        self.channels = tuple(self.encoder.channels)
        self.strides = tuple(self.encoder.strides)
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder.eval()

    def train(self, mode: bool = True):  # noqa: D102 - frozen on purpose
        super().train(False)
        return self

    def forward(self, raw: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(self.input(raw))

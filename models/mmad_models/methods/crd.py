"""Crossmodal reverse distillation (after arXiv 2412.08949).

One branch per modality: frozen teacher encoder -> one-class bottleneck -> student
decoder that reconstructs the teacher's features at three scales. With two or more
modalities, each branch also sees the other modalities' teacher features through

* a crossmodal *filter*: an hourglass on the other modalities' deepest features whose
  output joins the bottleneck embedding, and
* a crossmodal *amplifier*: projections of the other modalities' features at every
  scale, added to the decoder's stages with learnt weights.

Anomaly map of a branch = sum over scales of the upsampled 1 - cos(teacher, student);
the branch maps are standardised on validation good parts and fused by ``MapScorer``
so that an anomaly seen by one modality only keeps its strength.

The branch itself (bottleneck, decoder, the cosine distance) is in ``blocks.py``, shared with
MTFI's reconstruction student; the crossmodal filter and amplifier are CRD's own, here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from .base import Method
from .blocks import Branch, conv_bn_relu, cosine_distance_maps
from .common import build_teachers
from .scoring import MAP_SIGMA, MapScorer

if TYPE_CHECKING:
    from ..train import RunConfig


class CrossmodalFilter(nn.Module):
    """Hourglass on the other modalities' deepest teacher features, at the bottleneck scale."""

    def __init__(self, cin: int, emb: int):
        super().__init__()
        self.enter = conv_bn_relu(cin, emb, 3, 2)  # stride 8 -> 16, the bottleneck's scale
        self.down = conv_bn_relu(emb, emb, 3, 2)
        self.up = nn.Sequential(nn.ConvTranspose2d(emb, emb, 2, 2, bias=False), nn.BatchNorm2d(emb), nn.ReLU(inplace=True))

    def forward(self, x):
        e = self.enter(x)
        h = self.up(self.down(e))
        if h.shape[-2:] != e.shape[-2:]:  # odd sizes
            h = F.interpolate(h, size=e.shape[-2:], mode="nearest")
        return e + h


class CrossmodalAmplifier(nn.Module):
    """Per-scale projections of the other modalities' teacher features, with learnt weights."""

    def __init__(self, cin: tuple[int, int, int], cout: tuple[int, int, int], slim: bool = False):
        super().__init__()
        k = 1 if slim else 3  # slim: per-location projections
        self.proj = nn.ModuleList(
            nn.Sequential(conv_bn_relu(i, o, k), nn.Conv2d(o, o, 1)) for i, o in zip(cin, cout)
        )
        self.weight = nn.Parameter(torch.full((3,), 0.1))

    def forward(self, feats, k: int):
        return self.weight[k] * self.proj[k](feats)


class CrossmodalReverseDistillation(Method):
    summary = "crossmodal reverse distillation"

    def __init__(
        self,
        modalities: tuple[str, ...],
        size: tuple[int, int],
        encoder_spec: dict | dict[str, dict],
        emb: int | None = None,
        fusion: str = "max",
        map_sigma: float = MAP_SIGMA,
        slim: bool = False,
        ir_robust: bool = False,
        ct_grid: tuple[int, int, int] | None = None,
        xyz_face: bool = False,
    ):
        super().__init__()
        self.modalities = tuple(modalities)
        self.size = tuple(size)
        specs = encoder_spec if all(m in encoder_spec for m in modalities) else {m: encoder_spec for m in modalities}
        self.teachers = build_teachers(self.modalities, size, specs, ir_robust, ct_grid, xyz_face)
        ch = {m: self.teachers[m].channels for m in modalities}
        self.branches = nn.ModuleDict()
        for m in modalities:
            others = [o for o in modalities if o != m]
            assist = tuple(sum(ch[o][k] for o in others) for k in range(3)) if others else None
            # slim: half the deepest teacher width in the bottleneck, lighter decoder stages
            width = emb or (ch[m][2] // 2 if slim else ch[m][2])
            # the crossmodal parts before the branch's own: the order their parameters are drawn in
            self.branches[m] = Branch(ch[m], width, slim,
                                      crossmodal_filter=CrossmodalFilter(assist[2], width) if assist else None,
                                      crossmodal_amplifier=CrossmodalAmplifier(assist, ch[m], slim) if assist else None)
        self.scorer = MapScorer(len(modalities), size, map_sigma=map_sigma, fusion=fusion)

    @classmethod
    def from_config(cls, cfg: RunConfig, specs: dict[str, dict]) -> CrossmodalReverseDistillation:
        return cls(tuple(cfg.modalities), tuple(cfg.size), specs, fusion=cfg.fusion, map_sigma=cfg.map_sigma, slim=cfg.slim,
                   ir_robust=cfg.ir_robust, ct_grid=tuple(cfg.ct_grid) if cfg.ct_grid else None,
                   xyz_face=cfg.xyz_face)

    def teacher_features(self, inputs: dict[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        with torch.no_grad():
            return {m: self.teachers[m](inputs[m]) for m in self.modalities}

    def _assist(self, feats, m):
        others = [o for o in self.modalities if o != m]
        if not others:
            return None
        return [torch.cat([feats[o][k] for o in others], dim=1) for k in range(3)]

    def distances(self, inputs: dict[str, torch.Tensor], feats=None) -> dict[str, list[torch.Tensor]]:
        """Per modality, per scale: the 1 - cos map at the feature's resolution."""
        feats = self.teacher_features(inputs) if feats is None else feats
        out = {}
        for m in self.modalities:
            student = self.branches[m](feats[m], self._assist(feats, m))
            out[m] = cosine_distance_maps(feats[m], student)
        return out

    def loss(self, inputs: dict[str, torch.Tensor] | None, feats: dict[str, list[torch.Tensor]] | None = None) -> torch.Tensor:
        """Training objective: mean cosine distance over scales, pixels and branches.
        ``feats``: the teacher features of ``inputs`` when the caller has them already."""
        d = self.distances(inputs, feats)
        return torch.stack([dm.mean() for m in self.modalities for dm in d[m]]).sum() / len(self.modalities)

    def fit_normality(self, train_inputs: dict[str, torch.Tensor], *, seed: int = 0, log=None) -> None:
        """Nothing to fit: the students are the normality model, and ``loss`` trains them."""

    def branch_maps(self, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        d = self.distances(inputs)
        maps = []
        for m in self.modalities:
            up = self.scorer.upsample(d[m])
            maps.append(torch.stack(up, 0).sum(0))
        return maps

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
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .common import AnomalyResult, build_teachers
from .scoring import MapScorer


def _cbr(cin, cout, k=3, s=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _up(cin, cout, slim: bool = False):
    if slim:  # one 3x3 convolution after the upsampling instead of two
        return nn.Sequential(
            nn.ConvTranspose2d(cin, cout, 2, 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1),
        )
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 2, 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        _cbr(cout, cout),
        nn.Conv2d(cout, cout, 3, 1, 1),
    )


class OneClassBottleneck(nn.Module):
    """Fuses the three teacher scales and compresses them one stride further."""

    def __init__(self, ch: tuple[int, int, int], emb: int, assist: int = 0, slim: bool = False):
        super().__init__()
        c1, c2, c3 = ch
        # slim: every scale is projected to the embedding width before the fusion, instead
        # of to the deepest teacher width (a third of the parameters, same receptive field)
        w = emb if slim else c3
        self.from1 = nn.Sequential(_cbr(c1, c2, 3, 2), _cbr(c2, w, 3, 2))
        self.from2 = _cbr(c2, w, 3, 2)
        self.from3 = _cbr(c3, w, 1) if slim else nn.Identity()
        self.fuse = nn.Sequential(_cbr(3 * w, emb, 3, 2), _cbr(emb, emb, 1))
        self.join = _cbr(emb + assist, emb, 1) if assist else None

    def forward(self, f, assist=None):
        e = self.fuse(torch.cat([self.from1(f[0]), self.from2(f[1]), self.from3(f[2])], dim=1))
        if self.join is not None:
            e = self.join(torch.cat([e, assist], dim=1))
        return e


class CrossmodalFilter(nn.Module):
    """Hourglass on the other modalities' deepest teacher features, at the bottleneck scale."""

    def __init__(self, cin: int, emb: int):
        super().__init__()
        self.enter = _cbr(cin, emb, 3, 2)  # stride 8 -> 16, the bottleneck's scale
        self.down = _cbr(emb, emb, 3, 2)
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
            nn.Sequential(_cbr(i, o, k), nn.Conv2d(o, o, 1)) for i, o in zip(cin, cout)
        )
        self.weight = nn.Parameter(torch.full((3,), 0.1))

    def forward(self, feats, k: int):
        return self.weight[k] * self.proj[k](feats)


class Branch(nn.Module):
    def __init__(self, ch: tuple[int, int, int], emb: int, assist_ch: tuple[int, int, int] | None,
                 slim: bool = False):
        super().__init__()
        c1, c2, c3 = ch
        self.filter = CrossmodalFilter(assist_ch[2], emb) if assist_ch else None
        self.amplifier = CrossmodalAmplifier(assist_ch, ch, slim) if assist_ch else None
        self.bottleneck = OneClassBottleneck(ch, emb, emb if assist_ch else 0, slim)
        self.dec3, self.dec2, self.dec1 = _up(emb, c3, slim), _up(c3, c2, slim), _up(c2, c1, slim)

    def forward(self, f, assist=None):
        e = self.bottleneck(f, self.filter(assist[2]) if self.filter is not None else None)
        outs = []
        x = e
        for k, dec in ((2, self.dec3), (1, self.dec2), (0, self.dec1)):
            x = dec(x)
            if x.shape[-2:] != f[k].shape[-2:]:
                x = F.interpolate(x, size=f[k].shape[-2:], mode="bilinear", align_corners=False)
            if self.amplifier is not None:
                x = x + self.amplifier(assist[k], k)
            outs.append(x)
        return outs[::-1]  # shallow to deep, like the teacher


def cosine_distance_maps(t: list[torch.Tensor], s: list[torch.Tensor]) -> list[torch.Tensor]:
    return [1.0 - F.cosine_similarity(a, b, dim=1, eps=1e-6).unsqueeze(1) for a, b in zip(t, s)]


class CrossmodalReverseDistillation(nn.Module):
    def __init__(
        self,
        modalities: tuple[str, ...],
        size: tuple[int, int],
        encoder_spec: dict | dict[str, dict],
        emb: int | None = None,
        fusion: str = "max",
        slim: bool = False,
        ir_robust: bool = False,
    ):
        super().__init__()
        self.modalities = tuple(modalities)
        self.size = tuple(size)
        specs = encoder_spec if all(m in encoder_spec for m in modalities) else {m: encoder_spec for m in modalities}
        self.teachers = build_teachers(self.modalities, size, specs, ir_robust)
        ch = {m: self.teachers[m].channels for m in modalities}
        self.branches = nn.ModuleDict()
        for m in modalities:
            others = [o for o in modalities if o != m]
            assist = tuple(sum(ch[o][k] for o in others) for k in range(3)) if others else None
            # slim: half the deepest teacher width in the bottleneck, lighter decoder stages
            width = emb or (ch[m][2] // 2 if slim else ch[m][2])
            self.branches[m] = Branch(ch[m], width, assist, slim)
        self.scorer = MapScorer(len(modalities), size, fusion=fusion)

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

    def branch_maps(self, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        d = self.distances(inputs)
        maps = []
        for m in self.modalities:
            up = self.scorer.upsample(d[m])
            maps.append(torch.stack(up, 0).sum(0))
        return maps

    def forward(self, inputs: dict[str, torch.Tensor]) -> AnomalyResult:
        amap, score = self.scorer.forward_upsampled(self.branch_maps(inputs))
        return AnomalyResult(amap, score)

"""Building blocks both methods use: the conv-BN-ReLU layer, the reverse-distillation branch
(one-class bottleneck + student decoder) and its anomaly measure, the per-scale cosine distance.

CRD (``crd.py``) builds one branch per modality and hands it its crossmodal filter and
amplifier; MTFI (``mtfi.py``) uses the plain branch as its ``rd`` normality student and
the conv-BN-ReLU layer in its cross-modal students.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn_relu(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Sequential:
    """A k x k convolution (same padding, stride ``s``, no bias), batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _up(cin, cout, slim: bool = False):
    if slim:  # one 3x3 convolution after the upsampling instead of two
        return nn.Sequential(
            nn.ConvTranspose2d(cin, cout, 2, 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1),
        )
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 2, 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        conv_bn_relu(cout, cout),
        nn.Conv2d(cout, cout, 3, 1, 1),
    )


class OneClassBottleneck(nn.Module):
    """Fuses the three teacher scales and compresses them one stride further; with ``assist``
    channels, an embedding from elsewhere (CRD's crossmodal filter) is joined to it."""

    def __init__(self, ch: tuple[int, int, int], emb: int, assist: int = 0, slim: bool = False):
        super().__init__()
        c1, c2, c3 = ch
        # slim: every scale is projected to the embedding width before the fusion, instead
        # of to the deepest teacher width (a third of the parameters, same receptive field)
        w = emb if slim else c3
        self.from1 = nn.Sequential(conv_bn_relu(c1, c2, 3, 2), conv_bn_relu(c2, w, 3, 2))
        self.from2 = conv_bn_relu(c2, w, 3, 2)
        self.from3 = conv_bn_relu(c3, w, 1) if slim else nn.Identity()
        self.fuse = nn.Sequential(conv_bn_relu(3 * w, emb, 3, 2), conv_bn_relu(emb, emb, 1))
        self.join = conv_bn_relu(emb + assist, emb, 1) if assist else None

    def forward(self, f, assist=None):
        e = self.fuse(torch.cat([self.from1(f[0]), self.from2(f[1]), self.from3(f[2])], dim=1))
        if self.join is not None:
            e = self.join(torch.cat([e, assist], dim=1))
        return e


class Branch(nn.Module):
    """Reverse distillation of one modality: the one-class bottleneck over the teacher's three
    scales, then a student decoder that reconstructs them (shallow to deep, like the teacher).

    ``crossmodal_filter`` and ``crossmodal_amplifier`` are CRD's crossmodal parts (``crd.py``),
    built by the caller before the branch (which keeps the order in which the parameters are
    drawn): the filter
    maps the other modalities' deepest features to an ``emb``-channel embedding joined in
    the bottleneck, the amplifier's output for stage ``k`` is added to that decoder stage.
    Without them (MTFI's ``rd`` normality student) the branch sees its modality alone.
    """

    def __init__(self, ch: tuple[int, int, int], emb: int, slim: bool = False, *,
                 crossmodal_filter: nn.Module | None = None, crossmodal_amplifier: nn.Module | None = None):
        super().__init__()
        c1, c2, c3 = ch
        self.filter = crossmodal_filter
        self.amplifier = crossmodal_amplifier
        self.bottleneck = OneClassBottleneck(ch, emb, emb if crossmodal_filter is not None else 0, slim)
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
    """Per scale, ``1 - cos`` of the teacher's and the student's features along the channels:
    [B,1,h,w] at that scale's resolution."""
    return [1.0 - F.cosine_similarity(a, b, dim=1, eps=1e-6).unsqueeze(1) for a, b in zip(t, s)]

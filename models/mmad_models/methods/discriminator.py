"""Discriminative normality: a small segmentation head on a memory bank's features, trained
to find synthetic anomalies on good parts (the idea of DRAEM, DeSTSeg and SimpleNet: when
no defective part may be used, alter good parts in random regions and learn to point at
the altered locations).

Why: a memory bank says how far a location is from every training location; it cannot
tell a new but harmless variation (a brighter specular highlight, a tread position the
bank lacks) from a defect, and on real MVTec 3D-AD tire the maximum of every good test
part sat on such a variation (I-AUROC 0.50). The head sees the same features and the
distance, and learns what *altered surface* looks like against all the variation of the
training parts. It is an option (``train --discriminator``), not the default: it ranked
real rope far better (contamination specks found), real tire somewhat better with worse
maps, and the simulator's lid worse than the bank (models/README.md, "Synthetic
anomalies").

The alterations are made on the teacher's **normalised input** (every channel in units
of the training parts' standard deviation), so one generator serves rgb, ir and xyz
descriptors alike. Each altered part gets one Perlin-shaped region (a thresholded sum of
two octaves of smooth value noise, 0.4-4 % of the frame) on the part itself (``foreground``:
on the simulator's lid, where most of the frame is background noise, regions placed
anywhere taught the head to react to the background and it ranked the lids worse than
chance), filled with one of:

* *texture*: another training part's input at a random shift and flip, blended in
  (a foreign material, a misplaced feature);
* *offset*: a constant per channel of 0.5-3 standard deviations either way, faded at
  the edge (a stain, a hot or cold spot, a bump or dent in the height descriptors);
* *erase*: the local mean (lost detail: a cut, a filled hole, a smear).

A quarter of each batch stays unaltered so that the head also sees whole good parts.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F


def perlin_masks(n: int, size: tuple[int, int], g: torch.Generator,
                 area: tuple[float, float] = (0.004, 0.04)) -> tuple[torch.Tensor, torch.Tensor]:
    """n masks [n,1,H,W] in {0,1} covering ``area`` of the frame (a random share each),
    and their soft version (the noise above the threshold, rising to 1 inward)."""
    h, w = size
    masks, soft = torch.zeros(n, 1, h, w), torch.zeros(n, 1, h, w)
    for i in range(n):
        s = 2 ** int(torch.randint(1, 5, (1,), generator=g))
        noise = F.interpolate(torch.rand(1, 1, s + 1, s + 1, generator=g), (h, w), mode="bicubic", align_corners=True)
        noise = noise + 0.5 * F.interpolate(torch.rand(1, 1, 2 * s + 1, 2 * s + 1, generator=g), (h, w),
                                            mode="bicubic", align_corners=True)
        share = area[0] + (area[1] - area[0]) * float(torch.rand(1, generator=g))
        thr = torch.quantile(noise.flatten(), 1.0 - share)
        m = (noise > thr).float()
        masks[i] = m[0]
        top = noise.max()
        soft[i] = (((noise - thr) / (top - thr).clamp_min(1e-6)).clamp(0, 1) * 4).clamp(max=1)[0] * m[0]
    return masks, soft


def foreground(x: torch.Tensor, smooth: int = 15) -> torch.Tensor:
    """Where the part is, per frame [N,1,H,W] in {0,1}: locations whose (locally averaged)
    input differs from the frame's background, taken as the median of its border pixels,
    by more than an Otsu threshold of that difference (clipped at its 95th percentile, so
    that specular highlights do not take the threshold for themselves), then closed. A
    frame without a clear object (the two sides of the threshold not well separated, or
    the object under 5 % or over 95 % of the frame) is all foreground."""
    n, c, h, w = x.shape
    xs = F.avg_pool2d(x, smooth, 1, smooth // 2, count_include_pad=False)
    border = torch.cat([xs[..., 0, :], xs[..., -1, :], xs[..., :, 0], xs[..., :, -1]], dim=-1)  # [N,C,L]
    d = (xs - border.median(dim=-1).values.view(n, c, 1, 1)).norm(dim=1, keepdim=True)
    out = torch.ones(n, 1, h, w)
    for i in range(n):
        v = d[i].flatten()
        v = v.clamp(max=float(torch.quantile(v, 0.95)))
        hist = torch.histc(v, 64, float(v.min()), float(v.max()) + 1e-6)
        p = hist / hist.sum()
        centers = torch.linspace(float(v.min()), float(v.max()) + 1e-6, 65)[:-1]
        w0 = p.cumsum(0)
        m0 = (p * centers).cumsum(0)
        between = (m0[-1] * w0 - m0) ** 2 / (w0 * (1 - w0)).clamp_min(1e-12)
        best = int(between[:-1].argmax())
        # separability: between-class over total variance (at most 2/pi ~ 0.64 for one
        # Gaussian mode, near 1 for a part that stands out from its background)
        if float(between[best]) < 0.75 * float((p * (centers - m0[-1]) ** 2).sum()):
            continue
        fg = (d[i] > centers[best]).float()
        # closed (dilated, then eroded) by an eighth of the frame: the gaps between bright
        # and dark parts of one object (a tread between a sidewall and a highlight) join it
        k = max(3, (max(h, w) // 8) | 1)
        fg = -F.max_pool2d(-F.max_pool2d(fg[None], k, 1, k // 2), k, 1, k // 2)[0]
        if 0.05 <= float(fg.mean()) <= 0.95:
            out[i] = fg
    return out


def synthesize(x: torch.Tensor, pool: torch.Tensor, g: torch.Generator,
               fg: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Alters each part of ``x`` ([N,C,H,W] normalised inputs) in one random region on the
    part (``fg``: its ``foreground``, computed when not given); ``pool``: normalised good
    parts to take foreign texture from. Returns the altered inputs and the masks [N,1,H,W]
    of what was altered."""
    n, c, h, w = x.shape
    fg = foreground(x) if fg is None else fg
    masks, soft = torch.zeros(n, 1, h, w), torch.zeros(n, 1, h, w)
    for i in range(n):  # a region that lies mostly on the part (a few tries), cut to the part
        for _ in range(8):
            m, sm = perlin_masks(1, (h, w), g)
            if float((m * fg[i]).sum()) >= 0.5 * float(m.sum()):
                break
        masks[i], soft[i] = (m * fg[i])[0], (sm * fg[i])[0]
    out = x.clone()
    for i in range(n):
        kind = int(torch.randint(0, 3, (1,), generator=g))
        keep = 0.6 * float(torch.rand(1, generator=g))  # share of the original left in the region
        if kind == 0:
            src = pool[int(torch.randint(0, len(pool), (1,), generator=g))]
            src = torch.roll(src, (int(torch.randint(0, h, (1,), generator=g)), int(torch.randint(0, w, (1,), generator=g))),
                             dims=(1, 2))
            if float(torch.rand(1, generator=g)) < 0.5:
                src = src.flip(2)
            fill, m = keep * x[i] + (1 - keep) * src, masks[i]
        elif kind == 1:
            mag = 0.5 + 2.5 * torch.rand(c, 1, 1, generator=g)
            sign = torch.where(torch.rand(c, 1, 1, generator=g) < 0.5, -1.0, 1.0)
            fill, m = x[i] + sign * mag, soft[i]
        else:
            fill, m = F.avg_pool2d(x[i:i + 1], 9, 1, 4, count_include_pad=False)[0], masks[i]
        out[i] = x[i] * (1 - m) + fill * m
    return out, masks


class DiscriminatorHead(nn.Module):
    """Per-location anomaly logit from a bank's features and distance [B,D+1,h,w]: the
    inputs standardised with the training parts' statistics (buffers), two 3x3
    conv-BN-ReLU layers and a 1x1 output."""

    def __init__(self, cin: int, hidden: int = 64):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, cin, 1, 1))
        self.register_buffer("std", torch.ones(1, cin, 1, 1))
        self.net = nn.Sequential(
            nn.Conv2d(cin, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 1))
        # fitted by train_head (the model's fit_normality), not by the training epochs
        self.requires_grad_(False)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net((f - self.mean) / self.std)


def focal_loss(logit: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Binary focal loss against soft targets (the share of each cell that was altered):
    the few altered cells are not drowned by the many good ones."""
    p = torch.sigmoid(logit)
    bce = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
    pt = torch.where(target > 0.5, p, 1 - p)
    return ((1 - pt) ** gamma * bce).mean()


def train_head(head: DiscriminatorHead, features: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
               steps: int = 1500, copies: int = 3, batch: int = 16, lr: float = 1e-3, seed: int = 0,
               log=None) -> None:
    """Trains ``head`` on ``copies`` altered versions of every normalised training input in
    ``x`` (their features computed once: ``features`` maps normalised inputs to the bank's
    [B,D+1,h,w]), then ``steps`` Adam steps on random batches of them."""
    g = torch.Generator().manual_seed(seed)
    feats, targets = [], []
    with torch.no_grad():
        fg = foreground(x)  # once: every copy alters the same parts (mirrored on odd copies)
        for r in range(copies):
            for i in range(0, len(x), batch):
                xb, fb = x[i:i + batch], fg[i:i + batch]
                if r % 2:
                    xb, fb = xb.flip(3), fb.flip(3)
                xa, m = synthesize(xb, x, g, fb)
                clean = torch.rand(len(xb), generator=g) < 0.25
                xa[clean], m[clean] = xb[clean], 0.0
                f = features(xa)
                feats.append(f.half())
                targets.append(F.adaptive_avg_pool2d(m, f.shape[-2:]).half())
        feats, targets = torch.cat(feats), torch.cat(targets)
        clean_feats = torch.cat([features(x[i:i + batch]) for i in range(0, len(x), batch)])
        head.mean.copy_(clean_feats.mean((0, 2, 3), keepdim=True))
        head.std.copy_(clean_feats.std((0, 2, 3), keepdim=True).clamp_min(1e-6))
    if log:
        log(f"  discriminator: {len(feats)} parts ({copies} altered copies of each), {steps} steps")
    head.net.requires_grad_(True)
    opt = torch.optim.Adam(head.net.parameters(), lr=lr)
    head.train()
    for step in range(steps):
        idx = torch.randint(0, len(feats), (batch,), generator=g)
        loss = focal_loss(head(feats[idx].float()), targets[idx].float()) * 10
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log and (step + 1) % max(1, steps // 5) == 0:
            log(f"  discriminator step {step + 1}/{steps} loss {loss.item():.4f}")
    head.net.requires_grad_(False)
    head.eval()

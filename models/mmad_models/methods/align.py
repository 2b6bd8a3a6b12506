"""Part alignment in the graph: each part's pose is estimated from its foreground, the
normalised inputs are warped to the training parts' mean pose before the teacher, and the
branch maps are warped back to the part's own frame (``PoseAlign``).

Parts held in a fixture still sit a few pixels and a degree or two apart (the simulator's
battery lid: +-2.5 mm, +-2 degrees, up to ~10 px at 256 px). A memory bank ignores where a
feature is, so it does not care; a model of what belongs *at each place* (``--normality
local``) does: unaligned, a terminal's edge lands on a different cell in every part and that
cell's statistics learn to accept anything.

The pose is that of the foreground's image moments: its centroid and, for ``pose``, the
orientation of its principal axis (half the angle of the second central moments, the
textbook estimate; an axis, so defined modulo 180 degrees, and meaningless for a round part,
for which ``shift`` keeps the rotation out). The foreground is where the pose channel of
the normalised input (the height for xyz, the mean over channels otherwise) is above a
level fitted on the training parts by Otsu's method. Everything is plain ONNX: sums,
Atan2-free trigonometry from the moments themselves, and one GridSample per warped tensor.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .preprocess import otsu_level

ALIGN_MODES = ("none", "shift", "pose")
# which modality's foreground gives the pose when several are present: the geometry first
POSE_ORDER = ("xyz", "rgb", "ir", "ct")


def pose_channel(modality: str, z: torch.Tensor) -> torch.Tensor:
    """[B,H,W]: what the foreground is read from, of a modality's normalised input [B,C,H,W]:
    the height for xyz, the mass projection for ct (the channels that set the part apart from
    what is around it by construction; ct's interior channels are 1 in air and in material
    alike), the mean over channels otherwise. On the seed-7 lid with a CT, mtfi-ct aligned by
    the mass gave I-AUROC 0.714 against 0.697 by the three channels' mean."""
    return z[:, 0] if modality in ("xyz", "ct") else z.mean(dim=1)


class PoseAlign(nn.Module):
    """Warps [B,C,H,W] tensors between a part's frame and the canonical frame (the mean pose
    of the training parts). Coordinates are isotropic (a pixel is as long in x as in y, also
    for non-square frames), the origin at the frame's centre."""

    def __init__(self, size: tuple[int, int], mode: str = "pose"):
        super().__init__()
        if mode not in ("shift", "pose"):
            raise ValueError("align mode is 'shift' or 'pose'")
        self.mode = mode
        h, w = size
        s = max(h, w)
        # pixel centres in isotropic units (half the longer side = 1), as align_corners=False
        ys = (torch.arange(h, dtype=torch.float32) * 2 + 1 - h) / s
        xs = (torch.arange(w, dtype=torch.float32) * 2 + 1 - w) / s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        self.register_buffer("xx", xx.clone())
        self.register_buffer("yy", yy.clone())
        # grid_sample's normalised coordinates are per axis: isotropic units times this
        self.register_buffer("to_grid", torch.tensor([s / w, s / h], dtype=torch.float32))
        self.register_buffer("level", torch.tensor(0.0))
        # the reference pose: centroid x, y and the principal axis as (cos 2a, sin 2a)
        self.register_buffer("ref", torch.tensor([0.0, 0.0, 1.0, 0.0]))

    def moments(self, c: torch.Tensor) -> torch.Tensor:
        """[B,4]: the foreground's centroid x, y and its principal axis as the unit vector
        (cos 2a, sin 2a) (from the second central moments; (1, 0) for an isotropic one)."""
        fg = (c > self.level).to(c.dtype)
        m0 = fg.flatten(1).sum(1).clamp_min(1.0)
        cx = (fg * self.xx).flatten(1).sum(1) / m0
        cy = (fg * self.yy).flatten(1).sum(1) / m0
        dx = self.xx - cx[:, None, None]
        dy = self.yy - cy[:, None, None]
        a = ((fg * dx * dx).flatten(1).sum(1) - (fg * dy * dy).flatten(1).sum(1)) / m0
        b = 2 * (fg * dx * dy).flatten(1).sum(1) / m0
        n = torch.sqrt(a * a + b * b)
        iso = (n < 1e-9).to(c.dtype)
        n = n + iso
        return torch.stack([cx, cy, a / n + iso, b / n * (1 - iso)], dim=1)

    @torch.no_grad()
    def fit(self, c: torch.Tensor) -> None:
        """c: the training parts' pose channel [N,H,W]: the foreground level (Otsu) and the
        reference pose (mean centroid, mean axis)."""
        self.level.fill_(otsu_level(c, max_n=None))
        m = self.moments(c)
        ax = m[:, 2:].mean(0)
        ax = ax / ax.norm().clamp_min(1e-12) if float(ax.norm()) > 1e-9 else torch.tensor([1.0, 0.0])
        self.ref.copy_(torch.cat([m[:, :2].mean(0), ax]))

    def _rotation(self, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of the part's rotation from the reference (half the angle between the
        axes' doubled-angle vectors, so within +-90 degrees); 0 rotation in ``shift`` mode."""
        if self.mode == "shift":
            one = torch.ones_like(m[:, 0])
            return one, torch.zeros_like(one)
        c2 = m[:, 2] * self.ref[2] + m[:, 3] * self.ref[3]  # cos 2d
        s2 = m[:, 3] * self.ref[2] - m[:, 2] * self.ref[3]  # sin 2d
        cos = torch.sqrt(((1 + c2) / 2).clamp_min(0.0))
        sin = torch.sqrt(((1 - c2) / 2).clamp_min(0.0)) * torch.where(s2 < 0, -torch.ones_like(s2), torch.ones_like(s2))
        return cos, sin

    def grids(self, c: torch.Tensor, jitter: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """From a batch's pose channel [B,H,W]: the sampling grids [B,H,W,2] that take the
        part to the canonical frame and the canonical frame back to the part's. ``jitter``
        [B,3] (pixels along x and y, radians; training only): a small rigid motion composed
        with each part's estimated pose."""
        m = self.moments(c)
        cos, sin = self._rotation(m)
        cx, cy = m[:, 0, None, None], m[:, 1, None, None]
        rx, ry = self.ref[0], self.ref[1]
        cos, sin = cos[:, None, None], sin[:, None, None]
        if jitter is not None:
            half = max(self.xx.shape) / 2.0  # pixels per isotropic unit
            tx, ty = (jitter[:, 0] / half)[:, None, None], (jitter[:, 1] / half)[:, None, None]
            th = jitter[:, 2, None, None]
            cx, cy = cx + cos * tx - sin * ty, cy + sin * tx + cos * ty
            cos, sin = cos * torch.cos(th) - sin * torch.sin(th), sin * torch.cos(th) + cos * torch.sin(th)
        # canonical point p -> the part's point R (p - ref) + c
        px, py = self.xx - rx, self.yy - ry
        fx = cos * px - sin * py + cx
        fy = sin * px + cos * py + cy
        # the part's point q -> canonical R^T (q - c) + ref
        qx, qy = self.xx - cx, self.yy - cy
        bx = cos * qx + sin * qy + rx
        by = -sin * qx + cos * qy + ry
        to_canonical = torch.stack([fx * self.to_grid[0], fy * self.to_grid[1]], dim=-1)
        to_part = torch.stack([bx * self.to_grid[0], by * self.to_grid[1]], dim=-1)
        return to_canonical, to_part

    @staticmethod
    def warp(x: torch.Tensor, grid: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


# Tukey's biweight constant (95 % efficiency under normal residuals) and the reweighting steps
TUKEY_C = 4.685
LEVEL_STEPS = 4


class LevelMatch(nn.Module):
    """An aligned image taken relative to the part's own level: per part, the gain b and
    offset a of ``y ~ a + b * ref`` are fitted against ``ref``, the training parts' mean
    aligned image, by least squares reweighted with Tukey's biweight (``LEVEL_STEPS``
    steps), and the image becomes ``(y - a) / b``, in the reference's units.

    For a thermal image: a part's overall temperature depends on how long ago the process
    warmed it (the simulator's lid: 8 +- 1.2 K over ambient), which scales its whole
    radiance above the background. A per-place model reads a part 3 standard deviations
    cooler than the training parts as anomalous all along its edges (on 400 fresh good
    lids, the ir student's three highest were such parts). A local rise (a hot spot) is
    not a gain: the reweighting leaves it, and anything else the reference does not
    explain, out of the fit. The residual scale is fitted on the training parts: the root
    mean square of their plain least-squares residuals, so that the biweight rejects
    only what stands far out of an ordinary part's residual."""

    def __init__(self, size: tuple[int, int]):
        super().__init__()
        self.register_buffer("ref", torch.zeros(*size))
        self.register_buffer("scale", torch.tensor(1.0))

    @staticmethod
    def _line(y: torch.Tensor, r: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted least squares of y [B,P] ~ a + b * r [1,P] with weights w [B,P]: a [B], b [B]."""
        sw = w.sum(1).clamp_min(1e-6)
        sr, sy = (w * r).sum(1), (w * y).sum(1)
        srr, sry = (w * r * r).sum(1), (w * r * y).sum(1)
        b = (sw * sry - sr * sy) / (sw * srr - sr * sr).clamp_min(1e-12)
        return (sy - b * sr) / sw, b

    def coefficients(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y [B,H,W] -> offset a [B] and gain b [B] (b at least 0.05: an empty frame stays finite)."""
        r = self.ref.flatten()[None]
        y = y.flatten(1)
        a, b = self._line(y, r, torch.ones_like(y))
        for _ in range(LEVEL_STEPS):
            u = (y - a[:, None] - b[:, None] * r) / (TUKEY_C * self.scale)
            a, b = self._line(y, r, (1 - u * u).clamp_min(0.0) ** 2)
        return a, b.clamp_min(0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B,C,H,W] (the channels alike: the ir input is one channel replicated)."""
        a, b = self.coefficients(x[:, 0])
        return (x - a[:, None, None, None]) / b[:, None, None, None]

    @torch.no_grad()
    def fit(self, y: torch.Tensor) -> None:
        """y: the training parts' aligned image [N,H,W]: the reference (their mean) and the
        residual scale (the root mean square of their plain least-squares fits' residuals)."""
        self.ref.copy_(y.mean(0))
        r = self.ref.flatten()[None]
        yf = y.flatten(1)
        # the centred form of _line's unweighted fit (it sets the shipped students' scale)
        rc = r - r.mean()
        b = ((yf - yf.mean(1, keepdim=True)) * rc).sum(1) / (rc * rc).sum().clamp_min(1e-12)
        a = yf.mean(1) - b * r.mean()
        res = yf - a[:, None] - b[:, None] * r
        self.scale.fill_(max(float(res.pow(2).mean().sqrt()), 1e-6))

"""In-graph input preprocessing: raw sensor values in, a 3-channel normalised tensor out.

These modules are part of every exported model, so the service feeds raw values:
rgb 0..255, ir 0..65535, xyz metres with 0,0,0 for a missing point, ct a volume of raw
16-bit counts. Statistics are buffers fitted on training good parts (``fit``) and travel
inside the ONNX file.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# the rgb response curve's default exponent (train --rgb-gamma; models/README.md, "The rgb response curve")
RGB_GAMMA = 0.33


def check_rgb_gamma(gamma: float) -> float:
    """``gamma`` as the rgb response curve's exponent; ValueError outside (0, 1]."""
    if not 0 < gamma <= 1:
        raise ValueError(f"rgb gamma {gamma}: must be in (0, 1]")
    return float(gamma)


class RgbInput(nn.Module):
    """((x / 255) ** gamma - mean) / std per channel (``set_gamma``; gamma 1: linear)."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.gamma = 1.0

    def set_gamma(self, gamma: float) -> None:
        """The response curve the teacher sees: each value (0..1) raised to ``gamma``. Below 1
        it lifts dark detail and compresses the bright end, as a camera's gamma does: a dark
        part's texture gains contrast, and a specular highlight, which moves from part to part
        with the pose, takes less of it. Part of the graph."""
        self.gamma = check_rgb_gamma(gamma)

    def curve(self, raw: torch.Tensor) -> torch.Tensor:
        """``raw`` (0..255) as 0..1 values through the response curve."""
        x = raw / 255.0
        return x if self.gamma == 1.0 else x.clamp_min(0) ** self.gamma

    def fit(self, raw: torch.Tensor) -> None:
        x = self.curve(raw)
        self.mean.copy_(x.mean(dim=(0, 2, 3)).view(1, 3, 1, 1))
        self.std.copy_(x.std(dim=(0, 2, 3)).clamp_min(1e-3).view(1, 3, 1, 1))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return (self.curve(raw) - self.mean) / self.std

    def describe(self) -> dict:
        d = {"scale": 1 / 255.0, "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}
        if self.gamma != 1.0:
            d["gamma"] = self.gamma
        return d


SOFT_CLIP = 3.0


def _robust_stats(values: torch.Tensor, max_n: int = 1 << 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Median and interquartile range / 1.349 (the standard deviation of a normal sample)
    of a 1-d tensor, on a seeded subsample when it is large."""
    if values.numel() > max_n:
        g = torch.Generator().manual_seed(0)
        values = values[torch.randint(values.numel(), (max_n,), generator=g)]
    q = torch.quantile(values.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).float()
    return q[1], (q[2] - q[0]) / 1.349


def soft_clip(z: torch.Tensor, c: float = SOFT_CLIP) -> torch.Tensor:
    """c * tanh(z / c): the identity near 0, saturating at +-c."""
    return c * torch.tanh(z / c)


class IrInput(nn.Module):
    """(x / 65535 - mean) / std, replicated to 3 channels so that any teacher accepts it.

    ``robust``: mean = median and std = interquartile range / 1.349 of the training
    pixels, then a soft clip at +-3. A thermal image is mostly background and part
    surface a few hundred counts apart, with terminals thousands of counts brighter: the
    plain standard deviation is set by the terminals and a hot spot of a hundred counts
    on the surface all but vanishes; the robust scale is set by the surface, and the
    soft clip keeps the terminals from dominating the teacher's input.
    """

    def __init__(self, mean: float = 0.5, std: float = 0.25, robust: bool = False):
        super().__init__()
        self.robust = robust
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def fit(self, raw: torch.Tensor) -> None:
        x = raw / 65535.0
        if self.robust:
            med, scale = _robust_stats(x.flatten())
            self.mean.copy_(med)
            self.std.copy_(scale.clamp_min(1e-5))
        else:
            self.mean.copy_(x.mean())
            self.std.copy_(x.std().clamp_min(1e-4))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = (raw / 65535.0 - self.mean) / self.std
        if self.robust:
            x = soft_clip(x)
        return x.expand(-1, 3, -1, -1)

    def describe(self) -> dict:
        d = {"scale": 1 / 65535.0, "mean": [float(self.mean)], "std": [float(self.std)]}
        if self.robust:
            d.update(statistics="median, interquartile range / 1.349", softClip=SOFT_CLIP)
        return d


def _solve3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solves batched 3x3 systems a x = b by the adjugate (exports to plain ONNX ops)."""
    a00, a01, a02 = a[:, 0, 0], a[:, 0, 1], a[:, 0, 2]
    a10, a11, a12 = a[:, 1, 0], a[:, 1, 1], a[:, 1, 2]
    a20, a21, a22 = a[:, 2, 0], a[:, 2, 1], a[:, 2, 2]
    c00 = a11 * a22 - a12 * a21
    c01 = a02 * a21 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    c10 = a12 * a20 - a10 * a22
    c11 = a00 * a22 - a02 * a20
    c12 = a02 * a10 - a00 * a12
    c20 = a10 * a21 - a11 * a20
    c21 = a01 * a20 - a00 * a21
    c22 = a00 * a11 - a01 * a10
    det = a00 * c00 + a01 * c10 + a02 * c20
    det = torch.where(det.abs() < 1e-20, torch.full_like(det, 1e-20), det)
    b0, b1, b2 = b[:, 0], b[:, 1], b[:, 2]
    return torch.stack(
        [(c00 * b0 + c01 * b1 + c02 * b2) / det, (c10 * b0 + c11 * b1 + c12 * b2) / det,
         (c20 * b0 + c21 * b1 + c22 * b2) / det], dim=1)


# XyzInput(face=True): the Tukey refits' scales, times the fitted face_c0
FACE_REFITS = (1.0, 0.5, 0.25, 0.125, 0.125)
# the floor of the fitted face scales: 0.1 um, about float32's resolution of a depth of 1 m
FACE_FLOOR_M = 1e-7


def otsu_level(values: torch.Tensor, bins: int = 256, max_n: int | None = 1 << 22) -> float:
    """Otsu's threshold of a tensor's values: the bin edge of a ``bins``-bin histogram that
    maximises the between-class variance (on a seeded subsample of ``max_n`` when it is
    larger; None: all of them)."""
    values = values.flatten()
    if max_n is not None and values.numel() > max_n:
        g = torch.Generator().manual_seed(0)
        values = values[torch.randint(values.numel(), (max_n,), generator=g)]
    v = values.double()
    if v.numel() == 0:
        return 0.0
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    hist = torch.histc(v, bins=bins, min=lo, max=hi)
    centres = lo + (torch.arange(bins, dtype=torch.float64) + 0.5) * (hi - lo) / bins
    w0 = torch.cumsum(hist, 0)[:-1]  # the class below the edge after bin i
    m0 = torch.cumsum(hist * centres, 0)[:-1]
    w1 = hist.sum() - w0
    m1 = (hist * centres).sum() - m0
    between = w0 * w1 * (m0 / w0.clamp_min(1) - m1 / w1.clamp_min(1)) ** 2
    # every edge in an empty gap between the classes splits them alike: the gap's middle
    best = between >= between.max() * (1 - 1e-9)
    i0 = int(torch.argmax(best.to(torch.int8)))
    i1 = i0
    while i1 + 1 < len(best) and best[i1 + 1]:
        i1 += 1
    return lo + ((i0 + i1) / 2 + 1) * (hi - lo) / bins


class XyzInput(nn.Module):
    """Geometric descriptors of an organized point cloud: height above the support plane
    and the x, y components of the surface normal, each standardised; 0 where missing.

    The support plane z = a x + b y + c is fitted per sample on the valid points of a
    border strip by weighted least squares, then refitted on the points within
    ``inlier_m`` of the first fit (one robust step; RANSAC does not export to a graph).
    Heights and normals make the descriptors invariant to the part's distance and the
    plane's tilt; a missing point never becomes a value other than 0.

    ``face``: the height channel becomes the height relative to the part's dominant face,
    signed-log compressed. Per sample, the part is the valid points higher than
    ``part_level``; a plane h = a x + b y + c is fitted to their heights by least squares,
    then refitted 5 times with Tukey biweights of the residual at the scales
    ``face_c0 * (1, 1/2, 1/4, 1/8, 1/8)``, so the terminals and other features standing on
    the face drop out; r = height - plane (0 where missing) becomes
    sign(r) * log1p(|r| / ``face_s0``): linear within the face's noise level, logarithmic
    beyond, so a fraction of a millimetre on the face is no longer a small fraction of the
    millimetres the features stand above it, and the face's tilt from part to part is
    gone. ``fit`` sets the three from the training parts: ``part_level`` an Otsu threshold
    of the heights, ``face_c0`` the standard deviation of the heights above it, ``face_s0``
    1.4826 x the median |r| over the part's points. Suits parts with one dominant face.
    """

    def __init__(self, size: tuple[int, int], border: int | None = None, inlier_m: float = 0.004,
                 face: bool = False):
        super().__init__()
        h, w = size
        bw = border if border is not None else max(1, round(min(h, w) / 80))  # 10 px at 800 px
        strip = torch.zeros(1, 1, h, w)
        strip[..., :bw, :] = 1
        strip[..., -bw:, :] = 1
        strip[..., :, :bw] = 1
        strip[..., :, -bw:] = 1
        self.register_buffer("strip", strip)
        self.inlier_m = inlier_m
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("std", torch.ones(3))
        self.face = face
        if face:  # placeholders until ``fit``; only then in the state, so other checkpoints load as before
            self.register_buffer("part_level", torch.tensor(0.0))
            self.register_buffer("face_c0", torch.tensor(1e-3))
            self.register_buffer("face_s0", torch.tensor(1e-5))

    def _fit(self, x, y, z, w):
        ones = torch.ones_like(x)
        feats = torch.stack([x, y, ones], dim=1).flatten(2)  # [B,3,N]
        wf = w.flatten(1).unsqueeze(1)  # [B,1,N]
        a = torch.matmul(feats * wf, feats.transpose(1, 2))  # [B,3,3]
        a = a + 1e-9 * torch.eye(3, dtype=x.dtype, device=x.device).unsqueeze(0)
        b = (feats * wf * z.flatten(1).unsqueeze(1)).sum(-1)  # [B,3]
        return _solve3(a, b)

    def descriptors(self, raw: torch.Tensor) -> torch.Tensor:
        """Un-standardised [height_m, nx, ny] (with ``face``: [height to the face, signed-log,
        nx, ny]) and the validity mask."""
        d, v = self._plane_descriptors(raw)
        if self.face:
            r, _part = self.face_residual(raw, d[:, 0], v[:, 0])
            slog = torch.sign(r) * torch.log1p(r.abs() / self.face_s0)
            d = torch.stack([slog, d[:, 1], d[:, 2]], dim=1)
        return d, v

    def face_residual(self, raw: torch.Tensor, height: torch.Tensor, valid: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B,H,W] height minus the plane of the part's dominant face (0 where missing) and
        the part's mask (valid and higher than ``part_level``)."""
        x, y, z = raw[:, 0], raw[:, 1], raw[:, 2]
        part = valid * (height > self.part_level).to(raw.dtype)
        # The height is the support plane minus z and the support plane is a plane in x, y, so
        # the height's residual to a plane fitted in x, y is exactly that of -z: the fit runs
        # on -z minus its mean over the part. Computed as plane - z, the height is rounded to
        # float32's step at the depth (60 nm at 0.5 m), differently in PyTorch and in the ONNX
        # runtime (measured: up to 0.01 apart after the log at a 5 um noise level, 5e-5 on -z);
        # z minus a value near it is exact. Centred x, y and z keep the 3x3 systems well conditioned.
        n = part.flatten(1).sum(1).clamp_min(1.0)
        x = x - ((x * part).flatten(1).sum(1) / n)[:, None, None]
        y = y - ((y * part).flatten(1).sum(1) / n)[:, None, None]
        h = ((z * part).flatten(1).sum(1) / n)[:, None, None] - z

        def residual(coef):
            return h - (coef[:, 0, None, None] * x + coef[:, 1, None, None] * y + coef[:, 2, None, None])

        coef = self._fit(x, y, h, part)
        for k in FACE_REFITS:
            u = (residual(coef) / (self.face_c0 * k)).clamp(-1.0, 1.0)
            w = part * (1 - u * u) ** 2
            # a refit on too few points keeps the previous plane
            enough = (w.flatten(1).sum(1) >= 3).to(raw.dtype)[:, None]
            coef = enough * self._fit(x, y, h, w) + (1 - enough) * coef
        return residual(coef) * valid, part

    def _plane_descriptors(self, raw: torch.Tensor) -> torch.Tensor:
        """Un-standardised [height_m, nx, ny] and the validity mask."""
        x, y, z = raw[:, 0], raw[:, 1], raw[:, 2]  # [B,H,W]
        valid = (raw.abs().sum(1) > 0).to(raw.dtype)
        w = valid * self.strip[:, 0]
        coef = self._fit(x, y, z, w)
        plane = coef[:, 0, None, None] * x + coef[:, 1, None, None] * y + coef[:, 2, None, None]
        inl = w * ((z - plane).abs() < self.inlier_m).to(raw.dtype)
        enough = (inl.flatten(1).sum(1) >= 6).to(raw.dtype)[:, None, None]
        coef2 = self._fit(x, y, z, inl)
        plane2 = coef2[:, 0, None, None] * x + coef2[:, 1, None, None] * y + coef2[:, 2, None, None]
        plane = enough * plane2 + (1 - enough) * plane
        # Without any border support (a cloud whose plane was already removed) heights are
        # taken from the mean depth of the valid points instead.
        has_plane = (w.flatten(1).sum(1) >= 6).to(raw.dtype)[:, None, None]
        zmean = (z * valid).flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1.0)
        plane = has_plane * plane + (1 - has_plane) * zmean[:, None, None]
        height = (plane - z) * valid
        # Surface normal from central differences of the organized grid.
        p = raw * valid.unsqueeze(1)
        pad = nn.functional.pad(p, (1, 1, 1, 1), mode="replicate")
        vpad = nn.functional.pad(valid.unsqueeze(1), (1, 1, 1, 1))
        dx = pad[:, :, 1:-1, 2:] - pad[:, :, 1:-1, :-2]
        dy = pad[:, :, 2:, 1:-1] - pad[:, :, :-2, 1:-1]
        nvalid = valid * vpad[:, 0, 1:-1, 2:] * vpad[:, 0, 1:-1, :-2] * vpad[:, 0, 2:, 1:-1] * vpad[:, 0, :-2, 1:-1]
        n = torch.cross(dx, dy, dim=1)
        n = n / n.norm(dim=1, keepdim=True).clamp_min(1e-12)
        sign = torch.where(n[:, 2:3] > 0, -torch.ones_like(n[:, 2:3]), torch.ones_like(n[:, 2:3]))
        n = n * sign * nvalid.unsqueeze(1)
        return torch.stack([height, n[:, 0], n[:, 1]], dim=1), valid.unsqueeze(1)

    @torch.no_grad()
    def fit_face(self, raw: torch.Tensor) -> None:
        """``part_level``, ``face_c0`` and ``face_s0`` from the training parts (see the class)."""
        d, v = self._plane_descriptors(raw)
        height, valid = d[:, 0], v[:, 0]
        h = height[valid.bool()]
        level = otsu_level(h)
        self.part_level.fill_(level)
        above = h[h > level]
        self.face_c0.fill_(max(float(above.std()) if above.numel() > 1 else 0.0, FACE_FLOOR_M))
        r, part = self.face_residual(raw, height, valid)
        on = r[part.bool()].abs()
        self.face_s0.fill_(max(1.4826 * float(on.median()) if on.numel() else 0.0, FACE_FLOOR_M))

    def fit(self, raw: torch.Tensor) -> None:
        if self.face:  # before the statistics, which are those of the face channel
            self.fit_face(raw)
        d, v = self.descriptors(raw)
        m = v.expand_as(d).bool()
        # Mean and standard deviation, not IrInput's robust statistics: measured on the
        # simulator's development parts, the robust scale found the wide bulges (image AUROC
        # 0.54 -> 0.83) but the soft clip flattened cracks and steps (0.88 -> 0.47).
        for c in range(3):
            vals = d[:, c][m[:, c]]
            self.mean[c] = vals.mean()
            self.std[c] = vals.std().clamp_min(1e-6)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        d, v = self.descriptors(raw)
        return (d - self.mean.view(1, 3, 1, 1)) / self.std.view(1, 3, 1, 1) * v

    def describe(self) -> dict:
        first = "height_to_face_slog" if self.face else "height_above_plane_m"
        d = {"descriptors": [first, "normal_x", "normal_y"],
             "mean": self.mean.tolist(), "std": self.std.tolist(), "missing": "0,0,0"}
        if self.face:
            d["face"] = {"partLevelM": float(self.part_level), "tukeyScaleM": float(self.face_c0),
                         "refitScales": list(FACE_REFITS), "s0M": float(self.face_s0),
                         "value": "sign(r) * log1p(|r| / s0), r = height above the support plane - the plane "
                                  "of the part's points higher than partLevelM, Tukey-reweighted"}
        return d


CT_GRID = (32, 128, 128)  # the simulator's default grid (depth x height x width)


class CtInput(nn.Module):
    """A CT volume [B,1,D,Hc,Wc] of raw counts -> three projections per column on the 2D
    frame [B,3,H,W], standardised; 2.5D, so the volume goes through the same 2D teacher,
    memory bank and scorer as the images (a volumetric encoder costs too much on a CPU).

    * density d = (x - air) / (material - air), the two levels fitted on training volumes
      (``fit``: the medians of the voxels below and above the midpoint of the 2nd and 98th
      percentiles), so d is ~0 in air and ~1 in the part's material;
    * **mass**: the mean of d over the column: surface defects that add or remove material
      (dents, bulges, pockets, spatter);
    * **interior minimum** and **interior maximum** of d over the column's voxels strictly
      inside the material, i.e. with material (d > 0.5) both below and above them (counted by
      cumulative sums from below and from above: plain ONNX ops, and the partial-volume
      voxels of the faces never count): a void or pores lower the minimum, a dense inclusion
      raises the maximum, while the faces' partial volume moves neither. A column without
      interior voxels takes 1 (plain material) in both;
    * each channel standardised by its mean and standard deviation over the training
      volumes' columns, then upsampled bilinearly to the model's H x W: the volume covers the
      2D frames' field of view, so the map is drawn in the 2D frame.

    ``depth``: per column, the slice of its strongest interior deviation from the material
    (ArgMax of |d - 1| over the interior voxels; 0 where there are none), upsampled nearest
    to H x W: the ``anomaly_depth`` output.
    """

    DESCRIPTORS = ("mass_mean_density", "interior_min_density", "interior_max_density")

    def __init__(self, size: tuple[int, int], grid: tuple[int, int, int] | None = None):
        super().__init__()
        self.size = tuple(size)
        self.grid = tuple(grid or CT_GRID)
        self.register_buffer("air", torch.tensor(1000.0))
        self.register_buffer("material", torch.tensor(17200.0))
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("std", torch.ones(3))

    def density(self, raw: torch.Tensor) -> torch.Tensor:
        """[B,D,Hc,Wc] density, 0 air, 1 material."""
        return (raw[:, 0] - self.air) / (self.material - self.air)

    @staticmethod
    def interior(d: torch.Tensor) -> torch.Tensor:
        """[B,D,Hc,Wc] 1.0 where a voxel has material both below and above it in its column."""
        solid = (d > 0.5).to(d.dtype)
        below = torch.cumsum(solid, dim=1) - solid  # material voxels strictly below
        above = solid.sum(dim=1, keepdim=True) - torch.cumsum(solid, dim=1)  # strictly above
        return ((below > 0) & (above > 0)).to(d.dtype)

    def descriptors(self, raw: torch.Tensor) -> torch.Tensor:
        """Un-standardised [mass, interior min, interior max] at the volume's grid: [B,3,Hc,Wc]."""
        d = self.density(raw)
        inside = self.interior(d)
        has = inside.amax(dim=1) > 0
        one = torch.ones_like(d[:, 0])
        lo = torch.where(inside > 0, d, torch.full_like(d, 1e4)).amin(dim=1)
        hi = torch.where(inside > 0, d, torch.full_like(d, -1e4)).amax(dim=1)
        lo = torch.where(has, lo, one)
        hi = torch.where(has, hi, one)
        return torch.stack([d.mean(dim=1), lo, hi], dim=1)

    @torch.no_grad()
    def fit(self, raw: torch.Tensor, batch: int = 16) -> None:
        vals = raw.flatten()
        if vals.numel() > 1 << 22:  # a seeded subsample: the levels are percentiles
            g = torch.Generator().manual_seed(0)
            vals = vals[torch.randint(vals.numel(), (1 << 22,), generator=g)]
        q = torch.quantile(vals.double(), torch.tensor([0.02, 0.98], dtype=torch.float64)).float()
        mid = (q[0] + q[1]) / 2
        lo, hi = vals[vals < mid], vals[vals >= mid]
        if len(lo) and len(hi):
            self.air.copy_(lo.median())
            self.material.copy_(hi.median())
        if float(self.material - self.air) < 1.0:  # one level only: keep the scale finite
            self.material.copy_(self.air + 1.0)
        d = torch.cat([self.descriptors(raw[i:i + batch]) for i in range(0, len(raw), batch)])
        self.mean.copy_(d.mean(dim=(0, 2, 3)))
        self.std.copy_(d.std(dim=(0, 2, 3)).clamp_min(1e-4))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        z = (self.descriptors(raw) - self.mean.view(1, 3, 1, 1)) / self.std.view(1, 3, 1, 1)
        return nn.functional.interpolate(z, size=self.size, mode="bilinear", align_corners=False)

    def depth(self, raw: torch.Tensor) -> torch.Tensor:
        """[B,1,H,W] float slice index (0 = the centre of the lowest slice) of each column's
        strongest interior deviation |d - 1|; 0 for a column without interior voxels."""
        d = self.density(raw)
        inside = self.interior(d)
        dev = torch.where(inside > 0, (d - 1).abs(), -torch.ones_like(d))
        idx = torch.argmax(dev, dim=1, keepdim=True).to(d.dtype)  # [B,1,Hc,Wc]
        idx = idx * (inside.amax(dim=1, keepdim=True) > 0).to(d.dtype)
        return nn.functional.interpolate(idx, size=self.size, mode="nearest")

    def example(self, batch: int = 1) -> torch.Tensor:
        """A zero volume of the model's grid (shapes only)."""
        return torch.zeros(batch, 1, *self.grid)

    def describe(self) -> dict:
        return {"descriptors": list(self.DESCRIPTORS), "air": float(self.air), "material": float(self.material),
                "density": "(x - air) / (material - air)", "interior": "density > 0.5 both below and above the voxel",
                "mean": self.mean.tolist(), "std": self.std.tolist(), "upsample": "bilinear to height x width"}


def build_input(modality: str, size: tuple[int, int], ir_robust: bool = False,
                ct_grid: tuple[int, int, int] | None = None, xyz_face: bool = False) -> nn.Module:
    """``ir_robust``: the ir input standardised by median and interquartile range, soft-clipped
    (``IrInput``); ``ct_grid``: the depth x height x width of the ct volumes (``CtInput``);
    ``xyz_face``: the xyz height relative to the part's dominant face, signed-log (``XyzInput``)."""
    if modality == "rgb":
        return RgbInput()
    if modality == "ir":
        return IrInput(robust=ir_robust)
    if modality == "xyz":
        return XyzInput(size, face=xyz_face)
    if modality == "ct":
        return CtInput(size, ct_grid)
    raise ValueError(f"unknown modality {modality!r}")

"""A formula-driven image corpus rendered in batches on any torch device (GPU or CPU).

No real image and nothing downloaded: four families of generated images, after the
literature on pre-training without real images (FractalDB; Baradad et al., "Learning to
see by looking at noise"):

* ``dead_leaves``: occluding discs and rectangles with power-law sizes, each filled with a
  colour and an oriented sinusoidal texture (edges, corners, occlusions, texture borders);
* ``spectral``: coloured 1/f^a noise, anisotropic (surface-like grain and streaks);
* ``cppn``: a random small network of sines and tanh over the pixel coordinates, warped
  (smooth shapes, periodic structure, sharp transitions);
* ``fractal``: iterated-function-system fractals of a fixed set of classes (FractalDB's
  sampling), drawn over a dead-leaves background.

Every image is 3 x size x size, roughly in [0, 1]. ``views`` makes two augmented views of
a batch (random resized crops, flips, colour changes), for contrastive pre-training.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

FAMILIES = ("dead_leaves", "spectral", "cppn", "fractal")


def _grid(n: int, size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    t = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
    y, x = torch.meshgrid(t, t, indexing="ij")
    return x.expand(n, size, size), y.expand(n, size, size)


def _u(g: torch.Generator, *shape, lo=0.0, hi=1.0, device=None) -> torch.Tensor:
    return torch.rand(*shape, generator=g, device=device) * (hi - lo) + lo


def dead_leaves(n: int, size: int, g: torch.Generator, shapes: int = 96) -> torch.Tensor:
    dev = g.device
    x, y = _grid(n, size, dev)
    img = _u(g, n, 3, 1, 1, device=dev).expand(n, 3, size, size).clone()
    # drawn back to front: sizes from a power law (density 1/r^2: many small, some large)
    rmin, rmax = 0.02, 0.4
    for _ in range(shapes):
        u = _u(g, n, 1, 1, device=dev)
        r = 1.0 / (1.0 / rmin + u * (1.0 / rmax - 1.0 / rmin))
        cx, cy = _u(g, n, 1, 1, device=dev), _u(g, n, 1, 1, device=dev)
        disc = (x - cx) ** 2 + (y - cy) ** 2 < r ** 2
        ang = _u(g, n, 1, 1, hi=math.pi, device=dev)
        dx, dy = x - cx, y - cy
        rx = (dx * torch.cos(ang) + dy * torch.sin(ang)).abs()
        ry = (-dx * torch.sin(ang) + dy * torch.cos(ang)).abs()
        aspect = _u(g, n, 1, 1, lo=0.3, hi=1.0, device=dev)
        rect = (rx < r) & (ry < r * aspect)
        mask = torch.where(_u(g, n, 1, 1, device=dev) < 0.5, disc, rect).unsqueeze(1)
        colour = _u(g, n, 3, 1, 1, device=dev)
        freq = _u(g, n, 1, 1, lo=2.0, hi=40.0, device=dev).unsqueeze(1)
        phase = _u(g, n, 1, 1, hi=2 * math.pi, device=dev).unsqueeze(1)
        tex_ang = _u(g, n, 1, 1, hi=math.pi, device=dev).unsqueeze(1)
        stripes = torch.sin(2 * math.pi * freq * (x.unsqueeze(1) * torch.cos(tex_ang) + y.unsqueeze(1) * torch.sin(tex_ang)) + phase)
        amp = _u(g, n, 1, 1, 1, hi=0.25, device=dev) * (_u(g, n, 1, 1, 1, device=dev) < 0.6)
        img = torch.where(mask, colour + amp * stripes, img)
    return img


def spectral(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    dev = g.device
    f = torch.fft.fftfreq(size, device=dev)
    fy, fx = torch.meshgrid(f, f, indexing="ij")
    ang = _u(g, n, 1, 1, hi=math.pi, device=dev)
    stretch = _u(g, n, 1, 1, lo=1.0, hi=6.0, device=dev)
    u = fx * torch.cos(ang) + fy * torch.sin(ang)
    v = -fx * torch.sin(ang) + fy * torch.cos(ang)
    rad = torch.sqrt(u ** 2 + (v * stretch) ** 2) + 1.0 / size
    alpha = _u(g, n, 1, 1, lo=1.0, hi=3.0, device=dev)
    amp = rad ** (-alpha)
    out = []
    for _ in range(2):  # two independent fields, mixed into three channels
        noise = torch.randn(n, size, size, generator=g, device=dev)
        field = torch.fft.ifft2(torch.fft.fft2(noise) * amp).real
        field = (field - field.mean((1, 2), keepdim=True)) / (field.std((1, 2), keepdim=True) + 1e-6)
        out.append(field)
    mix = torch.randn(n, 3, 2, generator=g, device=dev) * 0.15
    img = torch.einsum("ncf,nfhw->nchw", mix, torch.stack(out, 1)) + _u(g, n, 3, 1, 1, lo=0.2, hi=0.8, device=dev)
    return img


def cppn(n: int, size: int, g: torch.Generator, hidden: int = 16, layers: int = 4) -> torch.Tensor:
    dev = g.device
    x, y = _grid(n, size, dev)
    x, y = x * 2 - 1, y * 2 - 1
    # a smooth random warp of the coordinates first
    warp = _u(g, n, 2, 1, 1, hi=0.4, device=dev)
    wf = _u(g, n, 2, 1, 1, lo=1.0, hi=6.0, device=dev)
    x = x + warp[:, 0] * torch.sin(wf[:, 0] * y * math.pi)
    y = y + warp[:, 1] * torch.sin(wf[:, 1] * x * math.pi)
    h = torch.stack([x, y, torch.sqrt(x ** 2 + y ** 2)], 1).flatten(2)  # n, 3, hw
    scale = _u(g, n, 1, 1, lo=1.0, hi=4.0, device=dev)
    cin = 3
    for i in range(layers):
        w = torch.randn(n, hidden, cin, generator=g, device=dev) * scale / math.sqrt(cin)
        b = torch.randn(n, hidden, 1, generator=g, device=dev)
        h = torch.bmm(w, h) + b
        h = torch.sin(h) if i % 2 == 0 else torch.tanh(h)
        cin = hidden
    w = torch.randn(n, 3, cin, generator=g, device=dev) / math.sqrt(cin) * 2
    img = torch.sigmoid(torch.bmm(w, h)).view(n, 3, size, size)
    return img


def fractal_systems(classes: int, seed: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``classes`` random contractive IFS of 4 maps (unused maps have probability 0):
    maps [C, 4, 6] (a 2x2 matrix and a shift) and probabilities [C, 4]."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.zeros(classes, 4, 6)
    probs = torch.zeros(classes, 4)
    for c in range(classes):
        k = int(torch.randint(2, 5, (1,), generator=g))
        while True:
            a = torch.rand(k, 2, 2, generator=g) * 2 - 1
            s = torch.linalg.svdvals(a)
            a = a * (1.4 + 0.8 * float(torch.rand(1, generator=g))) / s.sum()
            if (torch.linalg.svdvals(a)[:, 0] < 0.95).all():
                break
        maps[c, :k, :4] = a.reshape(k, 4)
        maps[c, :k, 4:] = torch.rand(k, 2, generator=g) * 2 - 1
        p = torch.linalg.det(a).abs() + 1e-3
        probs[c, :k] = p / p.sum()
    return maps.to(device), probs.to(device)


def fractal(labels: torch.Tensor, systems: tuple[torch.Tensor, torch.Tensor], size: int, g: torch.Generator,
            points: int = 24576, steps: int = 32) -> torch.Tensor:
    """The chaos game for each label's system (maps jittered by 10 %), over dead leaves."""
    dev = g.device
    maps, probs = systems
    n = len(labels)
    m = maps[labels] * torch.cat([_u(g, n, 4, 4, lo=0.9, hi=1.1, device=dev), torch.ones(n, 4, 2, device=dev)], 2)
    chains = points // (steps - 8)
    p = _u(g, n, chains, 2, lo=-1.0, hi=1.0, device=dev)
    acc = []
    for t in range(steps):
        k = torch.multinomial(probs[labels], chains, replacement=True, generator=g)  # n, chains
        mk = torch.gather(m, 1, k.unsqueeze(-1).expand(n, chains, 6))
        p = torch.stack([mk[..., 0] * p[..., 0] + mk[..., 1] * p[..., 1] + mk[..., 4],
                         mk[..., 2] * p[..., 0] + mk[..., 3] * p[..., 1] + mk[..., 5]], -1)
        if t >= 8:
            acc.append(p)
    pts = torch.cat(acc, 1)  # n, P, 2
    lo = torch.quantile(pts, 0.01, dim=1, keepdim=True)
    hi = torch.quantile(pts, 0.99, dim=1, keepdim=True)
    pts = (pts - lo) / (hi - lo).clamp_min(1e-6)
    ang = _u(g, n, 1, device=dev) * 2 * math.pi
    c, s = torch.cos(ang), torch.sin(ang)
    zoom = _u(g, n, 1, lo=0.6, hi=0.9, device=dev)
    q = pts - 0.5
    pts = torch.stack([c * q[..., 0] - s * q[..., 1], s * q[..., 0] + c * q[..., 1]], -1) * zoom.unsqueeze(-1) + 0.5
    ij = (pts * size).long().clamp(0, size - 1)
    flat = ij[..., 1] * size + ij[..., 0]
    dens = torch.zeros(n, size * size, device=dev).scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float32))
    dens = F.max_pool2d(dens.view(n, 1, size, size), 3, 1, 1)  # points drawn 3 px wide
    med = dens.flatten(1).sum(1) / (dens.flatten(1) > 0).sum(1).clamp_min(1)
    ink = (dens / (0.3 * med.view(n, 1, 1, 1))).clamp(max=1.0)
    bg = dead_leaves(n, size, g, shapes=12) * _u(g, n, 1, 1, 1, lo=0.2, hi=0.6, device=dev)
    fg = _u(g, n, 3, 1, 1, lo=0.3, hi=1.0, device=dev)
    return bg * (1 - ink) + fg * ink


def batch(n: int, size: int, g: torch.Generator, systems, families=FAMILIES) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images, the families in equal shares; the fractal classes drawn at random.
    Returns the images and, per image, its fractal class (-1 for the other families)."""
    parts, labels = [], []
    share = [n // len(families) + (1 if i < n % len(families) else 0) for i in range(len(families))]
    for fam, k in zip(families, share):
        if k == 0:
            continue
        if fam == "fractal":
            lab = torch.randint(len(systems[0]), (k,), generator=g, device=g.device)
            parts.append(fractal(lab, systems, size, g))
            labels.append(lab)
        else:
            parts.append({"dead_leaves": dead_leaves, "spectral": spectral, "cppn": cppn}[fam](k, size, g))
            labels.append(torch.full((k,), -1, device=g.device, dtype=torch.long))
    img = torch.cat(parts) + torch.randn(n, 3, size, size, generator=g, device=g.device) * 0.02
    return img, torch.cat(labels)


def views(img: torch.Tensor, out: int, g: torch.Generator, with_crop: bool = False):
    """One augmented view per image: a random resized crop (8-100 % of the area, aspect
    3/4-4/3), a mirror, brightness / contrast / saturation changes, sometimes grey.
    ``with_crop`` also returns the crops' affine maps ``theta`` (n, 2, 3): a view's
    coordinate ``u`` in [-1, 1]² (x first) shows the image at ``theta[:, :, :2] @ u +
    theta[:, :, 2]`` (``correspondence`` pairs the cells of two views with it)."""
    n, dev = len(img), img.device
    area = _u(g, n, lo=0.08, hi=1.0, device=dev)
    logr = _u(g, n, lo=math.log(3 / 4), hi=math.log(4 / 3), device=dev)
    sw = torch.sqrt(area * torch.exp(logr)).clamp(max=1.0)
    sh = torch.sqrt(area / torch.exp(logr)).clamp(max=1.0)
    tx = (_u(g, n, device=dev) * 2 - 1) * (1 - sw)
    ty = (_u(g, n, device=dev) * 2 - 1) * (1 - sh)
    flip = torch.where(_u(g, n, device=dev) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = sw * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sh, ty
    v = crop(img, theta, out)
    bright = _u(g, n, 1, 1, 1, lo=0.6, hi=1.4, device=dev)
    contrast = _u(g, n, 1, 1, 1, lo=0.6, hi=1.4, device=dev)
    sat = _u(g, n, 1, 1, 1, lo=0.6, hi=1.4, device=dev)
    mean = v.mean((1, 2, 3), keepdim=True)
    v = (v - mean) * contrast + mean * bright
    grey = v.mean(1, keepdim=True)
    v = grey + (v - grey) * sat
    v = torch.where(_u(g, n, 1, 1, 1, device=dev) < 0.2, grey.expand_as(v), v)
    return (v, theta) if with_crop else v


def crop(img: torch.Tensor, theta: torch.Tensor, out: int) -> torch.Tensor:
    """The ``out`` x ``out`` views of ``img`` that the affine maps ``theta`` give (bilinear)."""
    grid = F.affine_grid(theta, (len(img), img.shape[1], out, out), align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def correspondence(theta_a: torch.Tensor, theta_b: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the centres of an ``h`` x ``w`` feature grid over view a lie in view b (both
    crops of one image, ``views(..., with_crop=True)``): ``grid`` (n, h, w, 2) in view b's
    coordinates, for ``grid_sample`` on view b's features (align_corners False), and
    ``inside`` (n, h, w), true where that point is inside view b by half a cell or more."""
    dev = theta_a.device
    ys = (torch.arange(h, device=dev) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, device=dev) + 0.5) / w * 2 - 1
    u = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).view(1, h * w, 2)
    img = u @ theta_a[:, :, :2].transpose(1, 2) + theta_a[:, None, :, 2]
    ub = torch.linalg.solve(theta_b[:, :, :2], (img - theta_b[:, None, :, 2]).transpose(1, 2)).transpose(1, 2)
    ub = ub.view(-1, h, w, 2)
    inside = (ub[..., 0].abs() <= 1 - 1 / w) & (ub[..., 1].abs() <= 1 - 1 / h)
    return ub, inside

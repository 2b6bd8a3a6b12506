"""A small procedural dataset in the MVTec 3D-AD layout, for tests and development.

Each part is a raised rounded slab lying on a slightly tilted support plane, seen by an
RGB camera, an IR camera and a 3D sensor whose pixels are aligned. Good parts vary in
position, orientation, size, colour and temperature. Defect types are chosen so that
some are visible in one modality only:

* ``stain``   rgb only (a coloured blot on the surface),
* ``hotspot`` ir only (a local temperature rise),
* ``dent``    xyz only (a local depression of the surface),
* ``crack``   all three (a groove that is darker and colder).

The project's simulator (``mmad dataset``) writes the same layout; this module exists so
that the Python side can be developed and tested without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import write_ir, write_mask, write_rgb, write_xyz

DEFECTS = ("stain", "hotspot", "dent", "crack")


def _blob(h: int, w: int, rng: np.random.Generator, inside: np.ndarray, radius: float) -> np.ndarray:
    """A soft blob (0..1) centred on a random pixel inside the part."""
    ys, xs = np.nonzero(inside)
    k = rng.integers(len(ys))
    cy, cx = ys[k], xs[k]
    yy, xx = np.mgrid[0:h, 0:w]
    r = radius * rng.uniform(0.8, 1.3)
    ang = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(ang) + dy * np.sin(ang)) / r
    v = (-dx * np.sin(ang) + dy * np.cos(ang)) / (r * rng.uniform(0.5, 1.0))
    return np.clip(1.0 - (u**2 + v**2), 0.0, 1.0) ** 0.7


def _crack(h: int, w: int, rng: np.random.Generator, inside: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(inside)
    k = rng.integers(len(ys))
    y0, x0 = float(ys[k]), float(xs[k])
    ang = rng.uniform(0, np.pi)
    length = rng.uniform(0.25, 0.4) * min(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    t = np.clip((xx - x0) * np.cos(ang) + (yy - y0) * np.sin(ang), 0, length)
    py, px = y0 + t * np.sin(ang), x0 + t * np.cos(ang)
    d = np.hypot(yy - py, xx - px)
    width = max(1.0, 0.02 * min(h, w))
    return np.clip(1.0 - d / width, 0.0, 1.0)


def render_part(size: tuple[int, int], rng: np.random.Generator, defect: str = "good"):
    """Returns rgb uint8 HxWx3, ir uint16 HxW, xyz float32 HxWx3, gt bool HxW."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = (xx + 0.5) / w - 0.5, (yy + 0.5) / h - 0.5  # -0.5..0.5
    # Part footprint: a rounded rectangle, jittered.
    cx, cy = rng.normal(0, 0.03, 2)
    ang = rng.normal(0, 0.15)
    a, b = rng.uniform(0.26, 0.30), rng.uniform(0.17, 0.21)
    pu = (u - cx) * np.cos(ang) + (v - cy) * np.sin(ang)
    pv = -(u - cx) * np.sin(ang) + (v - cy) * np.cos(ang)
    sd = (np.abs(pu / a) ** 4 + np.abs(pv / b) ** 4) ** 0.25  # < 1 inside
    inside = sd < 1.0
    height_m = rng.uniform(0.009, 0.011) * np.clip(1.0 - sd**6, 0.0, 1.0)  # dome-topped slab

    # Pixel colours and temperatures before defects.
    base = np.array([150, 110, 60], dtype=np.float64) + rng.normal(0, 6, 3)
    texture = rng.normal(0, 3, (h, w))
    shade = 1.0 - 0.25 * sd**4
    rgb = np.empty((h, w, 3))
    bg = np.array([70.0, 75.0, 80.0]) + rng.normal(0, 2, 3)
    for c in range(3):
        rgb[..., c] = np.where(inside, base[c] * shade + texture, bg[c] + rng.normal(0, 2, (h, w)))
    temp = 20000.0 + rng.normal(0, 300) + 1500.0 * pu  # warm gradient along the part
    ir = np.where(inside, temp + 8000.0 * np.clip(1.0 - sd**2, 0, 1), 15000.0 + rng.normal(0, 150, (h, w)))

    gt = np.zeros((h, w), dtype=bool)
    interior = inside & (sd < 0.8)
    if defect == "stain":
        m = _blob(h, w, rng, interior, 0.08 * min(h, w))
        rgb = rgb * (1 - m[..., None]) + m[..., None] * np.array([60.0, 90.0, 160.0])
        gt = m > 0.15
    elif defect == "hotspot":
        m = _blob(h, w, rng, interior, 0.08 * min(h, w))
        ir = ir + 9000.0 * m
        gt = m > 0.15
    elif defect == "dent":
        m = _blob(h, w, rng, interior, 0.09 * min(h, w))
        height_m = height_m - 0.004 * m
        gt = m > 0.15
    elif defect == "crack":
        m = _crack(h, w, rng, interior) * interior
        rgb = rgb * (1 - 0.6 * m[..., None])
        ir = ir - 6000.0 * m
        height_m = height_m - 0.003 * m
        gt = m > 0.2
    elif defect != "good":
        raise ValueError(f"unknown defect {defect!r}")

    # Geometry: support plane at ~0.5 m, tilted; the camera looks along +z.
    tilt = rng.normal(0, 0.03, 2)
    x = u * 0.12
    y = v * 0.12 * h / w
    z_plane = 0.5 + tilt[0] * x + tilt[1] * y
    z = z_plane - height_m + rng.normal(0, 0.0001, (h, w))
    xyz = np.stack([x, y, z], axis=-1).astype(np.float32)
    # Sensor dropouts: a few missing points, more on the part's steep rim.
    rim = inside & (sd > 0.93)
    drop = (rng.random((h, w)) < 0.01) | (rim & (rng.random((h, w)) < 0.3))
    xyz[drop] = 0.0

    rgb8 = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    ir16 = np.clip(np.rint(ir + rng.normal(0, 100, (h, w))), 0, 65535).astype(np.uint16)
    return rgb8, ir16, xyz, gt


def write_dataset(
    root: str | Path,
    category: str = "slab",
    size: tuple[int, int] = (64, 64),
    n_train: int = 24,
    n_validation: int = 8,
    n_test_good: int = 8,
    n_test_per_defect: int = 6,
    defects: tuple[str, ...] = DEFECTS,
    modalities: tuple[str, ...] = ("rgb", "ir", "xyz"),
    seed: int = 0,
) -> Path:
    """Writes ``<root>/<category>/...`` and returns the category folder."""
    rng = np.random.default_rng(seed)
    cat = Path(root) / category
    plan = [("train", "good", n_train), ("validation", "good", n_validation), ("test", "good", n_test_good)]
    plan += [("test", d, n_test_per_defect) for d in defects]
    for split, defect, n in plan:
        for i in range(n):
            rgb, ir, xyz, gt = render_part(size, rng, defect)
            folder = cat / split / defect
            stem = f"{i:03d}"
            if "rgb" in modalities:
                write_rgb(folder / "rgb" / f"{stem}.png", rgb)
            if "ir" in modalities:
                write_ir(folder / "ir" / f"{stem}.png", ir)
            if "xyz" in modalities:
                write_xyz(folder / "xyz" / f"{stem}.tiff", xyz)
            if split == "test":
                write_mask(folder / "gt" / f"{stem}.png", gt)
    return cat

"""Organized point-cloud preprocessing as the MVTec 3D-AD literature does it.

* Background plane removal: the plane is fitted on the valid points of a border strip
  (10 pixels wide at full resolution) with RANSAC, refined by total least squares on its
  inliers, and every point closer than 5 mm to it is set to missing (0,0,0).
* Resizing without inventing points: each output pixel takes the valid source point of
  its footprint closest to the footprint centre, or stays missing. Bilinear or bicubic
  interpolation would create points floating between the part and the background.
"""

from __future__ import annotations

import numpy as np


def valid_mask(pc: np.ndarray) -> np.ndarray:
    """H x W bool: a point is present unless all three coordinates are 0 (or non-finite)."""
    finite = np.isfinite(pc).all(axis=-1)
    return finite & np.any(pc != 0, axis=-1)


def border_points(pc: np.ndarray, width: int = 10) -> np.ndarray:
    """The valid points of the border strip, N x 3."""
    h, w, _ = pc.shape
    width = max(1, min(width, h // 2, w // 2))
    strip = np.zeros((h, w), dtype=bool)
    strip[:width, :] = strip[-width:, :] = True
    strip[:, :width] = strip[:, -width:] = True
    return pc[strip & valid_mask(pc)].astype(np.float64)


def _orient(normal: np.ndarray, d: float) -> np.ndarray:
    # The sensor looks along +z, so a part lies on the camera side of its support plane.
    # Orienting the normal towards the camera (n_z < 0) makes heights above the plane positive.
    if normal[2] > 0:
        normal, d = -normal, -d
    return np.array([normal[0], normal[1], normal[2], d], dtype=np.float64)


def fit_plane_lstsq(points: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Total least squares plane (a, b, c, d), unit normal towards the camera, a x + b y + c z + d = 0."""
    if len(points) < 3:
        raise ValueError("a plane needs at least 3 points")
    w = np.ones(len(points)) if weights is None else np.asarray(weights, dtype=np.float64)
    centroid = (points * w[:, None]).sum(0) / w.sum()
    q = (points - centroid) * np.sqrt(w)[:, None]
    _, _, vt = np.linalg.svd(q, full_matrices=False)
    normal = vt[-1]
    return _orient(normal, -float(normal @ centroid))


def fit_plane_ransac(
    points: np.ndarray,
    distance: float = 0.004,
    iterations: int = 1000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """RANSAC plane: returns (plane, inlier mask); the plane is refitted on its inliers."""
    n = len(points)
    if n < 3:
        raise ValueError("a plane needs at least 3 points")
    rng = np.random.default_rng(seed)
    best_count, best = -1, None
    for _ in range(iterations):
        a, b, c = points[rng.choice(n, 3, replace=False)]
        normal = np.cross(b - a, c - a)
        norm = np.linalg.norm(normal)
        if norm < 1e-12:
            continue
        normal /= norm
        count = int((np.abs((points - a) @ normal) < distance).sum())
        if count > best_count:
            best_count, best = count, (normal, a)
    if best is None:
        raise ValueError("all sampled point triples were collinear")
    normal, a = best
    inliers = np.abs((points - a) @ normal) < distance
    return fit_plane_lstsq(points[inliers]), inliers


def plane_distance(pc: np.ndarray, plane: np.ndarray) -> np.ndarray:
    """Signed distance of every point to the plane (positive on the camera side), H x W."""
    return pc.astype(np.float64) @ plane[:3] + plane[3]


def remove_plane(
    pc: np.ndarray,
    distance: float = 0.005,
    border: int = 10,
    ransac_distance: float = 0.004,
    seed: int = 0,
) -> np.ndarray:
    """Copy of pc with the support-plane points (and missing ones) set to 0,0,0."""
    pts = border_points(pc, border)
    if len(pts) < 3:
        return pc.copy()
    plane, _ = fit_plane_ransac(pts, ransac_distance, seed=seed)
    out = pc.copy()
    out[(np.abs(plane_distance(pc, plane)) < distance) | ~valid_mask(pc)] = 0.0
    return out


def resize_organized(pc: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Resize an organized point cloud; every output point is a source point or missing."""
    h, w, _c = pc.shape
    if (h, w) == (out_h, out_w):
        return pc.copy()
    valid = valid_mask(pc)
    sy, sx = h / out_h, w / out_w
    cy = (np.arange(out_h) + 0.5) * sy - 0.5  # footprint centres in source pixel coordinates
    cx = (np.arange(out_w) + 0.5) * sx - 0.5
    ry, rx = max(sy / 2, 0.5), max(sx / 2, 0.5)  # footprint half-sizes (>= one source pixel)
    offy = np.arange(-int(np.ceil(ry)), int(np.ceil(ry)) + 1)
    offx = np.arange(-int(np.ceil(rx)), int(np.ceil(rx)) + 1)
    best_d = np.full((out_h, out_w), np.inf)
    best_y = np.zeros((out_h, out_w), dtype=np.int64)
    best_x = np.zeros((out_h, out_w), dtype=np.int64)
    base_y, base_x = np.rint(cy).astype(np.int64), np.rint(cx).astype(np.int64)
    for oy in offy:
        yy = base_y + oy
        dy = yy - cy
        for ox in offx:
            xx = base_x + ox
            dx = xx - cx
            inside_y = (np.abs(dy) <= ry) & (yy >= 0) & (yy < h)
            inside_x = (np.abs(dx) <= rx) & (xx >= 0) & (xx < w)
            ok = inside_y[:, None] & inside_x[None, :]
            yc, xc = np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)
            ok &= valid[yc[:, None], xc[None, :]]
            d = dy[:, None] ** 2 + dx[None, :] ** 2
            better = ok & (d < best_d)
            best_d = np.where(better, d, best_d)
            best_y = np.where(better, yc[:, None], best_y)
            best_x = np.where(better, xc[None, :], best_x)
    out = pc[best_y, best_x].astype(np.float32)
    out[~np.isfinite(best_d)] = 0.0
    return out


def resize_mask(mask: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Nearest-neighbour resize of a boolean mask (pixel centres aligned)."""
    h, w = mask.shape
    if (h, w) == (out_h, out_w):
        return mask.copy()
    yi = np.clip(np.floor((np.arange(out_h) + 0.5) * h / out_h).astype(np.int64), 0, h - 1)
    xi = np.clip(np.floor((np.arange(out_w) + 0.5) * w / out_w).astype(np.int64), 0, w - 1)
    return mask[yi[:, None], xi[None, :]]

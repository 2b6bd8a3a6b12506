"""Reading and writing the files of one sample, with the exact sample types of the layout.

rgb: 8-bit RGB PNG; ir: 16-bit grey PNG; xyz: 3-sample float32 TIFF (metres, missing
point = 0,0,0); ct: multi-page 16-bit grey TIFF, one page per slice, the lowest slice first
(src/simulate/README.md "CT volumes in a dataset"); gt: 8-bit mask PNG (non-zero =
anomalous), gt_ct: the ct's 3D mask (multi-page 8-bit TIFF), gt_ct_2d: its projection on
the 2D frame (a PNG like gt).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


def read_rgb(path: str | Path) -> np.ndarray:
    """H x W x 3 uint8. Grey or palette PNGs are expanded to three channels."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def read_ir(path: str | Path) -> np.ndarray:
    """H x W uint16. An 8-bit grey PNG is scaled to the 16-bit range (x * 257)."""
    with Image.open(path) as im:
        a = np.asarray(im)
    if a.ndim == 3:  # a colour file in the ir folder: take the luminance-free first channel
        a = a[..., 0]
    if a.dtype == np.uint8:
        return a.astype(np.uint16) * 257
    if a.dtype in (np.int32, np.uint16, np.int16):  # Pillow opens 16-bit grey as mode I or I;16
        return np.clip(a, 0, 65535).astype(np.uint16)
    raise ValueError(f"{path}: unsupported ir sample type {a.dtype}")


def read_xyz(path: str | Path) -> np.ndarray:
    """H x W x 3 float32 organized point cloud."""
    a = tifffile.imread(path)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"{path}: expected an H x W x 3 point cloud, got shape {a.shape}")
    a = a.astype(np.float32, copy=False)
    # Non-finite samples are missing points as well.
    a[~np.isfinite(a).all(axis=2)] = 0.0
    return a


def read_ct(path: str | Path) -> np.ndarray:
    """D x H x W uint16 volume, the lowest slice first."""
    a = tifffile.imread(path)
    if a.ndim == 2:  # a one-slice volume
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{path}: expected a depth x height x width volume, got shape {a.shape}")
    if a.dtype != np.uint16:
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{path}: unsupported ct sample type {a.dtype}")
        a = np.clip(a, 0, 65535).astype(np.uint16)
    return a


def read_mask(path: str | Path) -> np.ndarray:
    """H x W bool, True where anomalous."""
    with Image.open(path) as im:
        a = np.asarray(im)
    if a.ndim == 3:
        a = a.max(axis=2)
    return a > 0


def write_rgb(path: str | Path, a: np.ndarray) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(a, dtype=np.uint8)).save(path)


def write_ir(path: str | Path, a: np.ndarray) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    a = np.ascontiguousarray(a, dtype=np.uint16)
    Image.fromarray(a).save(path)  # mode I;16: 16-bit grey PNG


def write_xyz(path: str | Path, a: np.ndarray) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    a = np.ascontiguousarray(a, dtype="<f4")
    tifffile.imwrite(path, a, photometric="rgb", planarconfig="contig", compression=None)


def write_ct(path: str | Path, a: np.ndarray) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.ascontiguousarray(a, dtype=np.uint16), photometric="minisblack", compression=None)


def write_mask(path: str | Path, a: np.ndarray) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(a, 255, 0).astype(np.uint8)).save(path)

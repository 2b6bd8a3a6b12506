"""The region of interest: the box of the frame a model judges (``train --roi``).

A part held in a fixture fills a fraction of its camera's frame (the real MVTec 3D-AD rope a
band of 41 % of the frame's height, the tire 71 % x 83 %). Cropped to the box where the parts
lie, the model's input sees the part finer at the same size, and nothing outside the box (a
conveyor, a fixture, debris) is judged, nor can raise an alarm; a part placed outside the box
is not judged there either. At the default input size a crop ranked the real rope and tire no
better (models/README.md "Region of interest"), so the default is the whole frame.

A box is four fractions of the frame, ``(left, top, right, bottom)``, so it holds for a
frame of any resolution; ``box_pixels`` turns it into pixels, by the formula the service
uses as well (src/inference/roi.ts): the two sides must crop the same pixels.

``estimate_roi`` (``--roi auto``) finds the box on the training frames: the union of every
frame's foreground box (``methods.discriminator.foreground``: what differs from the frame's
border by more than an Otsu threshold, closed), widened by ``ROI_MARGIN`` of its size on each
side. A frame without a clear object (a texture that fills the frame) counts as the whole
frame, and so gives no crop.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

Roi = tuple[float, float, float, float]  # left, top, right, bottom: fractions of the frame
FULL: Roi = (0.0, 0.0, 1.0, 1.0)
ROI_MARGIN = 1 / 16  # the estimated box widened by this share of its width and height, each side
ROI_WORK_SIDE = 192  # frames are read at this longer side to find the foreground
# boxes are written with this many decimals, rounded outward (never narrower than found)
ROI_DECIMALS = 4
_EPS = 1e-6
# the modalities whose training frames ``auto`` reads, in this order (a point cloud's or a
# volume's foreground is not what a camera's is)
ROI_SOURCES = ("rgb", "ir")


def parse_roi(text: str) -> Roi | str:
    """``--roi``: ``auto`` (estimated on the training frames), ``none`` (the whole frame), or
    ``LEFT,TOP,RIGHT,BOTTOM`` fractions of the frame; anything else raises ValueError."""
    t = text.strip().lower()
    if t in ("auto", "none"):
        return t
    try:
        vals = tuple(float(v) for v in t.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4:
        raise ValueError(f"roi is auto, none or LEFT,TOP,RIGHT,BOTTOM fractions of the frame; got {text!r}")
    return check_roi(vals)


def check_roi(roi) -> Roi:
    """``roi`` as a tuple of four floats, or ValueError saying what is wrong with it."""
    left, top, right, bottom = (float(v) for v in roi)
    if not all(0.0 <= v <= 1.0 for v in (left, top, right, bottom)):
        raise ValueError(f"roi {roi}: every side is a fraction of the frame, 0..1")
    if left >= right or top >= bottom:
        raise ValueError(f"roi {roi}: left < right and top < bottom")
    return left, top, right, bottom


def is_full(roi: Roi | None) -> bool:
    return roi is None or tuple(roi) == FULL


def box_pixels(roi: Roi | None, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the pixel box of ``roi`` in a ``width`` x ``height`` frame, columns
    x0..x1-1 and rows y0..y1-1, at least one pixel each way. The service's roiBox is the same
    formula (the epsilon keeps a fraction written from a pixel edge on that edge)."""
    if roi is None:
        return 0, 0, width, height
    left, top, right, bottom = roi
    x0 = min(width - 1, math.floor(left * width + _EPS))
    y0 = min(height - 1, math.floor(top * height + _EPS))
    x1 = min(width, max(x0 + 1, math.ceil(right * width - _EPS)))
    y1 = min(height, max(y0 + 1, math.ceil(bottom * height - _EPS)))
    return x0, y0, x1, y1


def crop(a: np.ndarray, roi: Roi | None) -> np.ndarray:
    """An H x W (x C) frame cropped to ``roi`` (the frame itself when there is none)."""
    if is_full(roi):
        return a
    x0, y0, x1, y1 = box_pixels(roi, a.shape[1], a.shape[0])
    return a[y0:y1, x0:x1]


def cropped_size(roi: Roi | None, height: int, width: int) -> tuple[int, int]:
    """Height x width of a ``height`` x ``width`` frame cropped to ``roi``."""
    x0, y0, x1, y1 = box_pixels(roi, width, height)
    return y1 - y0, x1 - x0


def training_frames(root: str | Path, category: str, modality: str) -> list[Path]:
    """The training split's frames of ``modality`` (the MVTec 3D-AD layout), sorted."""
    return sorted((Path(root) / category / "train").glob(f"*/{modality}/*.png"))


def estimate_roi(frames: list[Path], margin: float = ROI_MARGIN, work_side: int = ROI_WORK_SIDE) -> Roi:
    """The union of the frames' foreground boxes widened by ``margin`` each side (module
    docstring); ``FULL`` when a frame has no clear object or there is no frame."""
    import torch

    from ..methods.discriminator import foreground

    if not frames:
        return FULL
    left, top, right, bottom = 1.0, 1.0, 0.0, 0.0
    for path in frames:
        with Image.open(path) as im:
            im = im.convert("RGB") if im.mode not in ("L", "I;16", "I") else im.convert("F")
            s = work_side / max(im.width, im.height)
            w, h = max(8, round(im.width * s)), max(8, round(im.height * s))
            a = np.array(im.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)
        x = torch.from_numpy(a if a.ndim == 3 else a[..., None]).permute(2, 0, 1)[None]
        fg = foreground(x / max(1.0, float(x.max())))[0, 0]
        if bool(fg.all()):
            return FULL
        ys, xs = torch.where(fg > 0)
        left, right = min(left, int(xs.min()) / w), max(right, (int(xs.max()) + 1) / w)
        top, bottom = min(top, int(ys.min()) / h), max(bottom, (int(ys.max()) + 1) / h)
    mx, my = margin * (right - left), margin * (bottom - top)
    q = 10 ** ROI_DECIMALS
    return check_roi((max(0.0, math.floor((left - mx) * q) / q), max(0.0, math.floor((top - my) * q) / q),
                      min(1.0, math.ceil((right + mx) * q) / q), min(1.0, math.ceil((bottom + my) * q) / q)))

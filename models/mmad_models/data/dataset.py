"""Loading one split of one category into memory, at the model's input size.

Every modality is returned in the convention of the exported models' inputs:
rgb float32 [3,H,W] raw 0..255, ir float32 [1,H,W] raw 0..65535, xyz float32 [3,H,W]
metres with 0 for missing points, ct float32 [1,D,Hc,Wc] raw 16-bit counts 0..65535, the
lowest slice first. Normalisation happens inside the model.

The images are resized to the model's H x W; a ct volume keeps its own grid (the in-graph
``CtInput`` projects it onto the 2D frame), and only a volume of another grid than the
training ones (``ct_grid``) is resampled to it, trilinearly: the volume covers the 2D
frames' field of view whatever its grid.

The mask of a test part is its ``gt/`` PNG; for a run whose modalities include ct it is the
union of ``gt/`` and ``gt_ct_2d/`` (the ct's 3D mask projected onto the 2D frame): the
defects inside the material (void, porosity, inclusion) have their ground truth only
there, and a surface defect's 3D mask adds the material it displaced below the surface.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .io import read_ct, read_ir, read_mask, read_rgb, read_xyz
from .pointcloud import remove_plane, resize_mask, resize_organized
from .roi import Roi, crop

MODALITIES = ("rgb", "ir", "xyz", "ct")
IMAGE_MODALITIES = ("rgb", "ir", "xyz")  # the frames of the 2D grid (ct is a volume)
# the defects inside the material that only a ct sees (their ground truth: gt_ct_2d, gt_ct)
INTERIOR_DEFECTS = ("void", "porosity", "inclusion")
_EXT = {"rgb": ".png", "ir": ".png", "xyz": ".tiff", "ct": ".tiff", "gt": ".png", "gt_ct_2d": ".png",
        "gt_ct": ".tiff"}


def modality_list(s: str) -> tuple[str, ...]:
    """A command line's comma list of modalities (``rgb,xyz``), as argparse's ``type``: a
    list with anything but ``MODALITIES`` in it, or nothing, is refused with the reason."""
    mods = tuple(m.strip() for m in s.split(",") if m.strip())
    bad = [m for m in mods if m not in MODALITIES]
    if bad or not mods:
        raise argparse.ArgumentTypeError(f"modalities are a comma list of {', '.join(MODALITIES)}; got {s!r}")
    return mods


@dataclass
class Sample:
    id: str  # "<split>/<defect>/<NNN>"
    split: str
    defect: str  # "good" for good parts
    label: int  # 0 good, 1 anomalous
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    mask: np.ndarray | None = None  # [1,H,W] float32 0/1


def list_categories(root: str | Path) -> list[str]:
    root = Path(root)
    return sorted(p.name for p in root.iterdir() if (p / "train").is_dir())


def _resize_image(a: np.ndarray, size: tuple[int, int], maxval: float) -> np.ndarray:
    """Lanczos resize of an H x W (x C) image, in float, rounded to the integer grid of the source."""
    h, w = size
    if a.shape[:2] == (h, w):
        return a.astype(np.float32)
    chans = a[..., None] if a.ndim == 2 else a
    out = np.stack(
        [
            np.asarray(Image.fromarray(chans[..., i].astype(np.float32)).resize((w, h), Image.Resampling.LANCZOS))
            for i in range(chans.shape[2])
        ],
        axis=2,
    )
    out = np.clip(np.rint(out), 0, maxval)
    return out[..., 0] if a.ndim == 2 else out


AUTO_PIXELS = 240 * 536  # the model size `auto` aims at (height x width)
NATIVE_SCALE = 0.75  # auto keeps a frame's own size when the budget would shrink it less than this


def auto_size(height: int, width: int, pixels: int = AUTO_PIXELS, multiple: int = 8) -> tuple[int, int]:
    """The model input size for frames of ``height`` x ``width``: the same aspect, about
    ``pixels`` pixels (never more than the frame has), each side a multiple of ``multiple``
    (the teachers' coarsest stride; rounded down where rounding would enlarge the frame). The
    budget is the size the real MVTec 3D-AD figures of models/README.md are measured at
    since 0.11.0 (rope 400x900 -> 240x536, tire 800x600 -> 416x312; 160x352 before: the
    maps point at the defect far more often, rope AUPRO 0.908 -> 0.954, tire 0.898 -> 0.945,
    for 2.7x the time a part, models/README.md "Real parts"); a square 128x128
    squashes a rope frame 2.25x across and leaves a 10-pixel speck 1-2 pixels wide.

    A frame within ``NATIVE_SCALE`` of the budget (and whose sides are multiples of
    ``multiple``) keeps its own size: a resampling that close to 1 blurs the finest detail
    and saves little (the simulator's 256x256 lid at 240x240 lost 0.04 rgb and 0.11 xyz
    image AUROC against 256x256, models/README.md "The shipped students")."""
    scale = min(1.0, (pixels / float(height * width)) ** 0.5)
    if scale >= NATIVE_SCALE and height % multiple == 0 and width % multiple == 0:
        return height, width
    return tuple(max(multiple, min(round(d * scale / multiple), d // multiple) * multiple) for d in (height, width))


def source_size(root: str | Path, category: str, modality: str, split: str = "train") -> tuple[int, int]:
    """Height x width of the first frame of ``modality`` in the split (all frames of a
    category are expected to share it). For ct, the 2D frames' size (the frame the volume
    covers and the anomaly map is drawn in): that of the first 2D modality the split has,
    else the volume's own height x width."""
    base = Path(root) / category / split
    if modality == "ct":
        for m in IMAGE_MODALITIES:
            if any((d / m).is_dir() for d in base.iterdir()):
                return source_size(root, category, m, split)
        return ct_grid(root, category, split)[1:]
    for d in sorted(p for p in base.iterdir() if p.is_dir()):
        files = sorted((d / modality).glob("*" + _EXT[modality]))
        if files:
            if modality == "xyz":
                import tifffile

                with tifffile.TiffFile(files[0]) as t:
                    return tuple(int(x) for x in t.pages[0].shape[:2])
            with Image.open(files[0]) as im:
                return (im.height, im.width)
    raise FileNotFoundError(f"no {modality} frame under {base}")


def ct_grid(root: str | Path, category: str, split: str = "train") -> tuple[int, int, int]:
    """Depth x height x width of the first ct volume of the split."""
    import tifffile

    base = Path(root) / category / split
    for d in sorted(p for p in base.iterdir() if p.is_dir()):
        files = sorted((d / "ct").glob("*" + _EXT["ct"]))
        if files:
            with tifffile.TiffFile(files[0]) as t:
                return (len(t.pages), *(int(x) for x in t.pages[0].shape[:2]))
    raise FileNotFoundError(f"no ct volume under {base}")


def resample_volume(a: np.ndarray, grid: tuple[int, int, int]) -> np.ndarray:
    """Trilinear resampling of a D x H x W volume to ``grid`` (voxel centres, both grids
    covering the same box: ``align_corners=False``), in float."""
    if a.shape == tuple(grid):
        return a.astype(np.float32)
    import torch

    t = torch.from_numpy(a.astype(np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=tuple(grid), mode="trilinear", align_corners=False)[0, 0].numpy()


def load_sample(
    folder: Path,
    stem: str,
    modalities: tuple[str, ...],
    size: tuple[int, int] | None,
    plane_removal: bool,
    ct_grid: tuple[int, int, int] | None = None,
    roi: Roi | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """One part's inputs and mask; the 2D frames and the mask cropped to ``roi`` (roi.py)
    before they are resized (a point cloud before its plane is removed)."""
    inputs: dict[str, np.ndarray] = {}
    shape = None
    for m in modalities:
        path = folder / m / (stem + _EXT[m])
        if m == "rgb":
            a = crop(read_rgb(path), roi)
            shape = a.shape[:2]
            a = _resize_image(a, size or shape, 255.0)
            inputs[m] = np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32)
        elif m == "ir":
            a = crop(read_ir(path), roi)
            shape = a.shape
            a = _resize_image(a, size or shape, 65535.0)
            inputs[m] = a[None].astype(np.float32)
        elif m == "xyz":
            a = crop(read_xyz(path), roi)
            shape = a.shape[:2]
            if plane_removal:
                a = remove_plane(a)
            if size is not None:
                a = resize_organized(a, *size)
            inputs[m] = np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32)
        elif m == "ct":
            a = read_ct(path)
            inputs[m] = resample_volume(a, ct_grid or a.shape)[None]
        else:
            raise ValueError(f"unknown modality {m!r}")
    mask = None
    # a ct run's ground truth adds the ct's, projected on the frame (module docstring)
    kinds = ("gt", "gt_ct_2d") if "ct" in modalities else ("gt",)
    for kind in kinds:
        gt = folder / kind / (stem + _EXT[kind])
        if gt.exists():
            g = crop(read_mask(gt), roi)
            if size is not None:
                g = resize_mask(g, *size)
            mask = g[None].astype(np.float32) if mask is None else np.maximum(mask, g[None].astype(np.float32))
    if mask is None and (size is not None or shape is not None):
        mask = np.zeros((1, *(size or shape)), dtype=np.float32)
    return inputs, mask


def load_split(
    root: str | Path,
    category: str,
    split: str,
    modalities: tuple[str, ...] = IMAGE_MODALITIES,
    size: tuple[int, int] | None = None,
    plane_removal: bool = False,
    limit: int | None = None,
    ct_grid: tuple[int, int, int] | None = None,
    roi: Roi | None = None,
) -> list[Sample]:
    """All samples of ``<root>/<category>/<split>``, sorted by defect then file name.

    A sample is listed when its first modality's file exists; every requested modality
    must then be present, or the loader raises (a dataset without IR is loaded with
    modalities that leave ``ir`` out; the default: the three images, ct only when asked).
    ``ct_grid``: the depth x height x width every ct volume is resampled to (None: each
    keeps its own). ``roi``: the box of the 2D frames kept (roi.py; None: the whole frame).
    """
    base = Path(root) / category / split
    if not base.is_dir():
        raise FileNotFoundError(f"no split folder {base}")
    out: list[Sample] = []
    for defect_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        first = defect_dir / modalities[0]
        stems = sorted(p.stem for p in first.glob("*" + _EXT[modalities[0]]))
        if limit is not None:
            stems = stems[:limit]
        for stem in stems:
            inputs, mask = load_sample(defect_dir, stem, modalities, size, plane_removal, ct_grid, roi)
            defect = defect_dir.name
            label = 0 if defect == "good" else 1
            if mask is not None and label == 0:
                mask = np.zeros_like(mask)
            out.append(Sample(f"{split}/{defect}/{stem}", split, defect, label, inputs, mask))
    return out


def stack(samples: list[Sample], modality: str) -> np.ndarray:
    """[N,C,H,W] float32 of one modality (or 'mask'); [N,1,D,H,W] for ct."""
    if modality == "mask":
        return np.stack([s.mask for s in samples]).astype(np.float32)
    return np.stack([s.inputs[modality] for s in samples]).astype(np.float32)

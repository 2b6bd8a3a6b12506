"""Datasets in the MVTec 3D-AD layout and the preprocessing of their modalities.

Layout: ``<root>/<category>/{train,validation}/good/{rgb,ir,xyz,ct}/NNN.{png,tiff}`` and
``<root>/<category>/test/<defect>/{rgb,ir,xyz,ct,gt,gt_ct,gt_ct_2d}/NNN.*`` (ct and its
masks only in a dataset with CT volumes).
"""

from .dataset import (
    MODALITIES,
    Sample,
    auto_size,
    ct_grid,
    list_categories,
    load_split,
    modality_list,
    resample_volume,
    source_size,
    stack,
)
from .io import read_ct, read_ir, read_mask, read_rgb, read_xyz, write_ct, write_ir, write_mask, write_rgb, write_xyz
from .pointcloud import (
    border_points,
    fit_plane_lstsq,
    fit_plane_ransac,
    remove_plane,
    resize_organized,
    valid_mask,
)

__all__ = [
    "MODALITIES",
    "Sample",
    "auto_size",
    "border_points",
    "ct_grid",
    "fit_plane_lstsq",
    "fit_plane_ransac",
    "list_categories",
    "load_split",
    "modality_list",
    "read_ct",
    "read_ir",
    "read_mask",
    "read_rgb",
    "read_xyz",
    "remove_plane",
    "resample_volume",
    "resize_organized",
    "source_size",
    "stack",
    "valid_mask",
    "write_ct",
    "write_ir",
    "write_mask",
    "write_rgb",
    "write_xyz",
]

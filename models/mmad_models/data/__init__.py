"""Datasets in the MVTec 3D-AD layout and the preprocessing of their modalities.

Layout: ``<root>/<category>/{train,validation}/good/{rgb,ir,xyz}/NNN.{png,tiff}`` and
``<root>/<category>/test/<defect>/{rgb,ir,xyz,gt}/NNN.*``.
"""

from .dataset import MODALITIES, Sample, auto_size, list_categories, load_split, modality_list, source_size, stack
from .io import read_ir, read_mask, read_rgb, read_xyz, write_ir, write_mask, write_rgb, write_xyz
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
    "fit_plane_lstsq",
    "fit_plane_ransac",
    "list_categories",
    "load_split",
    "modality_list",
    "read_ir",
    "read_mask",
    "read_rgb",
    "read_xyz",
    "remove_plane",
    "resize_organized",
    "source_size",
    "stack",
    "valid_mask",
    "write_ir",
    "write_mask",
    "write_rgb",
    "write_xyz",
]

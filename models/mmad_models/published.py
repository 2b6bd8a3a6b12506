"""Published per-category MVTec 3D-AD figures, as data, each with where it was read.

Only figures read in the named source are here (fractions, as our metrics; the sources
that print percentages are divided by 100). One entry per (method, input, pre-training,
source). ``pretraining`` is "none" for methods that use no weights learnt on data outside
MVTec 3D-AD (hand-crafted descriptors, or networks trained on the category's own good
parts): those are the ones comparable with ours, which use no downloaded weights.
What each source is:

* ``3D-ADS README``: eliahuhorwitz/3D-ADS README.md (commit 612eb7b), the tables on the
  preprocessed dataset (background plane removed, as the paper arXiv 2203.05550 reports);
  the README also has tables on the raw dataset (not recorded here). Image features are
  PatchCore on an ImageNet Wide-ResNet-50-2 (timm, ``pretrained=True``); Raw, HoG, SIFT and
  FPFH are hand-crafted 3D descriptors (no learnt weights).
* ``Shape-Guided img/``: jayliu0313/Shape-Guided ``img/Img_AUROC.png`` and
  ``img/Pix_AUPRO.png`` (the ICML 2023 paper's tables). Its 3D expert (SDF) is trained on
  MVTec 3D-AD good patches with no external weights; its RGB branch is an ImageNet
  Wide-ResNet-50-2 (timm, ``pretrained=True``).
* ``TRD MVTec3D.jpg``: hito2448/TRD ``MVTec3D.jpg`` (the table of arXiv 2412.08949's
  updated version, which compiles BTF, M3DM, Shape-Guided, AST, MMRD, CFM, 3D-ADNAS and
  its own rows). Its "RGB, Depth" row is the original CRD result (the method was renamed
  TRD when the depth input became surface normals). The anchors M3DM tire 0.850 and rope
  0.972, CFM tire 0.950 are read there.

Pre-training facts were read in the methods' code or READMEs: AST uses an ImageNet
EfficientNet-B5 for RGB and feeds the depth image itself to its networks in depth-only mode
(marco-rudolph/AST model.py); M3DM and CFM use a DINO ViT-B/8 and a Point-MAE point
transformer (nomewang/M3DM README; CVLAB-Unibo/crossmodal-feature-mapping models/features.py);
CRD/TRD use ImageNet Wide-ResNet-50-2 teachers (hito2448/TRD models/encoders.py); 3D-ST's
teacher is pre-trained self-supervised on synthetic scenes (arXiv 2202.11660).
"""

from __future__ import annotations

from dataclasses import dataclass

CATEGORIES = ("bagel", "cable_gland", "carrot", "cookie", "dowel", "foam", "peach", "potato", "rope", "tire")


def _row(*values: float, scale: float = 1.0) -> dict[str, float]:
    """The ten categories' figures in the order of CATEGORIES (the sources' column order)."""
    if len(values) != len(CATEGORIES):
        raise ValueError(f"{len(values)} values for {len(CATEGORIES)} categories")
    return {c: round(v / scale, 4) for c, v in zip(CATEGORIES, values)}


@dataclass(frozen=True)
class Published:
    method: str
    modalities: str  # "rgb" | "3d" | "rgb+3d"
    input: str  # what the method reads, as the source says it
    pretraining: str  # "none", or what the weights were pre-trained on
    source: str  # repository + file (and the paper's arXiv id)
    i_auroc: dict[str, float]
    aupro: dict[str, float] | None = None  # AUPRO@0.3, where published
    mean_i_auroc: float | None = None  # the source's mean column (a transcription check)
    mean_aupro: float | None = None
    note: str = ""

    @property
    def from_scratch(self) -> bool:
        return self.pretraining == "none"

    @property
    def weights(self) -> str:
        return "from scratch" if self.from_scratch else f"pretrained ({self.pretraining})"


_ADS = "eliahuhorwitz/3D-ADS README.md, preprocessed tables (arXiv 2203.05550)"
_SG = "jayliu0313/Shape-Guided img/Img_AUROC.png, img/Pix_AUPRO.png (ICML 2023)"
_TRD = "hito2448/TRD MVTec3D.jpg (arXiv 2412.08949)"
_INET = "ImageNet Wide-ResNet-50-2"

PUBLISHED: tuple[Published, ...] = (
    # --- no weights from outside MVTec 3D-AD ---
    Published("BTF Raw", "3d", "point cloud (raw coordinates)", "none", _ADS,
              _row(0.627, 0.507, 0.600, 0.654, 0.573, 0.524, 0.532, 0.612, 0.412, 0.678),
              _row(0.402, 0.314, 0.639, 0.498, 0.251, 0.259, 0.527, 0.531, 0.808, 0.215), 0.572, 0.444),
    Published("BTF HoG", "3d", "depth image (HoG)", "none", _ADS,
              _row(0.487, 0.587, 0.691, 0.545, 0.643, 0.596, 0.516, 0.584, 0.507, 0.430),
              _row(0.712, 0.761, 0.932, 0.487, 0.833, 0.520, 0.743, 0.949, 0.916, 0.858), 0.559, 0.771),
    Published("BTF SIFT", "3d", "depth image (dense SIFT)", "none", _ADS,
              _row(0.722, 0.640, 0.892, 0.762, 0.829, 0.678, 0.623, 0.754, 0.767, 0.603),
              _row(0.944, 0.845, 0.975, 0.894, 0.909, 0.733, 0.946, 0.981, 0.953, 0.928), 0.727, 0.911),
    Published("BTF FPFH", "3d", "point cloud (FPFH)", "none", _ADS,
              _row(0.825, 0.534, 0.952, 0.783, 0.883, 0.581, 0.758, 0.889, 0.929, 0.656),
              _row(0.974, 0.878, 0.982, 0.908, 0.892, 0.730, 0.977, 0.982, 0.956, 0.962), 0.779, 0.924),
    Published("AST (depth)", "3d", "depth image", "none", _SG,
              _row(0.881, 0.576, 0.965, 0.957, 0.679, 0.797, 0.990, 0.915, 0.956, 0.611), None, 0.833,
              note="AST arXiv 2210.07829, as tabulated by Shape-Guided"),
    Published("Shape-Guided SDF", "3d", "point cloud (local SDF)", "none", _SG,
              _row(0.983, 0.682, 0.978, 0.998, 0.960, 0.737, 0.993, 0.979, 0.966, 0.871),
              _row(0.974, 0.871, 0.981, 0.924, 0.898, 0.773, 0.978, 0.983, 0.955, 0.969), 0.916, 0.931,
              note="the 3D expert alone, trained on MVTec 3D-AD good patches; the source's mean column "
                   "says 0.916, its ten I-AUROC values average 0.915"),
    # --- pre-trained on other data, but not ImageNet / DINO ---
    Published("3D-ST", "3d", "point cloud", "self-supervised, synthetic 3D scenes", _SG,
              {}, _row(0.950, 0.483, 0.986, 0.921, 0.905, 0.632, 0.945, 0.988, 0.976, 0.542), None, 0.833,
              note="arXiv 2202.11660; AUPRO only in this source"),
    # --- ImageNet / DINO / Point-MAE weights ---
    Published("BTF RGB iNet", "rgb", "RGB", _INET, _ADS,
              _row(0.875, 0.880, 0.777, 0.705, 0.938, 0.720, 0.718, 0.615, 0.859, 0.681),
              _row(0.902, 0.948, 0.929, 0.873, 0.891, 0.570, 0.903, 0.933, 0.909, 0.905), 0.777, 0.876),
    Published("BTF Depth iNet", "3d", "depth image", _INET, _ADS,
              _row(0.690, 0.597, 0.753, 0.862, 0.881, 0.590, 0.597, 0.598, 0.791, 0.577),
              _row(0.763, 0.676, 0.884, 0.883, 0.864, 0.322, 0.881, 0.840, 0.844, 0.634), 0.694, 0.759),
    Published("BTF RGB+FPFH", "rgb+3d", "RGB + point cloud (FPFH)", _INET, _ADS,
              _row(0.923, 0.770, 0.967, 0.905, 0.928, 0.657, 0.913, 0.915, 0.921, 0.881),
              _row(0.976, 0.968, 0.979, 0.972, 0.932, 0.884, 0.975, 0.981, 0.950, 0.972), 0.878, 0.959),
    Published("AST (RGB)", "rgb", "RGB", "ImageNet EfficientNet-B5", _SG,
              _row(0.947, 0.928, 0.851, 0.825, 0.981, 0.951, 0.895, 0.613, 0.992, 0.821), None, 0.880,
              note="AST arXiv 2210.07829, as tabulated by Shape-Guided"),
    Published("AST", "rgb+3d", "RGB + depth image", "ImageNet EfficientNet-B5 (RGB)", _TRD,
              _row(98.3, 87.3, 97.6, 97.1, 93.2, 88.5, 97.4, 98.1, 100.0, 79.7, scale=100),
              _row(97.0, 94.7, 98.1, 93.9, 91.3, 90.6, 97.9, 98.2, 88.9, 94.0, scale=100), 0.937, 0.944,
              note="the same I-AUROC row is in Shape-Guided img/Img_AUROC.png"),
    Published("Shape-Guided (RGB)", "rgb", "RGB", _INET, _SG,
              _row(0.911, 0.936, 0.883, 0.662, 0.974, 0.772, 0.785, 0.641, 0.884, 0.706),
              _row(0.946, 0.972, 0.960, 0.914, 0.958, 0.776, 0.937, 0.949, 0.956, 0.957), 0.815, 0.933),
    Published("Shape-Guided", "rgb+3d", "RGB + point cloud", f"{_INET} (RGB)", _SG,
              _row(0.986, 0.894, 0.983, 0.991, 0.976, 0.857, 0.990, 0.965, 0.960, 0.869),
              _row(0.981, 0.973, 0.982, 0.971, 0.962, 0.978, 0.981, 0.983, 0.974, 0.975), 0.947, 0.976),
    Published("M3DM", "rgb+3d", "RGB + point cloud", "DINO ViT-B/8 + Point-MAE", _TRD,
              _row(99.4, 90.9, 97.2, 97.6, 96.0, 94.2, 97.3, 89.9, 97.2, 85.0, scale=100),
              _row(97.0, 97.1, 97.9, 95.0, 94.1, 93.2, 97.7, 97.1, 97.1, 97.5, scale=100), 0.945, 0.964,
              note="arXiv 2303.00601"),
    Published("CFM", "rgb+3d", "RGB + point cloud", "DINO ViT-B/8 + Point-MAE", _TRD,
              _row(98.8, 87.5, 98.4, 99.2, 99.7, 92.4, 96.4, 94.9, 97.9, 95.0, scale=100),
              _row(98.0, 96.6, 98.2, 94.7, 95.9, 96.7, 98.2, 98.3, 97.6, 98.2, scale=100), 0.960, 0.972,
              note="arXiv 2312.04521 (CVPR 2024)"),
    Published("CRD", "rgb+3d", "RGB + depth image", _INET, _TRD,
              _row(99.6, 96.1, 98.2, 98.5, 99.7, 90.1, 99.2, 97.6, 100.0, 83.3, scale=100),
              _row(97.5, 97.4, 98.1, 97.3, 97.9, 90.2, 98.2, 98.3, 97.6, 96.8, scale=100), 0.962, 0.969,
              note="the \"TRD (Ours), RGB, Depth\" row: the method our crd.py follows"),
    Published("TRD", "rgb+3d", "RGB + surface normals", _INET, _TRD,
              _row(98.9, 99.5, 99.7, 97.0, 100.0, 98.8, 99.6, 98.3, 100.0, 91.7, scale=100),
              _row(97.5, 98.0, 98.2, 97.1, 98.1, 98.2, 98.2, 98.3, 97.8, 97.9, scale=100), 0.984, 0.979),
)


def category_key(name: str) -> str:
    """MVTec 3D-AD category name as in CATEGORIES ("Cable Gland" -> "cable_gland")."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def for_category(name: str) -> list[tuple[Published, float | None, float | None]]:
    """(entry, I-AUROC, AUPRO@0.3) of every entry with a figure for the category; the
    from-scratch entries first. Empty for a category outside MVTec 3D-AD."""
    c = category_key(name)
    rows = [(p, p.i_auroc.get(c), (p.aupro or {}).get(c)) for p in PUBLISHED]
    rows = [r for r in rows if r[1] is not None or r[2] is not None]
    return sorted(rows, key=lambda r: not r[0].from_scratch)  # stable: source order otherwise

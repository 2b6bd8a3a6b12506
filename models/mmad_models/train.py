"""Training, calibration and evaluation of a method module (kept apart from the module).

A run: load the category at the model size -> fit the in-graph input statistics on
training good parts -> train the students -> fit the branch-map standardisation on
validation good parts -> calibrate the threshold on validation good parts -> evaluate
on the test split -> save a checkpoint that ``export`` turns into ONNX.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import metrics as M
from .data import MODALITIES, auto_size, ct_grid, load_split, source_size, stack
from .data.roi import ROI_SOURCES, check_roi, cropped_size, estimate_roi, is_full, training_frames
from .methods import METHODS, Method
from .methods.common import round_to_half_
from .methods.mtfi import BANK_DIMS, BANK_SIZE
from .methods.preprocess import RGB_GAMMA
from .teachers import pretrain_procedural, pretrain_selfsup, save_encoder

PROCEDURAL_SIZE = 64
SHIPPED_TEACHERS = Path(__file__).resolve().parent.parent / "teachers"
# the ResNet-18 pre-trained by `pretrain --objective simclr` on the formula-driven corpus (models/README.md,
# "Teachers"); shipped, since its pre-training takes 6 min on a GPU and about 17 h on 2 CPU cores
CORPUS_TEACHER = "corpus-simclr-r18-s0.pt"
# the statistics of the corpus's rgb images (mmad_models/corpus.py, 2048 augmented views): the corpus
# teacher sees rgb normalised as in its pre-training, as a torchvision backbone keeps ImageNet's
CORPUS_RGB_MEAN = (0.436, 0.433, 0.429)
CORPUS_RGB_STD = (0.296, 0.293, 0.296)
# the teachers the project obtains itself: the small encoder's (inputs standardised with the training
# parts' statistics) and the corpus ResNet
SMALL_TEACHERS = ("random", "procedural", "selfsup")
SELF_OBTAINED = (*SMALL_TEACHERS, "corpus")


@dataclass
class RunConfig:
    dataset: str
    category: str
    modalities: tuple[str, ...]
    method: str = "mtfi"
    # the box of the 2D frames the model judges, (left, top, right, bottom) fractions of the
    # frame (data/roi.py); "auto": estimated on the training frames, "none" or None: the whole
    # frame (the default: at the same input size a crop ranked the real parts no better, and a
    # part placed outside it would not be judged there); resolved when training starts (a
    # tuple, or None for the whole frame)
    roi: tuple[float, float, float, float] | str | None = "none"
    # height x width the model takes; "auto": the training frames' aspect (within the roi) at
    # about 129k pixels (data.auto_size), resolved when training starts
    size: tuple[int, int] | str = "auto"
    teacher: str = "corpus"  # corpus | procedural | selfsup | random | path to a torchvision checkpoint
    resnet_arch: str = "resnet18"
    widths: tuple[int, int, int] = (32, 64, 128)
    epochs: int = 40
    batch_size: int = 8
    lr: float = 2e-3
    fusion: str = "max"
    # the anomaly map's Gaussian smoothing, pixels at 256 px (scoring.map_sigma_px; 0 = none);
    # None: the method's default (Method.default_map_sigma), set when the model is built
    map_sigma: float | None = None
    # the threshold is the score a good part reaches with this probability (metrics.calibrate_threshold)
    false_alarm_rate: float = 0.01
    seed: int = 0
    teacher_dir: str = "out/teachers"
    plane_removal: bool = False
    # mtfi: the modalities seen in training (a superset of ``modalities``, the inference
    # inputs; None = the same) and the memory-bank size per modality
    train_modalities: tuple[str, ...] | None = None
    normality: str = "bank"  # mtfi: bank (memory bank) | rd (reconstruction student)
    bank_size: int | str = BANK_SIZE  # "auto": mtfi chooses it from the training locations (fitted_config)
    # mtfi bank: weight of the teacher's pooled normalised input in the bank features
    input_weight: float = 5.0
    # mtfi bank: principal components kept of the bank features (0: all)
    bank_dims: int = BANK_DIMS
    # mtfi bank: a present modality's map from a head trained on synthetic anomalies
    # (methods/discriminator.py) instead of the bank distance alone; its Adam steps
    discriminator: bool = False
    head_steps: int = 1500
    # lighter bottleneck, decoders and amplifiers (crd.py; mtfi's reconstruction students)
    slim: bool = True
    # the ir input standardised by median / interquartile range and soft-clipped (preprocess.IrInput)
    ir_robust: bool = False
    # the xyz height relative to the part's dominant face, signed-log compressed (preprocess.XyzInput)
    xyz_face: bool = False
    # the response curve of the rgb values the teacher sees: (x / 255) ** rgb_gamma (1: linear;
    # preprocess.RgbInput.set_gamma; chosen on real parts, models/README.md "The rgb response curve")
    rgb_gamma: float = RGB_GAMMA
    # round the weights to float16 values (the export stores them as float16, losslessly)
    half: bool = True
    # depth x height x width of the ct volumes the model takes (every volume is resampled to
    # it when loaded); None: the first training volume's, resolved when training starts
    ct_grid: tuple[int, int, int] | None = None
    # mtfi: parts warped to the training parts' mean pose (none | shift | pose; methods/align.py)
    align: str = "none"
    # mtfi --normality local: principal components each place's Gaussian models
    local_dims: int = 16
    local_pool: int = 2
    # mtfi: the modalities whose pooled input also carries each cell's brightest and darkest fine detail
    input_detail: tuple[str, ...] = ()
    # mtfi --normality local: the pooled input's channels kept whole in each place's Gaussian
    keep_input: bool = False
    # mtfi with --align: the aligned ir image relative to the part's own level (align.LevelMatch)
    ir_relative: bool = False
    # mtfi --normality local --align: (pixels, degrees) standard deviations of the rigid motions of
    # the jittered copies of each training part the per-place Gaussians are also fitted to
    local_jitter: tuple[float, float] = (0.0, 0.0)

    def all_modalities(self) -> tuple[str, ...]:
        """Every modality the run reads from the training split, in rgb, ir, xyz, ct order."""
        extra = set(self.train_modalities or ()) | set(self.modalities)
        return tuple(m for m in MODALITIES if m in extra)


def load_data(cfg: RunConfig, split: str) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    """One split at the model size; the training split with every modality the method
    trains on, the others with the inference modalities only."""
    return _load(cfg, split)[:3]


def _load(cfg: RunConfig, split: str) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray, np.ndarray]:
    """load_data's inputs, labels and masks, and each part's defect type ("good" for good parts)."""
    return _load_samples(cfg, split)[:4]


def _load_samples(cfg: RunConfig, split: str):
    """_load's figures and the samples' ids ("<split>/<defect>/<NNN>")."""
    mods = cfg.all_modalities() if split == "train" else tuple(cfg.modalities)
    samples = load_split(cfg.dataset, cfg.category, split, mods, tuple(cfg.size), cfg.plane_removal,
                         ct_grid=tuple(cfg.ct_grid) if cfg.ct_grid else None, roi=roi_of(cfg))
    inputs = {m: torch.from_numpy(stack(samples, m)) for m in mods}
    labels = np.array([s.label for s in samples])
    masks = stack(samples, "mask")
    return inputs, labels, masks, np.array([s.defect for s in samples]), [s.id for s in samples]


def teacher_spec(cfg: RunConfig, modality: str, train_inputs: dict[str, torch.Tensor], log=print) -> dict:
    """Encoder spec of the modality's teacher; pre-trains (and caches) it when needed."""
    if cfg.teacher == "corpus":
        path = SHIPPED_TEACHERS / CORPUS_TEACHER
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: restore it from git, or reproduce it with "
                                    f"scripts/pretrain-corpus-teacher.sh (6 min on one GPU)")
        return {"kind": "resnet", "arch": "resnet18", "weights": str(path)}
    if cfg.teacher not in SELF_OBTAINED:
        return {"kind": "resnet", "arch": cfg.resnet_arch, "weights": cfg.teacher}
    spec = {"kind": "small", "widths": list(cfg.widths)}
    if cfg.teacher == "random":
        return spec
    tdir = Path(cfg.teacher_dir)
    w = "-".join(map(str, cfg.widths))
    if cfg.teacher == "procedural":  # one per width, shared by all modalities and model sizes
        # pre-trained on 64 px renders whatever the model size: the encoder is convolutional,
        # and pre-training on 128 px renders takes four times as long (over 10 min on 2 cores)
        name = f"procedural-{PROCEDURAL_SIZE}-{w}-s{cfg.seed}.pt"
        # the default teacher ships with the package (teachers/, reproduced by
        # scripts/pretrain-teacher.sh); another width or seed is pre-trained once and cached
        path = SHIPPED_TEACHERS / name if (SHIPPED_TEACHERS / name).exists() else tdir / name
        if not path.exists():
            torch.manual_seed(cfg.seed)
            save_encoder(pretrain_procedural(cfg.widths, PROCEDURAL_SIZE, seed=cfg.seed, log=log), path)
    else:  # per dataset, category and modality
        tag = f"{Path(cfg.dataset).name}-{cfg.category}-{modality}-{cfg.size[0]}-{w}-s{cfg.seed}" + (
            "-robust" if cfg.ir_robust and modality == "ir" else "") + (
            "-face" if cfg.xyz_face and modality == "xyz" else "") + (
            f"-g{cfg.rgb_gamma:g}" if cfg.rgb_gamma != 1.0 and modality == "rgb" else "")
        path = tdir / f"selfsup-{tag}.pt"
        if not path.exists():
            from .methods.preprocess import build_input

            pre = build_input(modality, tuple(cfg.size), cfg.ir_robust, cfg.ct_grid, xyz_face=cfg.xyz_face)
            if modality == "rgb":  # the teacher learns the rgb its students will feed it
                pre.set_gamma(cfg.rgb_gamma)
            pre.fit(train_inputs[modality])
            with torch.no_grad():
                x = pre(train_inputs[modality]).contiguous()
            save_encoder(pretrain_selfsup(x, cfg.widths, seed=cfg.seed, log=log), path)
    return {**spec, "weights": str(path)}


def build_model(cfg: RunConfig, specs: dict[str, dict]) -> Method:
    """The run's method (``methods.METHODS[cfg.method]``) with the run's options; a map
    smoothing left unset (None) becomes the method's default for the run, in ``cfg``."""
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}")
    if cfg.map_sigma is None:
        cfg.map_sigma = METHODS[cfg.method].default_map_sigma(cfg)
    model = METHODS[cfg.method].from_config(cfg, specs)
    if "rgb" in model.teachers:
        model.teachers["rgb"].input.set_gamma(cfg.rgb_gamma)
    return model


@torch.no_grad()
def teacher_cache(model: Method, inputs: dict[str, torch.Tensor], batch: int = 16) -> dict[str, list[torch.Tensor]]:
    """Every training part's teacher features, per modality and scale."""
    n = len(next(iter(inputs.values())))
    parts = [model.teacher_features({m: x[i:i + batch] for m, x in inputs.items()}) for i in range(0, n, batch)]
    return {m: [torch.cat([p[m][k] for p in parts]) for k in range(len(parts[0][m]))] for m in parts[0]}


@torch.no_grad()
def predict(model: Method, inputs: dict[str, torch.Tensor], batch: int = 16, depths: list | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Maps and scores; with ``depths`` (a list) a model's ``anomaly_depth`` batches are appended to it."""
    model.eval()
    n = len(next(iter(inputs.values())))
    maps, scores = [], []
    for i in range(0, n, batch):
        r = model({m: x[i:i + batch] for m, x in inputs.items()})
        maps.append(r.anomaly_map.numpy())
        scores.append(r.score.numpy())
        if depths is not None and r.anomaly_depth is not None:
            depths.append(r.anomaly_depth.numpy())
    return np.concatenate(maps), np.concatenate(scores)


@torch.no_grad()
def fit_scorer(model: Method, val_inputs: dict[str, torch.Tensor], batch: int = 16,
               held_out: list[torch.Tensor] | None = None) -> None:
    """The scorer's per-branch statistics from the validation parts' maps, and ``held_out``'s
    (``Method.held_out_maps``) when there are any."""
    model.eval()
    n = len(next(iter(val_inputs.values())))
    per_branch = None
    for i in range(0, n, batch):
        maps = model.branch_maps({m: x[i:i + batch] for m, x in val_inputs.items()})
        per_branch = maps if per_branch is None else [torch.cat([a, b]) for a, b in zip(per_branch, maps)]
    if held_out is not None:
        per_branch = [torch.cat([a, b]) for a, b in zip(per_branch, held_out)]
    model.scorer.fit(per_branch)


def roi_of(cfg: RunConfig) -> tuple[float, float, float, float] | None:
    """A resolved run's roi as a tuple (None: the whole frame); a checkpoint's JSON gives a list."""
    if isinstance(cfg.roi, str):
        raise TypeError(f"roi {cfg.roi!r} is not resolved yet (resolve_size)")
    return None if is_full(cfg.roi) else check_roi(cfg.roi)


def resolve_roi(cfg: RunConfig, log=print) -> None:
    """Replaces ``roi`` "auto" / "none" by the box (None for the whole frame). "auto" reads
    the training frames of the first of ``ROI_SOURCES`` the run has; a run with ct keeps the
    whole frame (its volume covers the whole frame: a cropped frame would not meet its
    projection), as one without rgb or ir does."""
    mods = cfg.all_modalities()
    if cfg.roi in ("none", None):
        cfg.roi = None
        return
    if cfg.roi == "auto":
        source = next((m for m in ROI_SOURCES if m in mods), None)
        if "ct" in mods or source is None:
            cfg.roi = None
            return
        found = estimate_roi(training_frames(cfg.dataset, cfg.category, source))
        cfg.roi = None if is_full(found) else found
        log(f"  roi: {'the whole frame' if cfg.roi is None else ', '.join(f'{v:.4f}' for v in found)} "
            f"(left, top, right, bottom; estimated on the training {source} frames)")
        return
    if "ct" in mods:
        raise ValueError("roi: a run with ct judges the whole frame (the volume covers it); --roi none")
    cfg.roi = check_roi(cfg.roi)


def resolve_size(cfg: RunConfig, log=print) -> None:
    """Resolves ``roi`` (resolve_roi), then replaces ``size == "auto"`` by the size for the
    category's training frames cropped to it."""
    resolve_roi(cfg, log)
    if cfg.size == "auto":
        cfg.size = auto_size(*cropped_size(roi_of(cfg), *source_size(cfg.dataset, cfg.category, cfg.modalities[0])))
    if "ct" in cfg.all_modalities() and cfg.ct_grid is None:
        cfg.ct_grid = ct_grid(cfg.dataset, cfg.category)


def train_run(cfg: RunConfig, out_dir: str | Path, log=print) -> dict:
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    resolve_size(cfg, log)
    mods = cfg.all_modalities()
    train_x, _, _ = load_data(cfg, "train")
    val_x, _, _ = load_data(cfg, "validation")
    n = len(train_x[cfg.modalities[0]])
    t_load = time.time() - t0
    log(f"  loaded {n} training and {len(val_x[cfg.modalities[0]])} validation parts "
        f"({'+'.join(mods)}, {cfg.size[0]}x{cfg.size[1]}) in {t_load:.1f}s")
    specs = {m: teacher_spec(cfg, m, train_x, log) for m in mods}
    t_teacher = time.time() - t0 - t_load
    model = build_model(cfg, specs)
    # the small teachers see inputs standardised with the training parts' statistics; a pre-trained
    # backbone sees rgb as in its pre-training (a torchvision one ImageNet's statistics, the corpus
    # teacher its corpus's: real rope 0.801 with the corpus's, 0.760 with ImageNet's, 0.637 with the
    # parts' own; tire 0.611 / 0.558 / 0.491)
    for m in mods:
        if m != "rgb" or cfg.teacher in SMALL_TEACHERS:
            model.teachers[m].input.fit(train_x[m])
        elif cfg.teacher == "corpus":
            model.teachers[m].input.mean.copy_(torch.tensor(CORPUS_RGB_MEAN).view(1, 3, 1, 1))
            model.teachers[m].input.std.copy_(torch.tensor(CORPUS_RGB_STD).view(1, 3, 1, 1))
    if cfg.half:  # the frozen teachers first, so that the students learn the rounded features
        round_to_half_(model.teachers)
    model.fit_inputs(train_x)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.5, 0.999)) if params else None
    g = torch.Generator().manual_seed(cfg.seed)
    t1 = time.time()
    # The teachers are frozen and the inputs are not augmented, so their features are the
    # same every epoch: computed once (a third of the work of an epoch at 128 px).
    cache = teacher_cache(model, train_x) if opt is not None else None
    for ep in range(cfg.epochs if opt is not None else 0):
        model.train()
        perm = torch.randperm(n, generator=g)
        total = 0.0
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            if cache is not None:
                loss = model.loss(None, {m: [f[idx] for f in fs] for m, fs in cache.items()})
            else:
                loss = model.loss({m: x[idx] for m, x in train_x.items()})
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if (ep + 1) % max(1, cfg.epochs // 10) == 0 or ep == 0:
            el = time.time() - t1
            log(f"  epoch {ep + 1}/{cfg.epochs} loss {total / n:.4f}  {el:.0f}s, "
                f"~{el / (ep + 1) * (cfg.epochs - ep - 1):.0f}s to go")
    if cfg.half:
        round_to_half_(model)
    # a normality model fitted rather than trained (a no-op for the others); the second rounding
    # leaves values already rounded as they are
    model.fit_normality(train_x, seed=cfg.seed, log=log)
    for field, value in model.fitted_config().items():  # e.g. the bank's size chosen: the checkpoint rebuilds it
        setattr(cfg, field, value)
    if cfg.half:
        round_to_half_(model)
    t_train = time.time() - t1
    # training parts scored without themselves (a local normality model): calibration parts
    # beside the validation split
    held_out = model.held_out_maps(train_x)
    fit_scorer(model, val_x, held_out=held_out)
    _, val_scores = predict(model, val_x)
    if held_out is not None:
        with torch.no_grad():
            val_scores = np.concatenate([val_scores, model.scorer.forward_upsampled(held_out)[1].numpy()])
        log(f"  calibration: {len(val_scores)} good parts ({len(held_out[0])} training parts held out in turn)")
    cal = M.calibrate_threshold(val_scores, cfg.false_alarm_rate, held_out=0 if held_out is None else len(held_out[0]))
    if cal.distribution["fit"] == "degenerate":
        log(f"  warning: {cal.count} validation score(s) without spread: the threshold is their mean, "
            f"no false-alarm rate holds")
    threshold = cal.as_dict()
    thr = cal.value
    result = {"config": asdict(cfg), "threshold": threshold, "specs": specs,
              "seconds": {"load": t_load, "teacher": t_teacher, "train": t_train}, "trainCount": n}
    test_dir = Path(cfg.dataset) / cfg.category / "test"
    if test_dir.is_dir():
        result["metrics"] = evaluate_model(model, cfg, thr, cal.distribution)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"result": result, "state": model.state_dict()}, out_dir / "model.pt")
    (out_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def evaluate_model(model: Method, cfg: RunConfig, threshold: float, distribution: dict | None = None) -> dict:
    """The test split's figures: I-AUROC, P-AUROC, AUPRO@0.3, F1 and the threshold
    (metrics.evaluate), the share of anomalous parts whose map peaks on their defect
    (``peakOnDefect``), the counts, the figures at the threshold (``atThreshold``: NOK
    recall, false-alarm rate, F1, confusion counts) and, per defect type, that defect's
    parts against all good test parts (``defects``: I-AUROC, P-AUROC, AUPRO@0.3, peak on the
    defect, NOK recall, count; ``perDefect`` repeats its I-AUROC alone); for a model that
    takes ct, per defect inside the material, the error of ``anomaly_depth`` at the map's
    peak against the ct's 3D ground truth, in slices (``depthError``, ``metrics.depth_summary``);
    with the calibration's ``distribution``, the figures at other stated false-alarm rates
    (``operatingPoints``, ``metrics.operating_points``: OPERATING_RATES and the run's own)."""
    test_x, labels, masks, defects, ids = _load_samples(cfg, "test")
    depths: list = []
    maps, scores = predict(model, test_x, depths=depths)
    res = M.evaluate(scores, labels, maps, masks, threshold).as_dict()
    res["peakOnDefect"] = M.peak_on_defect(maps, masks)
    res["testCount"] = len(labels)
    res["goodCount"] = int((labels == 0).sum())
    res["atThreshold"] = M.at_threshold(scores, labels, threshold)
    res["defects"] = M.per_defect(scores, maps, masks, defects, threshold)
    res["perDefect"] = {d: v["i_auroc"] for d, v in res["defects"].items() if v["i_auroc"] is not None}
    if distribution is not None and res["goodCount"] and res["goodCount"] < len(labels):
        res["operatingPoints"] = M.operating_points(scores, labels, distribution,
                                                    (*M.OPERATING_RATES, cfg.false_alarm_rate))
    if depths:
        res["depthError"] = _depth_error(cfg, maps, np.concatenate(depths), defects, ids)
    return res


def _depth_error(cfg: RunConfig, maps: np.ndarray, depths: np.ndarray, defects: np.ndarray, ids: list[str]) -> dict:
    """``metrics.depth_summary`` per defect inside the material whose parts have a 3D mask (gt_ct)."""
    from .data import read_ct
    from .data.dataset import INTERIOR_DEFECTS

    out = {}
    for d in INTERIOR_DEFECTS:
        sel = [i for i, x in enumerate(defects) if x == d]
        files = [Path(cfg.dataset) / cfg.category / "test" / d / "gt_ct" / (ids[i].rsplit("/", 1)[1] + ".tiff")
                 for i in sel]
        if not sel or not all(f.exists() for f in files):
            continue
        errors, on = M.depth_errors(maps[sel], depths[sel], [read_ct(f) for f in files])
        out[d] = M.depth_summary(errors, on)
    return out


def load_checkpoint(path: str | Path) -> tuple[Method, RunConfig, dict]:
    """A run folder's (or a model.pt file's) model, config and result."""
    path = Path(path)
    ck = torch.load(path / "model.pt" if path.is_dir() else path, map_location="cpu", weights_only=False)
    res = ck["result"]
    known = set(RunConfig.__dataclass_fields__)
    conf = {k: v for k, v in res["config"].items() if k in known}
    conf.setdefault("slim", False)  # checkpoints from before these options: full width,
    conf.setdefault("ir_robust", False)  # plain ir statistics
    conf.setdefault("xyz_face", False)  # the xyz height above the support plane
    conf.setdefault("input_weight", 0.0)  # and no pooled input in a memory bank
    conf.setdefault("discriminator", False)  # nor a discriminator head
    conf.setdefault("align", "none")  # nor an aligner
    conf.setdefault("map_sigma", 4.0)  # and maps smoothed by 4 px at 256 px
    conf.setdefault("rgb_gamma", 1.0)  # and rgb linear (before the response curve)
    tm = conf.get("train_modalities")
    cfg = RunConfig(**{**conf, "modalities": tuple(conf["modalities"]), "size": tuple(conf["size"]),
                       "widths": tuple(conf["widths"]), "train_modalities": tuple(tm) if tm else None,
                       "ct_grid": tuple(conf["ct_grid"]) if conf.get("ct_grid") else None,
                       # checkpoints from before the roi: the whole frame
                       "roi": tuple(conf["roi"]) if conf.get("roi") else None})
    # the weights come from the checkpoint; the path only tells which modalities share a teacher
    specs = {m: {**{k: v for k, v in s.items() if k != "weights"}, **({"weightsId": s["weights"]} if s.get("weights") else {})}
             for m, s in res["specs"].items()}
    model = build_model(cfg, specs)
    model.load_state_dict(ck["state"])
    return model.eval(), cfg, res

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
from .data import load_split, stack
from .models import CrossmodalReverseDistillation
from .teachers import pretrain_procedural, pretrain_selfsup, save_encoder

THRESHOLD_RULE = "mean + {k} * std (ddof=1) of the image scores of the validation good parts"


@dataclass
class RunConfig:
    dataset: str
    category: str
    modalities: tuple[str, ...]
    method: str = "crd"
    size: tuple[int, int] = (64, 64)
    teacher: str = "procedural"  # random | procedural | selfsup | path to a torchvision checkpoint
    resnet_arch: str = "resnet18"
    widths: tuple[int, int, int] = (32, 64, 128)
    epochs: int = 40
    batch_size: int = 8
    lr: float = 2e-3
    fusion: str = "max"
    sigmas: float = 3.0
    seed: int = 0
    teacher_dir: str = "out/teachers"
    plane_removal: bool = False


def load_data(cfg: RunConfig, split: str) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    samples = load_split(cfg.dataset, cfg.category, split, tuple(cfg.modalities), tuple(cfg.size), cfg.plane_removal)
    inputs = {m: torch.from_numpy(stack(samples, m)) for m in cfg.modalities}
    labels = np.array([s.label for s in samples])
    masks = stack(samples, "mask")
    return inputs, labels, masks


def teacher_spec(cfg: RunConfig, modality: str, train_inputs: dict[str, torch.Tensor], log=print) -> dict:
    """Encoder spec of the modality's teacher; pre-trains (and caches) it when needed."""
    if cfg.teacher not in ("random", "procedural", "selfsup"):
        return {"kind": "resnet", "arch": cfg.resnet_arch, "weights": cfg.teacher}
    spec = {"kind": "small", "widths": list(cfg.widths)}
    if cfg.teacher == "random":
        return spec
    tdir = Path(cfg.teacher_dir)
    w = "-".join(map(str, cfg.widths))
    if cfg.teacher == "procedural":  # one per size and width, shared by all modalities
        path = tdir / f"procedural-{cfg.size[0]}-{w}-s{cfg.seed}.pt"
        if not path.exists():
            torch.manual_seed(cfg.seed)
            save_encoder(pretrain_procedural(cfg.widths, cfg.size[0], seed=cfg.seed, log=log), path)
    else:  # per dataset, category and modality
        tag = f"{Path(cfg.dataset).name}-{cfg.category}-{modality}-{cfg.size[0]}-{w}-s{cfg.seed}"
        path = tdir / f"selfsup-{tag}.pt"
        if not path.exists():
            from .models.preprocess import build_input

            pre = build_input(modality, tuple(cfg.size))
            pre.fit(train_inputs[modality])
            with torch.no_grad():
                x = pre(train_inputs[modality]).contiguous()
            save_encoder(pretrain_selfsup(x, cfg.widths, seed=cfg.seed, log=log), path)
    return {**spec, "weights": str(path)}


def build_model(cfg: RunConfig, specs: dict[str, dict]) -> torch.nn.Module:
    if cfg.method == "crd":
        return CrossmodalReverseDistillation(tuple(cfg.modalities), tuple(cfg.size), specs, fusion=cfg.fusion)
    raise ValueError(f"unknown method {cfg.method!r}")


@torch.no_grad()
def predict(model, inputs: dict[str, torch.Tensor], batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    n = len(next(iter(inputs.values())))
    maps, scores = [], []
    for i in range(0, n, batch):
        r = model({m: x[i:i + batch] for m, x in inputs.items()})
        maps.append(r.anomaly_map.numpy())
        scores.append(r.score.numpy())
    return np.concatenate(maps), np.concatenate(scores)


@torch.no_grad()
def fit_scorer(model, val_inputs: dict[str, torch.Tensor], batch: int = 16) -> None:
    model.eval()
    n = len(next(iter(val_inputs.values())))
    per_branch = None
    for i in range(0, n, batch):
        maps = model.branch_maps({m: x[i:i + batch] for m, x in val_inputs.items()})
        per_branch = maps if per_branch is None else [torch.cat([a, b]) for a, b in zip(per_branch, maps)]
    model.scorer.fit(per_branch)


def train_run(cfg: RunConfig, out_dir: str | Path, log=print) -> dict:
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    train_x, _, _ = load_data(cfg, "train")
    val_x, _, _ = load_data(cfg, "validation")
    specs = {m: teacher_spec(cfg, m, train_x, log) for m in cfg.modalities}
    t_teacher = time.time() - t0
    model = build_model(cfg, specs)
    if cfg.teacher in ("random", "procedural", "selfsup"):
        # the small teachers see inputs standardised with the training parts' statistics;
        # a torchvision backbone keeps the ImageNet statistics it was trained with
        for m in cfg.modalities:
            model.teachers[m].input.fit(train_x[m])
    else:
        for m in cfg.modalities:
            if m != "rgb":
                model.teachers[m].input.fit(train_x[m])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.5, 0.999))
    n = len(train_x[cfg.modalities[0]])
    g = torch.Generator().manual_seed(cfg.seed)
    t1 = time.time()
    for ep in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        total = 0.0
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            loss = model.loss({m: x[idx] for m, x in train_x.items()})
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if (ep + 1) % max(1, cfg.epochs // 5) == 0 or ep == 0:
            log(f"  epoch {ep + 1}/{cfg.epochs} loss {total / n:.4f}")
    t_train = time.time() - t1
    fit_scorer(model, val_x)
    _, val_scores = predict(model, val_x)
    thr = M.calibrate_threshold(val_scores, cfg.sigmas)
    threshold = {
        "value": thr, "rule": THRESHOLD_RULE.format(k=cfg.sigmas), "sigmas": cfg.sigmas,
        "validationCount": int(len(val_scores)), "validationMean": float(val_scores.mean()),
        "validationStd": float(val_scores.std(ddof=1)) if len(val_scores) > 1 else 0.0,
    }
    result = {"config": asdict(cfg), "threshold": threshold, "specs": specs,
              "seconds": {"teacher": t_teacher, "train": t_train}, "trainCount": n}
    test_dir = Path(cfg.dataset) / cfg.category / "test"
    if test_dir.is_dir():
        result["metrics"] = evaluate_model(model, cfg, thr)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"result": result, "state": model.state_dict()}, out_dir / "model.pt")
    (out_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def evaluate_model(model, cfg: RunConfig, threshold: float) -> dict:
    test_x, labels, masks = load_data(cfg, "test")
    maps, scores = predict(model, test_x)
    res = M.evaluate(scores, labels, maps, masks, threshold).as_dict()
    res["testCount"] = int(len(labels))
    # per defect type: image AUROC of that defect against the test good parts
    samples = load_split(cfg.dataset, cfg.category, "test", tuple(cfg.modalities[:1]), tuple(cfg.size))
    defects = np.array([s.defect for s in samples])
    res["perDefect"] = {
        d: M.image_auroc(np.r_[scores[defects == "good"], scores[defects == d]],
                         np.r_[np.zeros((defects == "good").sum()), np.ones((defects == d).sum())])
        for d in sorted(set(defects) - {"good"}) if (defects == "good").any()
    }
    return res


def load_checkpoint(path: str | Path):
    ck = torch.load(path, map_location="cpu", weights_only=False)
    res = ck["result"]
    known = set(RunConfig.__dataclass_fields__)
    conf = {k: v for k, v in res["config"].items() if k in known}
    cfg = RunConfig(**{**conf, "modalities": tuple(conf["modalities"]),
                       "size": tuple(conf["size"]), "widths": tuple(conf["widths"])})
    specs = {m: {k: v for k, v in s.items() if k != "weights"} for m, s in res["specs"].items()}
    model = build_model(cfg, specs)
    model.load_state_dict(ck["state"])
    return model.eval(), cfg, res

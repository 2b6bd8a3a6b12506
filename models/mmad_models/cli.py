"""Command line: python -m mmad_models <command> ...

  synth    write the procedural development dataset (MVTec 3D-AD layout)
  train    train one method on one modality subset, calibrate, evaluate, save a checkpoint
  eval     print one table, method x modality subset, from checkpoints (re-evaluated)
  report   per category: the runs' figures overall and per defect type, at the shipped
           threshold, beside the published MVTec 3D-AD figures (text, or --markdown FILE)
  export   ONNX + manifest entry + parity fixtures from checkpoints
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .data import modality_list
from .data.dataset import INTERIOR_DEFECTS
from .methods import METHODS
from .methods.preprocess import RGB_GAMMA, check_rgb_gamma
from .methods.scoring import MAP_SIGMA

# train --method without one
DEFAULT_METHOD = "mtfi"


def _rate(s: str) -> float:
    try:
        r = float(s)
    except ValueError:
        r = float("nan")
    if not 0.0 < r < 1.0:
        raise argparse.ArgumentTypeError(f"a false-alarm rate is a probability strictly between 0 and 1, got {s!r}")
    return r


def _sigma(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        v = float("nan")
    if not 0.0 <= v <= 64.0:
        raise argparse.ArgumentTypeError(f"the map's smoothing is 0 (none) or a sigma in pixels up to 64, got {s!r}")
    return v


def _widths(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"three positive channel counts, e.g. 64,128,256, not {text!r}")
    a, b, c = (int(p) for p in parts)
    return (a, b, c)


def _gamma(s: str) -> float:
    try:
        return check_rgb_gamma(float(s))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r}: the exponent must be a number in (0, 1]") from None


def _size(s: str) -> tuple[int, int] | str:
    if s.lower() == "auto":
        return "auto"
    parts = [int(p) for p in s.lower().split("x")]
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def _roi(s: str):
    from .data.roi import parse_roi

    try:
        return parse_roi(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_synth(a) -> int:
    from .data.synthetic import write_dataset

    cat = write_dataset(a.root, a.category, a.size, a.train, a.validation, a.test_good, a.test_per_defect, seed=a.seed)
    print(f"wrote {cat}")
    return 0


def cmd_pretrain(a) -> int:
    from .teachers import pretrain_resnet

    if a.dense and a.objective != "simclr":
        raise SystemExit("pretrain: --dense applies to --objective simclr")
    if a.init and not Path(a.init).is_file():
        raise SystemExit(f"pretrain: --init {a.init}: no such teacher file")
    if a.threads:
        torch.set_num_threads(a.threads)
    path = pretrain_resnet(a.out, arch=a.arch, objective=a.objective, steps=a.steps, minutes=a.minutes,
                           batch_size=a.batch, size=a.size, classes=a.classes, lr=a.lr, seed=a.seed,
                           device=a.device, resume=a.resume, init=a.init, dense=a.dense,
                           log=lambda m: print(m, flush=True))
    print(f"wrote {path}")
    return 0


def cmd_train(a) -> int:
    from .train import RunConfig, train_run

    torch.set_num_threads(a.threads)
    cfg = RunConfig(dataset=a.dataset, category=a.category, modalities=a.modalities, method=a.method,
                    size=a.size, roi=a.roi, teacher=a.teacher, resnet_arch=a.resnet_arch, epochs=a.epochs,
                    batch_size=a.batch_size, lr=a.lr, fusion=a.fusion, map_sigma=a.map_sigma, false_alarm_rate=a.false_alarm_rate, seed=a.seed,
                    teacher_dir=a.teacher_dir, plane_removal=a.plane_removal,
                    train_modalities=a.train_modalities, normality=a.normality, bank_size=a.bank_size, input_weight=a.input_weight, bank_dims=a.bank_dims,
                    discriminator=a.discriminator, head_steps=a.head_steps, align=a.align, local_dims=a.local_dims,
                    slim=a.slim, half=a.half, ir_robust=a.ir_robust, xyz_face=a.xyz_face, rgb_gamma=a.rgb_gamma, ir_relative=a.ir_relative, local_jitter=a.local_jitter, local_pool=a.local_pool, input_detail=a.input_detail, keep_input=a.keep_input,
                    widths=a.teacher_widths)
    # every method's own options are parsed whatever --method is: each method refuses what it cannot serve
    for name, method in METHODS.items():
        method.check_cli_options(a, chosen=name == a.method)
    out = a.out or f"out/runs/{a.method}-{'-'.join(a.modalities)}"
    res = train_run(cfg, out)
    print(json.dumps({"out": out, "threshold": res["threshold"]["value"], "metrics": res.get("metrics"),
                      "seconds": res["seconds"]}, indent=2))
    return 0


def _fmt(x) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def cmd_eval(a) -> int:
    from .report import evaluate_runs

    torch.set_num_threads(a.threads)
    rows = []
    for r in evaluate_runs(a.checkpoints, a.dataset):
        cfg, m = r.cfg, r.metrics
        trained = "+".join(cfg.all_modalities())
        secs = r.result["seconds"].get("train", 0.0) + r.result["seconds"].get("teacher", 0.0)
        rows.append((cfg.method, "+".join(cfg.modalities), trained, cfg.teacher if len(cfg.teacher) < 24 else "file",
                     f"{cfg.size[0]}x{cfg.size[1]}", secs, m))
    # one row per run: the method, the modalities at inference and those it was trained on;
    # peak: share of anomalous parts whose map peaks on their defect; recall and FAR
    # (false-alarm rate) of the NOK verdicts at the run's threshold
    head = (f"{'method':<7} {'modalities':<12} {'trained on':<12} {'teacher':<11} {'size':<8} {'I-AUROC':>8} "
            f"{'P-AUROC':>8} {'AUPRO@0.3':>10} {'peak':>6} {'F1':>6} {'recall':>6} {'FAR':>6} {'thr':>7} {'train s':>8}")
    print(head)
    print("-" * len(head))
    for method, mods, trained, teacher, size, secs, m in rows:
        print(f"{method:<7} {mods:<12} {trained:<12} {teacher:<11} {size:<8} {_fmt(m['i_auroc']):>8} {_fmt(m['p_auroc']):>8} "
              f"{_fmt(m['aupro_0_3']):>10} {_fmt(m.get('peakOnDefect')):>6} {_fmt(m['f1']):>6} {_fmt(m['recall']):>6} {_fmt(m['falseAlarmRate']):>6} "
              f"{m['threshold']:>7.2f} {secs:>8.0f}")
    if a.per_defect:
        defects = sorted({d for *_, m in rows for d in m.get("perDefect", {})})
        print()
        print(f"{'method':<7} {'modalities':<12} {'trained on':<12} " + " ".join(f"{d[:10]:>10}" for d in defects))
        for method, mods, trained, _, _, _, m in rows:
            pd = m.get("perDefect", {})
            print(f"{method:<7} {mods:<12} {trained:<12} " + " ".join(f"{_fmt(pd.get(d)):>10}" for d in defects))
    return 0


def cmd_report(a) -> int:
    from .report import evaluate_runs, sections, to_markdown, to_text

    torch.set_num_threads(a.threads)
    secs = sections(evaluate_runs(a.checkpoints, a.dataset))
    print(to_text(secs))
    if a.markdown:
        Path(a.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(a.markdown).write_text(to_markdown(secs))
        print(f"markdown {a.markdown}")
    return 0


def cmd_export(a) -> int:
    from .data import load_split, stack
    from .export import check_manifest, export_model, manifest_entry, write_manifest
    from .manifest import ManifestError
    from .train import load_checkpoint, roi_of

    torch.set_num_threads(a.threads)
    runs = []
    for ck in a.checkpoints:
        model, cfg, res = load_checkpoint(ck)
        mid = f"{cfg.method}-{'-'.join(cfg.modalities)}"
        metrics = res.get("metrics")
        if metrics is not None:
            metrics = {k: metrics[k] for k in ("i_auroc", "p_auroc", "aupro_0_3", "f1", "recall", "falseAlarmRate",
                                               "threshold", "testCount", "peakOnDefect")
                       if metrics.get(k) is not None}
        training = {"dataset": cfg.dataset, "category": cfg.category, "trainCount": res["trainCount"],
                    "epochs": cfg.epochs, "seconds": round(sum(res["seconds"].values()), 1),
                    "teacher": {m: {"spec": {k: v for k, v in s.items() if k != "weights"}, "source": cfg.teacher}
                                for m, s in res["specs"].items()},
                    "fusion": cfg.fusion, "mapSigma": cfg.map_sigma, "seed": cfg.seed, "size": list(cfg.size),
                    **model.training_record(cfg)}
        runs.append((model, cfg, res, mid, metrics, training))
    # The manifest these runs make, checked before anything is written: a run from before the
    # current calibration (no threshold.falseAlarmRate) or a bad field stops here, named.
    try:
        check_manifest(a.out, [manifest_entry(model, mid, a.version, cfg.method, res["threshold"], metrics, training,
                                              roi=roi_of(cfg))
                               for model, cfg, res, mid, metrics, training in runs])
    except ManifestError as e:
        raise SystemExit(f"export: nothing written: {e}") from None
    entries = []
    for model, cfg, res, mid, metrics, training in runs:
        # parity inputs: the first good and the first anomalous test part when there is a
        # test split, else the first two validation parts; a model that takes ct, whose
        # volume is 2 MB a part, the first part with a defect inside the material alone
        split = "test" if (Path(cfg.dataset) / cfg.category / "test").is_dir() else "validation"
        samples = load_split(cfg.dataset, cfg.category, split, tuple(cfg.modalities), tuple(cfg.size),
                             ct_grid=tuple(cfg.ct_grid) if cfg.ct_grid else None, roi=roi_of(cfg))
        good = [s for s in samples if s.label == 0][:1]
        bad = [s for s in samples if s.label == 1][:1]
        pick = (good + bad) if len(good + bad) == 2 else samples[:2]
        if "ct" in cfg.modalities:
            interior = [s for s in samples if s.defect in INTERIOR_DEFECTS]
            pick = (interior or bad or samples)[:1]
        inputs = {m: stack(pick, m) for m in cfg.modalities}
        e = export_model(model, a.out, mid, a.version, cfg.method, res["threshold"], metrics, training, inputs,
                         roi=roi_of(cfg))
        print(f"exported {a.out}/{e['file']} ({e['sizeBytes'] / 1e6:.1f} MB) max |ort - torch| "
              f"map {e['parity']['maxAbsErrorVsPytorch']['anomaly_map']:.2e} score {e['parity']['maxAbsErrorVsPytorch']['score']:.2e}")
        entries.append(e)
    print(f"manifest {write_manifest(a.out, entries)}")
    return 0


def _version(s: str) -> str:
    from .manifest import ManifestError, check_version

    try:
        return check_version(s)
    except ManifestError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmad_models", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("synth", help="write the procedural development dataset")
    s.add_argument("--root", required=True)
    s.add_argument("--category", default="slab")
    s.add_argument("--size", type=_size, default=(64, 64), help="HxW or N (default 64)")
    s.add_argument("--train", type=int, default=48)
    s.add_argument("--validation", type=int, default=12)
    s.add_argument("--test-good", type=int, default=16)
    s.add_argument("--test-per-defect", type=int, default=8)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_synth)

    t = sub.add_parser("train", help="train, calibrate and evaluate one model")
    t.add_argument("--dataset", required=True, help="dataset root (MVTec 3D-AD layout)")
    t.add_argument("--category", required=True)
    t.add_argument("--modalities", type=modality_list, required=True, help="e.g. rgb,ir,xyz or rgb,ir,ct")
    # the default method first, then the others by name
    described = sorted(METHODS, key=lambda n: (n != DEFAULT_METHOD, n))
    t.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(METHODS),
                   help="; ".join(f"{n}{' (default)' if n == DEFAULT_METHOD else ''}: {METHODS[n].summary}" for n in described))
    for name in sorted(METHODS):
        METHODS[name].add_cli_options(t)
    t.add_argument("--slim", action=argparse.BooleanOptionalAction, default=True,
                   help="lighter bottleneck, decoders and amplifiers (default; --no-slim: the full widths)")
    t.add_argument("--ir-robust", action=argparse.BooleanOptionalAction, default=False,
                   help="standardise ir by median / interquartile range with a soft clip instead of mean / std")
    t.add_argument("--xyz-face", action=argparse.BooleanOptionalAction, default=False,
                   help="xyz height channel relative to the part's dominant face (a Tukey-reweighted plane fit), "
                        "signed-log compressed, instead of the height above the support plane; suits parts with "
                        "one dominant face (default off)")
    t.add_argument("--rgb-gamma", type=_gamma, default=RGB_GAMMA,
                   help=f"the rgb values the teacher sees, (x / 255) ** G inside the graph (default {RGB_GAMMA}: dark "
                        "detail lifted, highlights compressed; 1: linear, as the shipped 0.11.0 students)")
    t.add_argument("--half", action=argparse.BooleanOptionalAction, default=True,
                   help="round weights to float16 values, stored as float16 in the ONNX file (half the size)")
    t.add_argument("--roi", type=_roi, default="none",
                   help="the box of the 2D frames the model judges: none (default: the whole frame), auto (the "
                        "union of the training parts' boxes, found on their rgb or ir frames, widened by 1/16 each "
                        "side; the whole frame when the part fills it, and always with ct), or LEFT,TOP,RIGHT,BOTTOM "
                        "fractions of the frame; the service crops every frame to it before resizing (manifest "
                        "inputs[].roi); nothing outside it is judged")
    t.add_argument("--size", type=_size, default="auto",
                   help="HxW or N the model takes; auto (default): the training frames' aspect (within the roi) at about 240x536 pixels (128 640), multiples of 8; a frame that would shrink by less than 0.75 keeps its own size")
    t.add_argument("--teacher", default="corpus",
                   help="corpus (default: the shipped ResNet-18 pre-trained on the formula-driven corpus) | "
                        "procedural | selfsup | random | path of a local torchvision ResNet checkpoint")
    t.add_argument("--resnet-arch", default="resnet18", help="architecture of --teacher FILE")
    t.add_argument("--teacher-widths", type=_widths, default=(32, 64, 128),
                   help="channels of the small encoder's three stages for random, procedural and selfsup "
                        "teachers, e.g. 64,128,256 (default 32,64,128: the shipped teacher; another width is "
                        "pre-trained once and cached in --teacher-dir)")
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--fusion", default="max", choices=["max", "sum"])
    t.add_argument("--map-sigma", type=_sigma, default=None, metavar="PX",
                   help=f"the anomaly map's Gaussian smoothing, in pixels at 256 px (scaled to the input's shorter "
                        f"side, 0.5 px at least; 0: none); default {MAP_SIGMA:g}, 1 for mtfi --normality local")
    t.add_argument("--false-alarm-rate", type=_rate, default=0.01,
                   help="share of good parts the threshold may call NOK (default 0.01): the threshold is the quantile "
                        "at 1 - RATE of a Gumbel fitted to the validation good parts' scores")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--teacher-dir", default="out/teachers", help="cache of pre-trained teachers")
    t.add_argument("--plane-removal", action="store_true", help="RANSAC background-plane removal when loading xyz")
    t.add_argument("--out", help="run folder (default out/runs/<method>-<modalities>)")
    t.add_argument("--threads", type=int, default=2)
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("eval", help="evaluation table from checkpoints")
    e.add_argument("checkpoints", nargs="+", help="run folders or model.pt files")
    e.add_argument("--dataset", help="evaluate on this dataset root instead of the training one")
    e.add_argument("--per-defect", action="store_true", help="also print the image AUROC of each defect type")
    e.add_argument("--threads", type=int, default=2)
    e.set_defaults(fn=cmd_eval)

    r = sub.add_parser("report", help="per category: overall and per-defect figures beside the published ones")
    r.add_argument("checkpoints", nargs="+", help="run folders or model.pt files")
    r.add_argument("--dataset", help="evaluate on this dataset root instead of the training one")
    r.add_argument("--markdown", help="also write the report as markdown to this file")
    r.add_argument("--threads", type=int, default=2)
    r.set_defaults(fn=cmd_report)

    q = sub.add_parser("pretrain", help="pre-train a ResNet teacher on the formula-driven corpus (GPU or CPU)")
    q.add_argument("--out", required=True, help="the teacher file (then: train --teacher FILE --resnet-arch ARCH)")
    q.add_argument("--arch", default="resnet18")
    q.add_argument("--objective", choices=("simclr", "classify"), default="simclr")
    n = q.add_mutually_exclusive_group(required=True)
    n.add_argument("--steps", type=int, help="optimiser steps (the run's length, reproducible)")
    n.add_argument("--minutes", type=float, help="fill this time: the step count is fixed after 40 steps and logged")
    q.add_argument("--batch", type=int, default=256, help="images a step (simclr: two views of each)")
    q.add_argument("--size", type=int, default=128, help="the views' side in pixels")
    q.add_argument("--classes", type=int, default=1000, help="fractal classes (classify)")
    q.add_argument("--lr", type=float, default=2e-3)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="auto", help="auto (cuda when there is one), cpu, cuda")
    q.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    q.add_argument("--resume", action="store_true", help="continue from OUT.resume")
    q.add_argument("--init", help="start the encoder from this teacher file (a longer pre-training in stages)")
    q.add_argument("--dense", type=float, default=0.0,
                   help="simclr: weight of the dense loss (a location of one view against the same place in the other)")
    q.set_defaults(fn=cmd_pretrain)

    x = sub.add_parser("export", help="ONNX + manifest + parity fixtures")
    x.add_argument("checkpoints", nargs="+")
    x.add_argument("--out", default="exported", help="folder of the ONNX files and manifest.json")
    x.add_argument("--version", type=_version, default="0.1.0", help="the models' version, MAJOR.MINOR.PATCH")
    x.add_argument("--threads", type=int, default=2)
    x.set_defaults(fn=cmd_export)

    a = p.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())

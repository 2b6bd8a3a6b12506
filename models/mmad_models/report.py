"""The evaluation report: per category, our runs beside the published figures.

Each run folder's checkpoint is re-evaluated on the test split (``train.evaluate_model``,
the figures of ``metrics.py``; nothing is read back from ``result.json``) at the run's own
shipped threshold (``result["threshold"]["value"]``). Per category one table:

1. our runs, whole test split: I-AUROC, P-AUROC, AUPRO@0.3, the share of anomalous parts
   whose map peaks on their defect (``metrics.peak_on_defect``), and what the line sees at the
   threshold: NOK recall (share of anomalous parts flagged), false alarms (share of good
   parts flagged), F1 of the NOK verdicts;
2. per defect type (grouped by defect, runs side by side): that defect's parts against all
   good test parts (I-AUROC), the pixels of that defect's images plus the good images
   (P-AUROC, AUPRO@0.3), the share of its parts whose map peaks on the defect, and the share
   of them flagged (NOK recall); for a model that takes ct, per defect inside the material,
   the error of ``anomaly_depth`` at the map's peak against the ct's 3D mask (slices);
3. the published rows for the category (``published.py``): I-AUROC and AUPRO@0.3, the
   method's input and whether it starts from pre-trained weights, from-scratch ones first.

The published figures are on the MVTec 3D-AD test split; ours are on whatever dataset the
run is evaluated on, named in the section title. They compare only when that dataset is
MVTec 3D-AD itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .published import Published, for_category
from .train import SELF_OBTAINED, RunConfig, evaluate_model, load_checkpoint

LEGEND = (
    "NOK recall: share of anomalous test parts with score >= the run's threshold (per defect: "
    "of that defect's parts); false alarms: share of good test parts with score >= the threshold; "
    "F1 of the NOK verdicts at it. Per defect: that defect's parts against all good test parts; "
    "P-AUROC and AUPRO@0.3 over that defect's images plus the good images. Peak on defect: share of "
    "anomalous parts whose map maximum (the image score) lies on their defect's ground truth, widened by 1/64 "
    "of the shorter side; a high I-AUROC with a low share ranks something else than the defects. Depth error (ct "
    "models, defects inside the material): mean |anomaly_depth at the map's peak - the 3D mask's mean slice in that "
    "column| in slices, over the parts whose peak's column holds the defect (how many of how many). Published: I-AUROC "
    "and AUPRO@0.3 on the MVTec 3D-AD test split, from the source listed under the table."
)
POINTS_LEGEND = (
    "Operating points: the same calibration at other stated false-alarm rates (inference.threshold's rate "
    "in the service; * the run's own): the threshold it gives, the NOK recall and the good test parts flagged "
    "there, and the recall of the best threshold chosen after the fact on these test parts with no more "
    "good parts over it (what the ranking allows at that many false alarms)."
)
_MODS = {"rgb": "RGB", "3d": "3D", "rgb+3d": "RGB+3D"}
HEADER = ("", "method", "modalities", "weights", "size", "defect", "parts", "I-AUROC", "P-AUROC",
          "AUPRO@0.3", "peak on defect", "NOK recall", "false alarms", "F1", "threshold", "depth error")
POINTS_HEADER = ("method", "modalities", "weights", "size", "stated rate", "threshold", "NOK recall", "false alarms",
                 "best recall at as many")


@dataclass
class RunEval:
    """One run re-evaluated: its folder, configuration, stored result and fresh figures."""
    path: str
    cfg: RunConfig
    result: dict
    metrics: dict

    @property
    def modalities(self) -> str:
        mods = "+".join(self.cfg.modalities)
        trained = "+".join(self.cfg.all_modalities())
        return mods if trained == mods else f"{mods} (trained {trained})"

    @property
    def teacher(self) -> str:
        return self.cfg.teacher if self.cfg.teacher in SELF_OBTAINED else "file"

    @property
    def weights(self) -> str:
        """Where the run's teacher weights come from, in the published rows' terms: the
        procedural and corpus teachers are pre-trained, but on generated images, no real image."""
        return {"random": "from scratch", "selfsup": "from scratch (selfsup)",
                "procedural": "procedural teacher", "corpus": "corpus teacher (resnet18)"}.get(self.teacher, f"pretrained ({self.cfg.resnet_arch} file)")

    @property
    def size(self) -> str:
        return f"{self.cfg.size[0]}x{self.cfg.size[1]}"


def evaluate_runs(paths, dataset: str | None = None) -> list[RunEval]:
    """Re-evaluates each run folder (or model.pt) at its calibrated threshold;
    ``dataset`` evaluates on another dataset root than the training one."""
    runs = []
    for p in paths:
        model, cfg, res = load_checkpoint(p)
        if dataset:
            cfg.dataset = dataset
        t = res["threshold"]
        runs.append(RunEval(str(p), cfg, res, evaluate_model(model, cfg, t["value"], t.get("distribution"))))
    return runs


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _depth(e: dict | None) -> str:
    if not e:
        return ""
    return f"{_f(e['mean'])[:-1]} ({e['onDefect']}/{e['count']})"


@dataclass
class Section:
    title: str
    rows: list[tuple[str, ...]]
    sources: list[Published]
    # the runs' operating points (POINTS_HEADER); empty when no run has them
    points: list[tuple[str, ...]] = field(default_factory=list)


def sections(runs: list[RunEval]) -> list[Section]:
    """One section per (dataset, category), in the order the runs were given."""
    groups: dict[tuple[str, str], list[RunEval]] = {}
    for r in runs:
        groups.setdefault((r.cfg.dataset, r.cfg.category), []).append(r)
    out = []
    for (dataset, category), group in groups.items():
        rows = []
        for r in group:
            m, t = r.metrics, r.metrics["atThreshold"]
            rows.append(("ours", r.cfg.method, r.modalities, r.weights, r.size, "all",
                         f"{m['testCount']} ({m['goodCount']} good)", _f(m["i_auroc"]), _f(m["p_auroc"]),
                         _f(m["aupro_0_3"]), _f(m.get("peakOnDefect")), _f(t["nok_recall"]), _f(t["false_alarm_rate"]), _f(t["f1"]),
                         f"{r.result['threshold']['value']:.2f}", ""))
        defects = sorted({d for r in group for d in r.metrics["defects"]})
        for d in defects:
            for r in group:
                v = r.metrics["defects"].get(d)
                if v is not None:
                    rows.append(("ours", r.cfg.method, r.modalities, r.weights, r.size, d, str(v["count"]),
                                 _f(v["i_auroc"]), _f(v["p_auroc"]), _f(v["aupro_0_3"]), _f(v.get("peak_on_defect")),
                                 _f(v["nok_recall"]),
                                 "", "", "", _depth(r.metrics.get("depthError", {}).get(d))))
        published = for_category(category)
        for p, i_auroc, aupro in published:
            rows.append(("published", p.method, f"{_MODS[p.modalities]}: {p.input}",
                         "from scratch" if p.from_scratch else "pretrained", "", "all", "",
                         _f(i_auroc), "", _f(aupro), "", "", "", "", "", ""))
        n = group[0].metrics
        title = (f"{category} — {dataset}: {n['testCount']} test parts, {n['goodCount']} good, "
                 f"{len(defects)} defect types")
        out.append(Section(title, rows, [p for p, _, _ in published], [x for r in group for x in _points(r)]))
    return out


def _points(r: RunEval) -> list[tuple[str, ...]]:
    own = r.result["threshold"].get("falseAlarmRate")
    return [(r.cfg.method, r.modalities, r.weights, r.size, f"{p['statedRate']:g}" + (" *" if p["statedRate"] == own else ""),
             f"{p['threshold']:.2f}", _f(p["nokRecall"]), f"{p['falseAlarms']} of {p['goodCount']}", _f(p["bestRecall"]))
            for p in r.metrics.get("operatingPoints", [])]


def _source_lines(sources: list[Published]) -> list[str]:
    return [f"{p.method} ({_MODS[p.modalities]}, {p.weights}): {p.source}" + (f"; {p.note}" if p.note else "")
            for p in sources]


def _text_table(header: tuple[str, ...], rows: list[tuple[str, ...]], first_figure: int) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def fmt(row):  # the figures (from first_figure on) right-aligned
        return "  ".join(c.rjust(w) if i >= first_figure else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return [fmt(header), "-" * len(fmt(header)), *(fmt(r) for r in rows)]


def _markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]], first_figure: int) -> list[str]:
    return ["| " + " | ".join(header) + " |",
            "|" + "|".join("---:" if i >= first_figure else "---" for i in range(len(header))) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def to_text(secs: list[Section]) -> str:
    lines = [LEGEND, POINTS_LEGEND, ""]
    for s in secs:
        lines += [s.title, *_text_table(HEADER, s.rows, 7)]
        if s.sources:
            lines += ["published rows:"] + [f"  {x}" for x in _source_lines(s.sources)]
        else:
            lines.append("no published MVTec 3D-AD figures for this category")
        if s.points:
            lines += ["operating points:", *_text_table(POINTS_HEADER, s.points, 4)]
        lines.append("")
    return "\n".join(lines)


def to_markdown(secs: list[Section]) -> str:
    lines = [LEGEND, "", POINTS_LEGEND, ""]
    for s in secs:
        lines += [f"### {s.title}", "", *_markdown_table(HEADER, s.rows, 7)]
        lines.append("")
        if s.sources:
            lines += ["Published rows:", ""] + [f"* {x}" for x in _source_lines(s.sources)]
        else:
            lines.append("No published MVTec 3D-AD figures for this category.")
        lines.append("")
        if s.points:
            lines += ["Operating points:", "", *_markdown_table(POINTS_HEADER, s.points, 4), ""]
    return "\n".join(lines)

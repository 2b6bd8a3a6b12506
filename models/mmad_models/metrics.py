"""Evaluation metrics of MVTec 3D-AD, implemented once.

* I-AUROC: area under the ROC curve of image scores (label 1 = anomalous).
* P-AUROC: the same over every pixel of every test image (mask 1 = anomalous).
* AUPRO@0.3: area under the per-region-overlap curve, PRO against the false positive
  rate on good pixels, integrated from FPR 0 to 0.3 and divided by 0.3 (so 1.0 is
  perfect), as in the MVTec 3D-AD evaluation: regions are the 8-connected components of
  each ground-truth mask; the PRO at a threshold is the mean over all regions of the
  fraction of the region's pixels above it; the curve is linearly interpolated at 0.3.
* F1 of image verdicts at a given threshold (score >= threshold is NOK), and the
  operational figures at it: NOK recall, false-alarm rate, precision.
* Peak on the defect: the share of anomalous parts whose image score, the maximum of the
  map, lies on the part's defect (its ground-truth mask, widened by a tolerance): whether a
  ranking comes from the defect or from something else that differs between the good and
  the anomalous test parts (``peak_on_defect``).
* The threshold itself: a Gumbel (max) distribution fitted to the image scores of the
  validation good parts, and its quantile at 1 - the stated false-alarm rate
  (``calibrate_threshold``; the rule is in its docstring).

Ties are handled exactly: AUROC uses mid-ranks (a tie counts one half), and the PRO
curve has one point per distinct score value.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.stats import genpareto, gumbel_r, rankdata


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC = P(score of a positive > score of a negative) + 0.5 P(tie)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both positive and negative samples")
    ranks = rankdata(s)  # mid-ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def image_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    return auroc(scores, labels)


def pixel_auroc(maps: np.ndarray, masks: np.ndarray) -> float:
    return auroc(np.asarray(maps).ravel(), np.asarray(masks).ravel() > 0)


def pro_curve(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, pro) at every distinct threshold, descending thresholds, starting at (0, 0)."""
    maps = np.asarray(maps, dtype=np.float64)
    masks = np.asarray(masks) > 0
    maps = maps.reshape(-1, *maps.shape[-2:])
    masks = masks.reshape(-1, *masks.shape[-2:])
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} differ")
    structure = np.ones((3, 3), dtype=int)  # 8-connectivity
    fpr_w = np.zeros(maps.shape, dtype=np.float64)
    pro_w = np.zeros(maps.shape, dtype=np.float64)
    n_regions = 0
    regions = []
    for i in range(len(masks)):
        labelled, n = ndimage.label(masks[i], structure=structure)
        regions.append((labelled, n))
        n_regions += n
    n_ok = int((~masks).sum())
    if n_regions == 0 or n_ok == 0:
        raise ValueError("the PRO curve needs anomalous regions and good pixels")
    fpr_w[~masks] = 1.0 / n_ok
    for i, (labelled, n) in enumerate(regions):
        if n == 0:
            continue
        sizes = np.bincount(labelled.ravel(), minlength=n + 1).astype(np.float64)
        w = np.zeros(n + 1)
        w[1:] = 1.0 / (n_regions * sizes[1:])
        pro_w[i] = w[labelled]
    s = maps.ravel()
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    fpr = np.cumsum(fpr_w.ravel()[order])
    pro = np.cumsum(pro_w.ravel()[order])
    # Keep the last index of each run of equal scores: one point per threshold.
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s_sorted) - 1]
    fpr = np.r_[0.0, np.minimum(fpr[last], 1.0)]
    pro = np.r_[0.0, np.minimum(pro[last], 1.0)]
    return fpr, pro


def aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit``."""
    fpr, pro = pro_curve(maps, masks)
    keep = fpr <= fpr_limit
    x, y = fpr[keep], pro[keep]
    if x[-1] < fpr_limit:
        j = int(np.searchsorted(fpr, fpr_limit))  # first point past the limit
        if j < len(fpr):
            x0, x1, y0, y1 = fpr[j - 1], fpr[j], pro[j - 1], pro[j]
            yl = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0) if x1 > x0 else y1
            x, y = np.r_[x, fpr_limit], np.r_[y, yl]
    return float(np.trapezoid(y, x) / fpr_limit)


@dataclass(frozen=True)
class F1Result:
    f1: float
    precision: float
    recall: float
    tp: int
    fp: int
    fn: int
    tn: int


def f1_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> F1Result:
    """Image verdicts NOK when score >= threshold; F1 of the NOK class."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    pred = s >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn, tn = int((~pred & y).sum()), int((~pred & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return F1Result(f1, precision, recall, tp, fp, fn, tn)


@dataclass(frozen=True)
class Operational:
    """What a line sees at a threshold: of the defective parts, the share called NOK
    (recall); of the good parts, the share called NOK (false-alarm rate); of the parts
    called NOK, the share defective (precision); and F1."""

    recall: float
    false_alarm_rate: float
    precision: float
    f1: float
    tp: int
    fp: int
    fn: int
    tn: int


def operational(scores: np.ndarray, labels: np.ndarray, threshold: float) -> Operational:
    """Operational figures of the NOK verdicts (score >= threshold) against the labels (1 = defective)."""
    r = f1_at(scores, labels, threshold)
    far = r.fp / (r.fp + r.tn) if r.fp + r.tn else 0.0
    return Operational(r.recall, far, r.precision, r.f1, r.tp, r.fp, r.fn, r.tn)


EULER_GAMMA = 0.5772156649015329
# Below this many scores the Gumbel parameters come from the moments instead of maximum
# likelihood. Simulated (standard Gumbel samples, the 0.99 quantile of the fit, its true
# exceedance): at n = 5 moments gave a mean false-alarm rate of 4.9 % against 5.3 % for
# maximum likelihood (90th percentile 13.4 % vs 14.1 %), at n = 8 both 3.2 %; from n = 10
# on maximum likelihood is as good on average and tighter (n = 20: 90th percentile 3.7 %
# vs 4.2 %).
MIN_MLE_COUNT = 8


@dataclass(frozen=True)
class Calibration:
    """A threshold calibrated for a stated false-alarm rate (see ``calibrate_threshold``)."""

    value: float
    false_alarm_rate: float
    # {"kind": "gumbel", "location", "scale", "fit": "maximum-likelihood" | "moments" | "degenerate"}
    # or {"kind": "pareto-tail", "location", "scale", "shape", "tailFraction", "fit": ...} (fit_tail)
    distribution: dict
    count: int
    mean: float
    std: float
    # of ``count``, the training good parts each scored by a model fitted without it
    # (``Method.held_out_maps``); the others are validation parts
    held_out: int = 0

    def rule(self) -> str:
        d = self.distribution
        if d["fit"] == "degenerate":
            return (f"the mean of the image scores of the {self.count} validation good part(s): too few or no spread "
                    f"to fit a distribution, so no false-alarm rate holds (stated {self.false_alarm_rate:g})")
        parts = f"the {self.count} validation good parts"
        if self.held_out:
            parts = (f"{self.count} good parts ({self.count - self.held_out} validation parts and "
                     f"{self.held_out} training parts, each scored by a model fitted without it)")
        if d["kind"] == "pareto-tail":
            how = {"maximum-likelihood": "maximum likelihood", "bounded-shape": "maximum likelihood with its shape held at "
                   f"{d['shape']:g}", "exponential": "its mean (shape 0)"}[d["fit"]]
            return (f"quantile at 1 - {self.false_alarm_rate:g} of a generalized Pareto tail fitted by {how} to the "
                    f"excesses of the highest {d['tailFraction']:.0%} of the image scores of {parts} over the lowest of "
                    f"them (peaks over threshold; stated false-alarm rate {self.false_alarm_rate:g})")
        how = "maximum likelihood" if d["fit"] == "maximum-likelihood" else "the method of moments"
        return (f"quantile at 1 - {self.false_alarm_rate:g} of a Gumbel (max) distribution fitted by {how} to the "
                f"image scores of {parts} (stated false-alarm rate {self.false_alarm_rate:g})")

    def as_dict(self) -> dict:
        """The manifest's ``threshold`` object."""
        d = {"value": self.value, "rule": self.rule(), "falseAlarmRate": self.false_alarm_rate,
             "distribution": dict(self.distribution), "validationCount": self.count,
             "validationMean": self.mean, "validationStd": self.std}
        if self.held_out:
            d["heldOutCount"] = self.held_out
        return d


def gumbel_quantile(location: float, scale: float, p: float) -> float:
    """Quantile of the Gumbel (max) distribution: F(x) = exp(-exp(-(x - location) / scale)).
    The service computes the same (src/inference/threshold.ts)."""
    return float(location - scale * math.log(-math.log(p)))


def fit_gumbel(scores: np.ndarray) -> dict:
    """Gumbel (max) parameters of the scores: maximum likelihood (scipy), the method of
    moments below ``MIN_MLE_COUNT`` scores or when the likelihood fit fails, and a point
    mass at the mean (scale 0, fit "degenerate") for fewer than 2 scores or no spread."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(s) == 0 or not np.isfinite(s).all():
        raise ValueError("a Gumbel fit needs one or more finite scores")
    std = float(s.std(ddof=1)) if len(s) > 1 else 0.0
    if std == 0.0:
        return {"kind": "gumbel", "location": float(s.mean()), "scale": 0.0, "fit": "degenerate"}
    if len(s) >= MIN_MLE_COUNT:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                loc, scale = gumbel_r.fit(s)
            if math.isfinite(loc) and math.isfinite(scale) and scale > 0:
                return {"kind": "gumbel", "location": float(loc), "scale": float(scale), "fit": "maximum-likelihood"}
        except (ValueError, RuntimeError, FloatingPointError):
            pass  # the moments below
    scale = std * math.sqrt(6.0) / math.pi
    return {"kind": "gumbel", "location": float(s.mean() - EULER_GAMMA * scale), "scale": float(scale), "fit": "moments"}


# From this many calibration scores on (the validation parts and the training parts held out in
# turn), the threshold comes from the upper tail alone (fit_tail); below, from a Gumbel of all.
MIN_TAIL_COUNT = 50
# the share of the highest scores whose excesses the tail fits, and the fewest excesses it takes
TAIL_FRACTION = 0.2
MIN_EXCESSES = 10
# the shape a tail fitted to a few dozen excesses may take (beyond, it is held at the bound)
TAIL_SHAPE_BOUNDS = (-0.5, 0.5)


def fit_tail(scores: np.ndarray, fraction: float = TAIL_FRACTION) -> dict:
    """Peaks over threshold: the generalized Pareto distribution of the excesses of the highest
    ``fraction`` of the scores (``MIN_EXCESSES`` at least) over the next lower score, the
    location u (Pickands-Balkema-de Haan: above a high enough level, the excesses of any
    usual distribution are of this family). Fitted by maximum likelihood with the location
    fixed; a shape outside ``TAIL_SHAPE_BOUNDS`` is held at the bound and the scale refitted;
    an exponential (shape 0, scale their mean) when the fit fails. A point mass at u (fit
    "degenerate") when the excesses have no spread.

    Why not a Gumbel of all the scores: a per-place model's good scores are a mixture (most
    parts well inside, a few a little off at an edge), so the Gumbel that fits the body sits
    far below the tail. On the aligned lid's students with 120 calibration parts it stated
    1 % and gave 1.3-4.0 % on 400 fresh good parts; this tail gave 0.3-1.8 %
    (models/README.md, "Thresholds")."""
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    n = len(s)
    if n < MIN_EXCESSES + 1 or not np.isfinite(s).all():
        raise ValueError(f"a tail fit needs {MIN_EXCESSES + 1} or more finite scores")
    k = min(n - 1, max(MIN_EXCESSES, round(fraction * n)))
    u = float(s[n - k - 1])
    y = s[n - k:] - u
    d = {"kind": "pareto-tail", "location": u, "tailFraction": k / n}
    if float(y.max()) <= 0.0:
        return {**d, "scale": 0.0, "shape": 0.0, "fit": "degenerate"}
    lo, hi = TAIL_SHAPE_BOUNDS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            c, _, scale = genpareto.fit(y, floc=0.0)
            fit = "maximum-likelihood"
            if not lo <= c <= hi:
                c = min(max(c, lo), hi)
                _, _, scale = genpareto.fit(y, f0=c, floc=0.0)
                fit = "bounded-shape"
        if math.isfinite(c) and math.isfinite(scale) and scale > 0:
            return {**d, "scale": float(scale), "shape": float(c), "fit": fit}
    except (ValueError, RuntimeError, FloatingPointError):
        pass  # the exponential below
    return {**d, "scale": float(y.mean()), "shape": 0.0, "fit": "exponential"}


def tail_quantile(d: dict, p: float) -> float:
    """Quantile at p of a ``fit_tail`` distribution, for 1 - p at most its tail fraction:
    u + scale / shape * ((r / tailFraction) ** -shape - 1) with r = 1 - p (u + scale *
    ln(tailFraction / r) for shape 0). The service computes the same (src/inference/threshold.ts)."""
    r, z = 1.0 - p, d["tailFraction"]
    if not 0.0 < r <= z:
        raise ValueError(f"the tail describes exceedance rates up to {z:g}, not {r:g}")
    if d["scale"] == 0.0:
        return float(d["location"])
    if abs(d["shape"]) < 1e-9:
        return float(d["location"] + d["scale"] * math.log(z / r))
    return float(d["location"] + d["scale"] / d["shape"] * ((r / z) ** -d["shape"] - 1.0))


def distribution_quantile(d: dict, p: float) -> float:
    """Quantile at p of a calibration distribution (the manifest's ``threshold.distribution``):
    the threshold for a stated false-alarm rate 1 - p. A Pareto tail describes the rates up to
    its tail fraction only (``tail_quantile`` raises beyond). The service computes the same
    (``distributionQuantile``, src/inference/threshold.ts)."""
    if d["kind"] == "pareto-tail":
        return tail_quantile(d, p)
    return gumbel_quantile(d["location"], d["scale"], p)


def calibrate_threshold(val_good_scores: np.ndarray, false_alarm_rate: float = 0.01, held_out: int = 0) -> Calibration:
    """Threshold for a stated false-alarm rate from the image scores of validation good parts.

    The image score is the maximum of an anomaly map, so the scores of good parts are fitted
    with the extreme-value distribution of maxima, a Gumbel (max) (``fit_gumbel``), and the
    threshold is its quantile at 1 - ``false_alarm_rate``: a good part from that distribution
    scores at or above it with probability ``false_alarm_rate``. No anomalous part is used.

    The rate is that of the fitted distribution. Fitted to a sample, the quantile is itself
    uncertain: simulated with 20 scores, the true exceedance of the 0.99 quantile averaged
    1.7 % (median 1.3 %, 90th percentile 3.7 %), with 30 scores 1.45 % (1.15 %, 2.8 %).

    From ``MIN_TAIL_COUNT`` scores on (with training parts held out in turn), and for a rate
    within the tail, the upper tail alone is fitted (``fit_tail``) instead.
    """
    if not 0.0 < false_alarm_rate < 1.0:
        raise ValueError(f"the false-alarm rate is a probability strictly between 0 and 1, got {false_alarm_rate}")
    s = np.asarray(val_good_scores, dtype=np.float64).ravel()
    if len(s) == 0:
        raise ValueError("calibration needs validation good scores")
    d = fit_tail(s) if len(s) >= MIN_TAIL_COUNT and false_alarm_rate < TAIL_FRACTION else fit_gumbel(s)
    return Calibration(
        value=distribution_quantile(d, 1.0 - false_alarm_rate),
        false_alarm_rate=float(false_alarm_rate),
        distribution=d,
        count=len(s),
        mean=float(s.mean()),
        std=float(s.std(ddof=1)) if len(s) > 1 else 0.0,
        held_out=int(held_out),
    )


@dataclass(frozen=True)
class Metrics:
    i_auroc: float
    p_auroc: float
    aupro: float
    f1: float
    threshold: float
    recall: float
    false_alarm_rate: float

    def as_dict(self) -> dict[str, float]:
        return {
            "i_auroc": self.i_auroc,
            "p_auroc": self.p_auroc,
            "aupro_0_3": self.aupro,
            "f1": self.f1,
            "recall": self.recall,
            "falseAlarmRate": self.false_alarm_rate,
            "threshold": self.threshold,
        }


def evaluate(
    scores: np.ndarray, labels: np.ndarray, maps: np.ndarray, masks: np.ndarray, threshold: float
) -> Metrics:
    op = operational(scores, labels, threshold)
    return Metrics(
        image_auroc(scores, labels),
        pixel_auroc(maps, masks),
        aupro(maps, masks),
        op.f1,
        threshold,
        op.recall,
        op.false_alarm_rate,
    )


def nok_share(scores: np.ndarray, threshold: float) -> float:
    """Share of the parts judged NOK (score >= threshold). Over a defect's parts it is the
    NOK recall of that defect; over good parts, the false-alarm rate."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(s) == 0:
        raise ValueError("no parts to judge")
    return float((s >= threshold).mean())


def at_threshold(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float | int | None]:
    """What the line sees at the shipped threshold: NOK recall (share of anomalous parts
    flagged), false-alarm rate (share of good parts flagged), F1 and precision of the NOK
    verdicts, and the counts. A rate is None when there is no part to take it over."""
    r = operational(scores, labels, threshold)
    return {
        "nok_recall": r.recall if r.tp + r.fn else None,
        "false_alarm_rate": r.false_alarm_rate if r.fp + r.tn else None,
        "f1": r.f1, "precision": r.precision,
        "tp": r.tp, "fp": r.fp, "fn": r.fn, "tn": r.tn,
    }


# the stated false-alarm rates of the operating points (``operating_points``) beside a run's own
OPERATING_RATES = (0.005, 0.01, 0.02, 0.05)


def operating_points(scores: np.ndarray, labels: np.ndarray, distribution: dict,
                     rates: tuple[float, ...] = OPERATING_RATES) -> list[dict]:
    """What a line would see at other stated false-alarm rates of the same calibration (the
    service's ``inference.threshold`` rate): per rate, the threshold the distribution gives for
    it, the NOK recall and the good parts flagged there (score >= threshold); and beside it the
    recall of the best threshold chosen after the fact with no more good parts over it
    (``bestRecall``: what the ranking allows at that many false alarms, so whether the
    calibration or the ranking stops a recall). A rate the distribution does not describe (beyond
    a Pareto tail's fraction) is left out, and a point mass (``fit: degenerate``, no rate holds)
    gives none."""
    if distribution.get("fit") == "degenerate":
        return []
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    good, bad = s[y == 0], s[y == 1]
    if len(good) == 0 or len(bad) == 0:
        raise ValueError("operating points need good and anomalous parts")
    ranked = np.sort(good)[::-1]
    out = []
    for r in sorted({float(x) for x in rates}):
        try:
            thr = distribution_quantile(distribution, 1.0 - r)
        except ValueError:
            continue
        op = operational(s, y, thr)
        best = 1.0 if op.fp >= len(ranked) else float((bad > ranked[op.fp]).mean())
        out.append({"statedRate": r, "threshold": thr, "nokRecall": float(op.recall),
                    "falseAlarms": op.fp, "goodCount": len(good), "bestRecall": best})
    return out


def peak_hits(maps: np.ndarray, masks: np.ndarray, tolerance: int | None = None) -> np.ndarray:
    """Per part: 1.0 when the map's maximum (its first one, in row-major order) lies on the
    part's ground-truth mask widened by ``tolerance`` pixels (8-connected dilation; default
    1/64 of the shorter side, at least 1: the map is smoothed, so its maximum can sit a few
    pixels off a small defect's edge), else 0.0; NaN for a part without defect pixels."""
    maps = np.asarray(maps, dtype=np.float64)
    masks = np.asarray(masks) > 0
    maps = maps.reshape(-1, *maps.shape[-2:])
    masks = masks.reshape(-1, *masks.shape[-2:])
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} differ")
    h, w = maps.shape[-2:]
    tol = max(1, round(min(h, w) / 64)) if tolerance is None else int(tolerance)
    out = np.full(len(maps), np.nan)
    for i, (m, g) in enumerate(zip(maps, masks)):
        if not g.any():
            continue
        near = ndimage.binary_dilation(g, structure=np.ones((3, 3), dtype=bool), iterations=tol) if tol > 0 else g
        out[i] = float(near.flat[int(np.argmax(m))])
    return out


def peak_on_defect(maps: np.ndarray, masks: np.ndarray, tolerance: int | None = None) -> float | None:
    """Share of the parts with defect pixels whose map maximum lies on the defect
    (``peak_hits``); None when no part has defect pixels. A high I-AUROC with a low share
    means the scores rank something other than the defects (the real tire: 0.17)."""
    hits = peak_hits(maps, masks, tolerance)
    hits = hits[~np.isnan(hits)]
    return float(hits.mean()) if len(hits) else None


def per_defect(
    scores: np.ndarray, maps: np.ndarray, masks: np.ndarray, defects, threshold: float, good: str = "good"
) -> dict[str, dict[str, float | int | None]]:
    """Per defect type, that defect's test parts against **all** good test parts:
    I-AUROC; P-AUROC and AUPRO@0.3 over the pixels of that defect's images plus the good
    images; the share of that defect's parts whose map peaks on the defect
    (``peak_on_defect``); NOK recall at the threshold; the count. A figure that the parts
    cannot give (no good part, no anomalous pixel) is None."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    defects = np.asarray(defects)
    is_good = defects == good
    out = {}
    for d in sorted(set(defects.tolist()) - {good}):
        sel = defects == d
        both = sel | is_good
        m, g = np.asarray(maps)[both], np.asarray(masks)[both] > 0
        pixels = bool(g.any()) and not bool(g.all())
        out[d] = {
            "count": int(sel.sum()),
            "i_auroc": image_auroc(scores[both], sel[both]) if is_good.any() else None,
            "p_auroc": pixel_auroc(m, g) if pixels else None,
            "aupro_0_3": aupro(m, g) if pixels else None,
            "peak_on_defect": peak_on_defect(np.asarray(maps)[sel], np.asarray(masks)[sel]),
            "nok_recall": nok_share(scores[sel], threshold),
        }
    return out


def depth_errors(maps: np.ndarray, depths: np.ndarray, masks3d: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per part, the error of ``anomaly_depth`` read at the map's maximum against the ct's
    3D ground truth, in slices: |depth at the peak - the mean slice of the mask's voxels in
    that pixel's column| (the frame's pixel mapped to the volume's column, both grids
    covering the same field of view); where the column holds no mask voxel (the peak
    missed the defect), against the mean slice of the whole mask. Returns the errors and,
    per part, whether the peak's column held mask voxels; NaN for a part without any mask,
    or whose peak has no ct depth (-1: another modality's branch leads the map there)."""
    maps = np.asarray(maps, dtype=np.float64)
    depths = np.asarray(depths, dtype=np.float64)
    maps = maps.reshape(-1, *maps.shape[-2:])
    depths = depths.reshape(-1, *depths.shape[-2:])
    errors = np.full(len(maps), np.nan)
    on = np.zeros(len(maps), dtype=bool)
    for i, (m, dep, g) in enumerate(zip(maps, depths, masks3d)):
        g = np.asarray(g) > 0
        h, w = m.shape
        y, x = np.unravel_index(int(np.argmax(m)), m.shape)
        if not g.any() or dep[y, x] < 0:
            continue
        col = g[:, y * g.shape[1] // h, x * g.shape[2] // w]
        on[i] = bool(col.any())
        truth = np.flatnonzero(col).mean() if on[i] else np.nonzero(g)[0].mean()
        errors[i] = abs(float(dep[y, x]) - float(truth))
    return errors, on


def depth_summary(errors: np.ndarray, on: np.ndarray) -> dict[str, float | int | None]:
    """Mean, median and largest depth error in slices (``depth_errors``), over the parts whose
    peak's column held the defect (``onDefect``: how many) and over all parts with a mask."""
    keep = ~np.isnan(errors)
    e, o = errors[keep], on[keep]

    def stats(a):
        return (float(a.mean()), float(np.median(a)), float(a.max())) if len(a) else (None, None, None)

    mean, median, worst = stats(e[o])
    all_mean, all_median, _ = stats(e)
    return {"count": int(keep.sum()), "onDefect": int(o.sum()), "mean": mean, "median": median, "max": worst,
            "meanAll": all_mean, "medianAll": all_median}

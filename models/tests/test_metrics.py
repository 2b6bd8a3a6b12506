import numpy as np
import pytest
from scipy.stats import gumbel_r

from mmad_models import metrics as M


def test_auroc_hand_computed():
    # positives 0.35 (beats 0.1, loses to 0.4) and 0.8 (beats both): 3 of 4 pairs
    assert M.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # a tie counts one half: 0.5 vs 0.5 -> 0.5, the rest wins: 3.5 of 4
    assert M.auroc([0.2, 0.5, 0.5, 0.9], [0, 1, 0, 1]) == pytest.approx(0.875)
    assert M.auroc([1.0, 1.0], [0, 1]) == pytest.approx(0.5)
    assert M.auroc([0.0, 1.0], [0, 1]) == 1.0
    assert M.auroc([1.0, 0.0], [0, 1]) == 0.0
    with pytest.raises(ValueError):
        M.auroc([0.1, 0.2], [1, 1])


def test_auroc_matches_pair_counting(rng):
    s = rng.integers(0, 5, 60).astype(float)  # many ties
    y = rng.integers(0, 2, 60)
    pos, neg = s[y == 1], s[y == 0]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert M.auroc(s, y) == pytest.approx(pairs / (len(pos) * len(neg)))


def test_pixel_auroc_pools_all_pixels():
    maps = np.array([[[0.1, 0.9]], [[0.2, 0.3]]])
    masks = np.array([[[0, 1]], [[0, 1]]])
    # positives 0.9, 0.3 against negatives 0.1, 0.2: all four pairs won
    assert M.pixel_auroc(maps, masks) == 1.0
    masks2 = np.array([[[0, 1]], [[1, 0]]])  # positives 0.9, 0.2 vs 0.1, 0.3: 3 of 4
    assert M.pixel_auroc(maps, masks2) == pytest.approx(0.75)


def _two_region_case():
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = mask[0, 1] = True  # region A, 2 pixels
    mask[3, 3] = True  # region B, 1 pixel
    amap = np.zeros((4, 4))
    amap[0, 0], amap[0, 1], amap[3, 3] = 0.9, 0.5, 0.7
    amap[2, 0], amap[1, 3] = 0.8, 0.6  # two of the 13 good pixels score high
    return amap, mask


def test_pro_curve_hand_computed():
    amap, mask = _two_region_case()
    fpr, pro = M.pro_curve(amap[None], mask[None])
    # thresholds 0.9, 0.8, 0.7, 0.6, 0.5, 0.0
    np.testing.assert_allclose(fpr, [0, 0, 1 / 13, 1 / 13, 2 / 13, 2 / 13, 1])
    np.testing.assert_allclose(pro, [0, 0.25, 0.25, 0.75, 0.75, 1.0, 1.0])


def test_aupro_hand_computed():
    amap, mask = _two_region_case()
    # area to 0.3: 0.25/13 + 0.75/13 + 1.0 * (0.3 - 2/13), normalised by 0.3
    expected = (0.3 - 1 / 13) / 0.3
    assert M.aupro(amap[None], mask[None]) == pytest.approx(expected)


def test_aupro_interpolates_at_the_limit():
    # one region of one pixel scoring below half of the good pixels
    mask = np.zeros((1, 1, 10), dtype=bool)
    mask[0, 0, 0] = True
    amap = np.array([[[0.5, 0, 0, 0, 0, 1, 1, 1, 1, 1]]], dtype=float)
    # curve: (0,0) (5/9,0) (5/9,1) (1,1): PRO is 0 up to 0.3
    assert M.aupro(amap, mask) == pytest.approx(0.0)
    # 2 of 9 good pixels above the region: PRO jumps to 1 at fpr 2/9 < 0.3
    amap2 = np.array([[[0.5, 0, 0, 0, 0, 0, 0, 0, 1, 1]]], dtype=float)
    assert M.aupro(amap2, mask) == pytest.approx((0.3 - 2 / 9) / 0.3)


def test_aupro_eight_connectivity_and_images_pool_regions():
    mask = np.zeros((2, 3, 3), dtype=bool)
    mask[0, 0, 0] = mask[0, 1, 1] = True  # diagonal neighbours: one region
    mask[1, 2, 2] = True  # a second region in another image
    amap = np.zeros((2, 3, 3))
    amap[0, 0, 0] = 1.0  # half of region 1 found, region 2 missed at the top threshold
    fpr, pro = M.pro_curve(amap, mask)
    assert pro[1] == pytest.approx(0.25)  # mean over 2 regions of (0.5, 0)
    assert fpr[1] == 0.0


def test_aupro_perfect_and_inverted():
    rng = np.random.default_rng(3)
    mask = rng.random((3, 16, 16)) > 0.8
    assert M.aupro(mask.astype(float) + 0.01 * rng.random(mask.shape) * mask, mask) == pytest.approx(1.0)
    assert M.aupro((~mask).astype(float), mask) == pytest.approx(0.0)


def test_f1_at_threshold():
    r = M.f1_at([0.1, 0.6, 0.7, 0.2], [0, 1, 0, 1], 0.5)
    assert (r.tp, r.fp, r.fn, r.tn) == (1, 1, 1, 1)
    assert r.f1 == pytest.approx(0.5)
    # a score equal to the threshold is NOK
    assert M.f1_at([0.5, 0.1], [1, 0], 0.5).f1 == 1.0
    assert M.f1_at([0.1, 0.1], [1, 0], 0.5).f1 == 0.0


def test_operational_figures_hand_computed():
    # NOK at >= 0.5: 0.6 (defective), 0.7 (good), 0.9 (defective); 0.2 (defective) missed
    op = M.operational([0.1, 0.6, 0.7, 0.2, 0.9, 0.3], [0, 1, 0, 1, 1, 0], 0.5)
    assert (op.tp, op.fp, op.fn, op.tn) == (2, 1, 1, 2)
    assert op.recall == pytest.approx(2 / 3)  # defective parts called NOK / defective parts
    assert op.false_alarm_rate == pytest.approx(1 / 3)  # good parts called NOK / good parts
    assert op.precision == pytest.approx(2 / 3) and op.f1 == pytest.approx(2 / 3)
    # no good part: no false alarm can be made
    assert M.operational([0.9], [1], 0.5).false_alarm_rate == 0.0


def test_evaluate_reports_recall_and_false_alarm_rate_next_to_f1():
    masks = np.zeros((4, 4, 4), bool)
    masks[1, 1:3, 1:3] = masks[3, 0, 0] = True
    m = M.evaluate([0.2, 0.8, 0.6, 0.4], [0, 1, 0, 1], masks.astype(float), masks, 0.5).as_dict()
    assert m["f1"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5) and m["falseAlarmRate"] == pytest.approx(0.5)


def test_gumbel_fit_recovers_known_parameters():
    s = np.random.default_rng(1).gumbel(3.0, 0.8, 20_000)
    d = M.fit_gumbel(s)
    assert d["kind"] == "gumbel" and d["fit"] == "maximum-likelihood"
    assert d["location"] == pytest.approx(3.0, abs=0.03) and d["scale"] == pytest.approx(0.8, abs=0.03)
    assert M.gumbel_quantile(3.0, 0.8, 0.99) == pytest.approx(gumbel_r.ppf(0.99, 3.0, 0.8))


@pytest.mark.parametrize("rate", [0.01, 0.001])
def test_threshold_flags_the_stated_share_of_good_parts(rate):
    rng = np.random.default_rng(2)
    cal = M.calibrate_threshold(rng.gumbel(5.0, 1.2, 20_000), rate)
    fresh = rng.gumbel(5.0, 1.2, 1_000_000)  # good parts the threshold never saw
    assert np.mean(fresh >= cal.value) == pytest.approx(rate, rel=0.15)
    assert cal.false_alarm_rate == rate and cal.count == 20_000
    # the older rule (mean + 3 std) on the same scores, for scale: about 1.2 % for a Gumbel
    assert np.mean(fresh >= cal.mean + 3 * cal.std) == pytest.approx(0.012, abs=0.001)


def test_calibration_record_is_the_manifest_threshold():
    cal = M.calibrate_threshold(np.random.default_rng(3).gumbel(2.0, 0.5, 25), 0.01)
    t = cal.as_dict()
    assert set(t) == {"value", "rule", "falseAlarmRate", "distribution", "validationCount", "validationMean",
                      "validationStd"}
    d = t["distribution"]
    assert d["fit"] == "maximum-likelihood" and t["validationCount"] == 25
    assert t["value"] == pytest.approx(d["location"] - d["scale"] * np.log(-np.log(0.99)))
    assert "Gumbel" in t["rule"] and "0.01" in t["rule"] and "25 validation good parts" in t["rule"]


def test_few_scores_use_the_moments():
    s = np.array([1.0, 1.5, 2.0, 2.2, 3.1])
    cal = M.calibrate_threshold(s, 0.05)
    d = cal.distribution
    scale = s.std(ddof=1) * np.sqrt(6) / np.pi
    assert d["fit"] == "moments" and d["scale"] == pytest.approx(scale)
    assert d["location"] == pytest.approx(s.mean() - 0.5772156649 * scale)
    assert cal.value == pytest.approx(gumbel_r.ppf(0.95, d["location"], d["scale"]))


def test_a_failed_likelihood_fit_falls_back_to_the_moments(monkeypatch):
    def fail(*_a, **_k):
        raise RuntimeError("no convergence")

    monkeypatch.setattr(M.gumbel_r, "fit", fail)
    assert M.fit_gumbel(np.random.default_rng(4).gumbel(0, 1, 30))["fit"] == "moments"
    monkeypatch.setattr(M.gumbel_r, "fit", lambda *_a, **_k: (float("nan"), 1.0))
    assert M.fit_gumbel(np.random.default_rng(4).gumbel(0, 1, 30))["fit"] == "moments"


def test_one_score_or_no_spread_is_a_point_mass_at_the_mean():
    for s in ([4.0], [2.5] * 12):
        cal = M.calibrate_threshold(s, 0.01)
        assert cal.distribution == {"kind": "gumbel", "location": s[0], "scale": 0.0, "fit": "degenerate"}
        assert cal.value == s[0] and cal.std == 0.0
        assert "no false-alarm rate holds" in cal.rule()


def test_calibration_refuses_what_it_cannot_use():
    with pytest.raises(ValueError, match="validation good scores"):
        M.calibrate_threshold([], 0.01)
    for rate in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="false-alarm rate"):
            M.calibrate_threshold([1.0, 2.0, 3.0], rate)
    with pytest.raises(ValueError, match="finite"):
        M.fit_gumbel([1.0, float("nan")])


def _mixture(rng, n):
    """Good scores of a per-place model: most parts well inside, 5 % a little off at an edge."""
    off = rng.random(n) < 0.05
    return np.where(off, rng.normal(4.0, 0.8, n), rng.gumbel(0.0, 0.5, n))


def test_many_scores_take_the_threshold_from_the_upper_tail():
    """120 calibration scores from a mixture: the Gumbel fitted to all of them sits in the body
    and flags several times the stated rate; the tail's quantile keeps near it."""
    rng = np.random.default_rng(5)
    cal_scores = _mixture(rng, 120)
    fresh = _mixture(rng, 1_000_000)
    cal = M.calibrate_threshold(cal_scores, 0.01, held_out=100)
    d = cal.distribution
    assert d["kind"] == "pareto-tail" and d["tailFraction"] == pytest.approx(0.2)
    assert d["location"] == pytest.approx(np.sort(cal_scores)[-25])
    gumbel = M.gumbel_quantile(*M.gumbel_r.fit(cal_scores), 0.99)
    assert np.mean(fresh >= gumbel) > 0.03
    assert 0.003 < np.mean(fresh >= cal.value) < 0.02
    t = cal.as_dict()
    assert "generalized Pareto tail" in t["rule"] and "highest 20%" in t["rule"] and "100 training parts" in t["rule"]
    # below MIN_TAIL_COUNT scores, the Gumbel of all of them
    assert M.calibrate_threshold(cal_scores[: M.MIN_TAIL_COUNT - 1], 0.01).distribution["kind"] == "gumbel"


def test_tail_quantile_is_the_generalized_pareto_quantile_above_its_location():
    from scipy.stats import genpareto

    d = {"kind": "pareto-tail", "location": 2.0, "scale": 0.7, "shape": 0.2, "tailFraction": 0.2}
    for rate in (0.1, 0.01, 0.001):
        assert M.tail_quantile(d, 1 - rate) == pytest.approx(2.0 + genpareto.ppf(1 - rate / 0.2, 0.2, 0, 0.7))
    assert M.tail_quantile({**d, "shape": 0.0}, 0.99) == pytest.approx(2.0 + 0.7 * np.log(20))
    assert M.tail_quantile({**d, "scale": 0.0}, 0.99) == 2.0
    with pytest.raises(ValueError, match="up to 0.2"):
        M.tail_quantile(d, 0.7)
    # a stated rate beyond the tail: the Gumbel of all the scores
    assert M.calibrate_threshold(np.random.default_rng(6).gumbel(0, 1, 200), 0.3).distribution["kind"] == "gumbel"


def test_operating_points_hand_computed():
    """Per stated rate: the distribution's threshold, the recall and goods flagged at it, and the
    best recall after the fact with no more goods over it."""
    d = {"kind": "gumbel", "location": 0.0, "scale": 1.0, "fit": "maximum-likelihood"}
    t1, t5 = M.gumbel_quantile(0, 1, 0.99), M.gumbel_quantile(0, 1, 0.95)  # 4.60, 2.97
    good = np.array([0.0, 1.0, 3.5, 5.0])  # one good over the 1 % threshold, two over the 5 %
    bad = np.array([2.0, 3.0, 4.0, 4.5, 6.0])
    scores, labels = np.concatenate([good, bad]), np.array([0] * 4 + [1] * 5)
    p1, p5 = M.operating_points(scores, labels, d, (0.05, 0.01, 0.01))  # sorted, each rate once
    assert p1["statedRate"] == 0.01 and p1["threshold"] == pytest.approx(t1) and p5["threshold"] == pytest.approx(t5)
    assert (p1["nokRecall"], p1["falseAlarms"], p1["goodCount"]) == (0.2, 1, 4)
    assert (p5["nokRecall"], p5["falseAlarms"]) == (0.8, 2)
    # the best threshold with one good over it lies just above 3.5 (4.0, 4.5, 6.0 flagged), with
    # two just above 1.0 (all five)
    assert p1["bestRecall"] == 0.6 and p5["bestRecall"] == 1.0
    # every good over it: every defective part can be flagged
    assert M.operating_points(scores, labels, {**d, "location": -10.0}, (0.5,))[0]["bestRecall"] == 1.0
    # a Pareto tail does not describe a rate beyond its fraction: left out
    tail = {"kind": "pareto-tail", "location": 2.0, "scale": 0.7, "shape": 0.2, "tailFraction": 0.2}
    assert [p["statedRate"] for p in M.operating_points(scores, labels, tail, (0.01, 0.3))] == [0.01]
    # no spread in the calibration scores: no rate holds, so no point
    assert M.operating_points(scores, labels, {**d, "scale": 0.0, "fit": "degenerate"}) == []
    with pytest.raises(ValueError, match="good and anomalous"):
        M.operating_points(good, np.zeros(4), d)
    # the calibration's own threshold is its distribution's quantile at its rate
    cal = M.calibrate_threshold(np.random.default_rng(3).gumbel(0, 1, 80), 0.02)
    assert M.distribution_quantile(cal.distribution, 0.98) == cal.value


def test_a_wild_or_failed_tail_fit_is_held_or_falls_back(monkeypatch):
    s = np.random.default_rng(7).gumbel(0, 1, 120)
    real = M.genpareto.fit

    def wild(y, *a, **k):
        return real(y, *a, **k) if "f0" in k else (3.0, 0.0, 1.0)

    monkeypatch.setattr(M.genpareto, "fit", wild)
    d = M.fit_tail(s)
    assert d["fit"] == "bounded-shape" and d["shape"] == M.TAIL_SHAPE_BOUNDS[1] and d["scale"] > 0

    def fail(*_a, **_k):
        raise RuntimeError("no convergence")

    monkeypatch.setattr(M.genpareto, "fit", fail)
    d = M.fit_tail(s)
    top = np.sort(s)[-24:] - d["location"]
    assert d["fit"] == "exponential" and d["shape"] == 0.0 and d["scale"] == pytest.approx(top.mean())
    flat = np.concatenate([np.linspace(0, 1, 100), np.full(30, 2.0)])
    assert M.fit_tail(flat)["fit"] == "degenerate" and M.fit_tail(flat)["location"] == 2.0

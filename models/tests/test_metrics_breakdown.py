"""The operational figures and the per-defect breakdown, on cases computed by hand."""

import numpy as np
import pytest

from mmad_models import metrics as M

# Six parts, each a 1x2 image: three good, two dents, one crack; threshold 0.35.
DEFECTS = ["good", "good", "good", "dent", "dent", "crack"]
SCORES = [0.1, 0.4, 0.2, 0.5, 0.3, 0.9]
MAPS = np.array([[[0.1, 0.2]], [[0.3, 0.1]], [[0.2, 0.2]], [[0.6, 0.2]], [[0.25, 0.5]], [[0.9, 0.0]]])[:, None]
MASKS = np.array([[[0, 0]], [[0, 0]], [[0, 0]], [[1, 0]], [[1, 0]], [[1, 1]]])[:, None]
THR = 0.35


def test_nok_share():
    assert M.nok_share([0.1, 0.35, 0.9, 0.2], 0.35) == 0.5  # score == threshold is NOK
    assert M.nok_share([0.1], 0.35) == 0.0
    with pytest.raises(ValueError):
        M.nok_share([], 0.35)


def test_at_threshold_hand_computed():
    labels = [d != "good" for d in DEFECTS]
    r = M.at_threshold(SCORES, labels, THR)
    # flagged: 0.4 (good), 0.5 and 0.9 (anomalous); missed: 0.3 (dent)
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (2, 1, 1, 2)
    assert r["nok_recall"] == pytest.approx(2 / 3) and r["false_alarm_rate"] == pytest.approx(1 / 3)
    assert r["precision"] == pytest.approx(2 / 3) and r["f1"] == pytest.approx(2 / 3)
    only_good = M.at_threshold([0.1, 0.5], [0, 0], THR)
    assert only_good["nok_recall"] is None and only_good["false_alarm_rate"] == 0.5


def test_per_defect_hand_computed():
    r = M.per_defect(SCORES, MAPS, MASKS, DEFECTS, THR)
    assert list(r) == ["crack", "dent"]
    dent, crack = r["dent"], r["crack"]
    assert dent["count"] == 2 and crack["count"] == 1
    # image: dent 0.5 beats the three goods, 0.3 beats 0.1 and 0.2: 5 of 6 pairs
    assert dent["i_auroc"] == pytest.approx(5 / 6) and crack["i_auroc"] == 1.0
    assert dent["nok_recall"] == 0.5 and crack["nok_recall"] == 1.0
    # pixels, dent: positives 0.6 and 0.25 against the 6 good-image pixels and the dent
    # images' own good pixels 0.2 and 0.5; 0.6 beats all 8, 0.25 beats 6: 14 of 16
    assert dent["p_auroc"] == pytest.approx(14 / 16)
    # PRO, dent: two 1-pixel regions, 8 good pixels. Region A (0.6) is found at FPR 0, region
    # B (0.25) once 0.5 and 0.3 passed (FPR 2/8): area 0.5 * 0.25 + 1.0 * 0.05 over 0.3
    assert dent["aupro_0_3"] == pytest.approx((0.5 * 0.25 + 1.0 * 0.05) / 0.3)
    # crack: one 2-pixel region (0.9 and 0.0) against the 6 good-image pixels: the 0.9 pixel
    # beats all 6, the 0.0 pixel none; PRO stays 0.5 up to FPR 1
    assert crack["p_auroc"] == pytest.approx(0.5) and crack["aupro_0_3"] == pytest.approx(0.5)
    # peaks: 1x2 images, so the default tolerance of 1 pixel covers both pixels
    assert dent["peak_on_defect"] == 1.0 and crack["peak_on_defect"] == 1.0


def test_peak_on_defect_hand_computed():
    maps = np.zeros((4, 1, 64, 64))
    masks = np.zeros((4, 1, 64, 64))
    masks[:, :, 30:34, 30:34] = 1  # the same 4x4 defect on the first three parts
    masks[3] = 0  # the fourth has no defect pixels: not counted
    maps[0, 0, 31, 32] = 5.0  # on the defect
    maps[1, 0, 34, 32] = 5.0  # one pixel off its edge: within the tolerance (64 / 64 = 1 px)
    maps[2, 0, 5, 50] = 5.0  # far from it: the score comes from elsewhere
    maps[2, 0, 31, 31] = 4.0  # the defect is seen, but below the peak
    hits = M.peak_hits(maps, masks)
    assert hits[:3].tolist() == [1.0, 1.0, 0.0] and np.isnan(hits[3])
    assert M.peak_on_defect(maps, masks) == pytest.approx(2 / 3)
    assert M.peak_hits(maps, masks, tolerance=0)[:3].tolist() == [1.0, 0.0, 0.0]
    assert M.peak_on_defect(maps[3:], masks[3:]) is None
    with pytest.raises(ValueError):
        M.peak_hits(maps, masks[:, :, :32])


def test_per_defect_without_goods_or_pixels():
    r = M.per_defect([0.5, 0.2], np.zeros((2, 1, 1, 2)), np.zeros((2, 1, 1, 2)), ["dent", "dent"], THR)
    assert r["dent"]["i_auroc"] is None and r["dent"]["p_auroc"] is None and r["dent"]["aupro_0_3"] is None
    assert r["dent"]["nok_recall"] == 0.5 and r["dent"]["count"] == 2

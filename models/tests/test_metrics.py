import numpy as np
import pytest

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


def test_calibrate_threshold_rule():
    assert M.calibrate_threshold([1.0, 2.0, 3.0]) == pytest.approx(5.0)  # 2 + 3 * 1
    assert M.calibrate_threshold([1.0, 2.0, 3.0], sigmas=1.0) == pytest.approx(3.0)
    assert M.calibrate_threshold([4.0]) == 4.0

"""Part alignment (methods/align.py) and the per-place Gaussian normality model (mtfi --normality local)."""

import math

import pytest
import torch

from mmad_models.methods import CrossModalDistillation
from mmad_models.methods.align import LevelMatch, PoseAlign
from mmad_models.methods.preprocess import otsu_level

TINY = {"kind": "small", "widths": [4, 8, 16], "stem": 4}


def _plates(poses, h=48, w=64, bump=None):
    """[N,H,W] images of a bright 36x16 px plate with a dark notch at one end (so the images
    are not symmetric), at (dx, dy, degrees) from the frame's centre; ``bump``: (x, y) in
    the plate's own pixels where a bright spot is added."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5 - h / 2,
                            torch.arange(w, dtype=torch.float32) + 0.5 - w / 2, indexing="ij")
    out = []
    for dx, dy, deg in poses:
        a = math.radians(deg)
        u = math.cos(a) * (xx - dx) + math.sin(a) * (yy - dy)  # the plate's own axes
        v = -math.sin(a) * (xx - dx) + math.cos(a) * (yy - dy)
        img = ((u.abs() < 18) & (v.abs() < 8)).float()
        img = img - 0.5 * (((u - 14).abs() < 3) & ((v - 4).abs() < 3)).float()
        if bump is not None:
            img = img + 1.5 * torch.exp(-((u - bump[0]) ** 2 + (v - bump[1]) ** 2) / 4.0)
        out.append(img)
    return torch.stack(out)


def test_otsu_level_splits_two_populations():
    x = torch.cat([torch.full((300,), 0.1), torch.full((100,), 0.9)]) + 0.01 * torch.randn(400)
    assert 0.2 < otsu_level(x) < 0.8


def test_pose_align_brings_shifted_and_rotated_parts_to_the_reference_and_back():
    ref = _plates([(0, 0, 0)] * 4)
    al = PoseAlign((48, 64), "pose")
    al.fit(ref)
    assert 0.0 < float(al.level) < 1.0
    moved = _plates([(5, -3, 4), (-6, 2, -3)])
    to_canonical, to_part = al.grids(moved)
    canon = PoseAlign.warp(moved.unsqueeze(1), to_canonical)[:, 0]
    before = (moved - ref[:2]).abs().mean()
    after = (canon - ref[:2]).abs().mean()
    assert after < 0.25 * before
    # the way back restores the part's own frame (up to resampling at the edges)
    back = PoseAlign.warp(canon.unsqueeze(1), to_part)[:, 0]
    assert (back - moved).abs().mean() < 0.25 * before
    # shift only: the centroid moves back, the rotation stays
    sh = PoseAlign((48, 64), "shift")
    sh.fit(ref)
    only = PoseAlign.warp(moved.unsqueeze(1), sh.grids(moved)[0])[:, 0]
    assert after < (only - ref[:2]).abs().mean() < before


def test_level_match_takes_a_part_to_the_reference_level_and_keeps_a_local_rise():
    """A part 40 % cooler (gain) on a shifted background (offset) comes back to the training
    parts' level; a hot spot is not a gain, so it keeps its height above the matched face."""
    torch.manual_seed(0)
    train = _plates([(0, 0, 0)] * 8) * (1 + 0.05 * torch.randn(8, 1, 1)) + 0.01 * torch.randn(8, 48, 64)
    lm = LevelMatch((48, 64))
    lm.fit(train)
    torch.testing.assert_close(lm.ref, train.mean(0))
    assert 0.0 < float(lm.scale) < 0.1
    cool = 0.6 * _plates([(0, 0, 0)]) + 0.3
    out = lm(cool.unsqueeze(1).expand(-1, 3, -1, -1))
    assert out.shape == (1, 3, 48, 64)
    assert (out[0, 0] - lm.ref).abs().mean() < 0.02 < (cool[0] - lm.ref).abs().mean()
    spot = 0.6 * _plates([(0, 0, 0)], bump=(-8, -3)) + 0.3
    rise = lm(spot.unsqueeze(1))[0, 0] - lm(cool.unsqueeze(1))[0, 0]
    # the spot is 0.6 * 1.5 high in the cooler part's units: 1.5 in the reference's
    assert 1.3 < float(rise.max()) < 1.6 and float(rise.abs().median()) < 0.02


def test_pose_align_on_a_non_square_frame_keeps_pixels_square():
    """A 30-degree turn on a 48x64 frame: without isotropic coordinates the plate would come
    back sheared."""
    al = PoseAlign((48, 64), "pose")
    al.fit(_plates([(0, 0, 0)] * 2))
    canon = PoseAlign.warp(_plates([(0, 0, 30)]).unsqueeze(1), al.grids(_plates([(0, 0, 30)]))[0])[:, 0]
    assert (canon - _plates([(0, 0, 0)])).abs().mean() < 0.05


def _model(align="pose", dims=8, **options):
    torch.manual_seed(0)
    return CrossModalDistillation(("ir",), (48, 64), TINY, normality="local", align=align, local_dims=dims,
                                  input_weight=5.0, **options).eval()


def _ir(imgs):
    return (imgs.unsqueeze(1) * 20000 + 20000 + 50 * torch.randn(len(imgs), 1, *imgs.shape[-2:]))


def _jitter(n, seed):
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(n, 3, generator=g) * 2 - 1
    return [(4 * a, 3 * b, 3 * c) for a, b, c in r.tolist()]


def test_local_normality_finds_a_spot_where_the_part_has_none_whatever_its_pose():
    """A bright spot on the plate's face, where no training part has one: the local Gaussians
    of parts in other poses flag it, and the map draws it where it is in the part's own frame."""
    model = _model()
    train = {"ir": _ir(_plates(_jitter(40, 1)))}
    model.teachers["ir"].input.fit(train["ir"])
    model.fit_inputs(train)
    model.fit_normality(train)
    assert model.lmean_ir.shape == (1, 8, *model.local_grid) and model.lprec_ir.shape[1:] == (8, 8)
    good = {"ir": _ir(_plates(_jitter(6, 2)))}
    bad_pose = (4, -2, 2.5)
    bad = {"ir": _ir(_plates([bad_pose], bump=(-8, -3)))}
    g = model.branch_maps(good)[0]
    b = model.branch_maps(bad)[0]
    assert g.shape == (6, 1, 48, 64) and b.shape == (1, 1, 48, 64)
    assert float(b.max()) > 2 * float(g.flatten(1).amax(1).max())
    # the peak is drawn where the spot is in the part's own frame
    y, x = divmod(int(b[0, 0].argmax()), 64)
    a = math.radians(bad_pose[2])
    sx = 32 + bad_pose[0] + math.cos(a) * -8 - math.sin(a) * -3
    sy = 24 + bad_pose[1] + math.sin(a) * -8 + math.cos(a) * -3
    assert abs(x + 0.5 - sx) <= 6 and abs(y + 0.5 - sy) <= 6


def test_local_distance_is_the_mahalanobis_distance_of_each_cell():
    model = _model(align="none", dims=4)
    train = {"ir": _ir(_plates(_jitter(30, 3)))}
    model.teachers["ir"].input.fit(train["ir"])
    model.fit_normality(train)
    feats = model.features(train)["ir"]
    e = model.embed(feats) - model.center_ir.view(1, -1, 1, 1)
    e = torch.nn.functional.avg_pool2d(torch.einsum("bdhw,dp->bphw", e, model.proj_ir), 2)
    d = model._local_distance("ir", feats)
    i, j = 1, 2
    y = (e[:, :, i, j] - model.lmean_ir[0, :, i, j]).double()
    chol = model.lprec_ir[i * model.local_grid[1] + j].double()
    prec = chol @ chol.t()
    ref = torch.sqrt(torch.einsum("bd,de,be->b", y, prec, y))
    torch.testing.assert_close(d[:, 0, i, j].double(), ref, rtol=1e-4, atol=1e-4)


def test_align_refuses_what_it_cannot_serve():
    with pytest.raises(ValueError, match="align"):
        CrossModalDistillation(("ir",), (48, 64), TINY, normality="bank", align="pose", discriminate=True)
    with pytest.raises(ValueError, match="align is one of"):
        CrossModalDistillation(("ir",), (48, 64), TINY, align="affine")
    model = CrossModalDistillation(("rgb", "ir"), (48, 64), TINY, normality="local", align="pose")
    assert model.pose_modality == "rgb"
    with pytest.raises(ValueError, match="pose modality"):
        model.normalised_inputs({"ir": torch.zeros(1, 1, 48, 64)})
    with pytest.raises(ValueError, match="ir_relative"):
        CrossModalDistillation(("ir",), (48, 64), TINY, normality="local", ir_relative=True)


def test_aligned_inputs_continue_the_parts_edge_where_the_frame_ends():
    """A part far from the mean pose: the canonical frame reaches past its image, which the
    warp fills with the image's edge (border), not with zeros that no training part shows."""
    model = _model()
    train = {"ir": _ir(_plates([(0, 0, 0)] * 4))}
    model.teachers["ir"].input.fit(train["ir"])
    model.fit_inputs(train)
    far = {"ir": _ir(_plates([(0, -10, 0)]))}  # 10 px above the mean pose
    z, _ = model.normalised_inputs(far)
    edge = model.teachers["ir"].input(far["ir"])[0, 0, 0]  # the part's top row: the background
    # the canonical frame's top rows come from above the part's image: its top row repeated
    assert (z["ir"][0, 0, :5] - edge.mean()).abs().max() < 0.05 * float(edge.abs().mean() + 1)


def test_held_out_maps_score_each_training_part_without_it():
    """Each training part scored by the Gaussians of the others: higher than by the model that
    saw it, and in the part's own frame."""
    model = _model()
    train = {"ir": _ir(_plates(_jitter(30, 4)))}
    model.teachers["ir"].input.fit(train["ir"])
    model.fit_inputs(train)
    model.fit_normality(train)
    held = model.held_out_maps(train)
    seen = model.branch_maps(train)[0]
    assert len(held) == 1 and held[0].shape == seen.shape == (30, 1, 48, 64)
    assert float(held[0].flatten(1).amax(1).mean()) > float(seen.flatten(1).amax(1).mean())


def test_local_jitter_widens_each_places_gaussian_by_the_registration_error():
    """--local-jitter: the Gaussians are fitted to the parts and 2 copies of each moved by a
    small rigid motion, so their spread holds a little misregistration; the held-out maps still
    score each training part once, by Gaussians fitted without any copy of it."""
    train = {"ir": _ir(_plates(_jitter(20, 5)))}
    plain, jit = _model(), _model(local_jitter=(1.0, 1.0))  # the same teacher
    for model in (plain, jit):
        model.teachers["ir"].input.fit(train["ir"])
        model.fit_inputs(train)
        model.fit_normality(train)
    assert len(plain._fitted_train["ir"]) == 20 and len(jit._fitted_train["ir"]) == 60  # the parts, and 2 copies of each
    # a part moved by 1.5 px and 1.5 degrees from its estimated pose is less anomalous to the jittered model
    off = {"ir": _ir(_plates([(1.5, -1.5, 1.5)]))}
    moved = plain.aligner.grids(plain._pose_channels(off), torch.tensor([[1.5, -1.5, math.radians(1.5)]]))[0]
    assert moved.shape == (1, 48, 64, 2)
    feats = plain.normalised_features("ir", PoseAlign.warp(plain.teachers["ir"].input(off["ir"]), moved))
    d_plain = plain._local_distance("ir", feats).max()
    d_jit = jit._local_distance("ir", feats).max()
    assert float(d_jit) < float(d_plain)
    held = jit.held_out_maps(train)
    assert held[0].shape == (20, 1, 48, 64)
    with pytest.raises(ValueError, match="local_jitter"):
        CrossModalDistillation(("ir",), (48, 64), TINY, normality="local", local_jitter=(0.5, 0.0))


def test_local_pool_sets_the_cells_each_gaussian_models():
    """--local-pool: pool 1 gives a Gaussian to every cell of the bank features' grid (four
    times the cells of the default 2), and the distance of each cell is still its Mahalanobis
    distance to that cell's Gaussian; the same spot stands out of the finer grid's good maps."""
    train = {"ir": _ir(_plates(_jitter(30, 3)))}
    coarse, fine = _model(align="none", dims=4), _model(align="none", dims=4, local_pool=1)
    for model in (coarse, fine):
        model.teachers["ir"].input.fit(train["ir"])
        model.fit_normality(train)
    gh, gw = coarse.local_grid
    assert fine.local_grid == (2 * gh, 2 * gw)
    assert fine.lmean_ir.shape == (1, 4, 2 * gh, 2 * gw) and fine.lprec_ir.shape == (4 * gh * gw, 4, 4)
    feats = fine.features(train)["ir"]
    e = fine.embed(feats) - fine.center_ir.view(1, -1, 1, 1)
    e = torch.einsum("bdhw,dp->bphw", e, fine.proj_ir)  # pool 1: the cells are the grid's own
    i, j = 3, 5
    y = (e[:, :, i, j] - fine.lmean_ir[0, :, i, j]).double()
    chol = fine.lprec_ir[i * fine.local_grid[1] + j].double()
    ref = torch.sqrt(torch.einsum("bd,de,be->b", y, chol @ chol.t(), y))
    torch.testing.assert_close(fine._local_distance("ir", feats)[:, 0, i, j].double(), ref, rtol=1e-4, atol=1e-4)
    # aligned, as the shipped students are: a spot no training part has stands out at both pools
    train = {"ir": _ir(_plates(_jitter(40, 1)))}
    good = {"ir": _ir(_plates(_jitter(6, 2)))}
    bad = {"ir": _ir(_plates([(4, -2, 2.5)], bump=(-8, -3)))}
    for pool in (2, 1):
        model = _model(local_pool=pool)
        model.teachers["ir"].input.fit(train["ir"])
        model.fit_inputs(train)
        model.fit_normality(train)
        assert float(model.branch_maps(bad)[0].max()) > 2 * float(model.branch_maps(good)[0].flatten(1).amax(1).max())
    with pytest.raises(ValueError, match="local_pool"):
        CrossModalDistillation(("ir",), (48, 64), TINY, normality="local", local_pool=0)


def test_detail_extremes_keep_a_thin_line_at_full_contrast():
    """--input-detail: a 1-px line of contrast 1 on a flat image is 1/4 of the cell's mean at
    stride 4, but its brightest detail (against the 5x5 mean) keeps 4/5 of it; a dark line shows
    in the darkest detail alone; a grid the input does not divide evenly is reached too."""
    from mmad_models.methods.mtfi import _detail_extremes

    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, :, 13] = 1.0
    hi, lo = _detail_extremes(x, (8, 8))
    assert hi.shape == lo.shape == (1, 1, 8, 8)
    torch.testing.assert_close(hi[0, 0, :, 3], torch.full((8,), 0.8))
    assert float(hi[0, 0, :, 0].abs().max()) == 0.0 and float(lo.max()) < 0.25
    assert float(torch.nn.functional.avg_pool2d(x, 4)[0, 0, :, 3].max()) == 0.25
    hi, lo = _detail_extremes(-x, (8, 8))
    torch.testing.assert_close(lo[0, 0, :, 3], torch.full((8,), 0.8))
    assert _detail_extremes(x, (6, 7))[0].shape == (1, 1, 6, 7)


def test_input_detail_finds_a_thin_line_the_cell_mean_loses():
    """A 1-px scratch across the plate: with the detail extremes in the pooled input it stands
    out of the good parts' maps by more than without; the channels are three times the input's;
    a modality the student does not read, or a model without the pooled input, is refused."""
    train = {"ir": _ir(_plates(_jitter(40, 1)))}
    good = {"ir": _ir(_plates(_jitter(6, 2)))}
    bad = _plates([(2, -1, 1.5)])
    bad[0, 18:30, 28] += 0.6  # a thin bright line across the plate's face
    bad = {"ir": _ir(bad)}
    ratio, channels = {}, {}
    for detail in ((), ("ir",)):
        model = _model(input_detail=detail)
        model.teachers["ir"].input.fit(train["ir"])
        model.fit_inputs(train)
        model.fit_normality(train)
        ratio[detail] = float(model.branch_maps(bad)[0].max()) / float(model.branch_maps(good)[0].flatten(1).amax(1).max())
        feats = model.features(train)["ir"]
        channels[detail] = feats[model.input_index].shape[1]
    assert channels[("ir",)] == 3 * channels[()]
    assert ratio[("ir",)] > 1.5 * ratio[()]
    with pytest.raises(ValueError, match="input_detail"):
        _model(input_detail=("rgb",))
    with pytest.raises(ValueError, match="input_detail"):
        CrossModalDistillation(("ir",), (48, 64), TINY, normality="local", input_weight=0.0, input_detail=("ir",))


def test_keep_input_keeps_the_pooled_input_whole_beside_the_teachers_components():
    """With keep_input the projection passes the pooled input's channels (cell mean and fine
    detail) as they are and fills the other columns with the teacher features' principal
    components, orthogonal to them; the model then still finds the thin line; local_dims that
    leave no teacher component, or a model without the pooled input, are refused."""
    train = {"ir": _ir(_plates(_jitter(40, 1)))}
    good = {"ir": _ir(_plates(_jitter(6, 2)))}
    bad = _plates([(2, -1, 1.5)])
    bad[0, 18:30, 28] += 0.6
    bad = {"ir": _ir(bad)}
    model = _model(dims=12, input_detail=("ir",), keep_input=True)
    model.teachers["ir"].input.fit(train["ir"])
    model.fit_inputs(train)
    model.fit_normality(train)
    a, b = model.input_columns["ir"]
    assert b - a == 3 * model._input_channels("ir") and b == model.dims["ir"]  # mean, brightest, darkest: last
    proj = model.proj_ir
    k = b - a
    assert torch.equal(proj[a:b, -k:], torch.eye(k))
    assert float(proj[a:b, :-k].abs().max()) == 0.0 and float(proj[:a, -k:].abs().max()) == 0.0
    teacher = proj[:a, :-k]
    assert torch.allclose(teacher.t() @ teacher, torch.eye(proj.shape[1] - k), atol=1e-4)
    ratio = float(model.branch_maps(bad)[0].max()) / float(model.branch_maps(good)[0].flatten(1).amax(1).max())
    assert ratio > 1.5
    with pytest.raises(ValueError, match="leaves no principal component"):
        _model(dims=3, input_detail=("ir",), keep_input=True)
    with pytest.raises(ValueError, match="keep_input"):
        CrossModalDistillation(("ir",), (48, 64), TINY, normality="bank", keep_input=True)
    with pytest.raises(ValueError, match="keep_input"):
        CrossModalDistillation(("ir",), (48, 64), TINY, normality="local", input_weight=0.0, keep_input=True)

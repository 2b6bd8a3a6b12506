import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmad_models.methods import METHODS, AnomalyResult, CrossmodalReverseDistillation, Method
from mmad_models.methods.backbones import ResNetEncoder, load_encoder, load_torchvision_checkpoint
from mmad_models.methods.preprocess import XyzInput, _solve3
from mmad_models.methods.scoring import MapScorer, map_sigma_px

TINY = {"kind": "small", "widths": [4, 8, 16], "stem": 4}


def _cloud(b=2, h=24, w=32, tilt=(0.0, 0.0), offset=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    x, y = (xx - w / 2) * 1e-3, (yy - h / 2) * 1e-3
    part = ((xx - w / 2).abs() < 8) & ((yy - h / 2).abs() < 6)
    z = offset + tilt[0] * x + tilt[1] * y - 0.01 * part.float()
    pc = torch.stack([x, y, z]).expand(b, 3, h, w).clone()
    pc[:, 2] += 1e-5 * torch.randn(b, h, w, generator=g)
    pc[:, :, 0, 0] = 0
    return pc, part


def test_solve3_matches_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 3, 3))
    b = rng.normal(size=(4, 3))
    got = _solve3(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(got, np.linalg.solve(a, b[..., None])[..., 0], rtol=1e-8)


def test_xyz_descriptors_height_and_invariance():
    pre = XyzInput((24, 32))
    pc, part = _cloud()
    d, v = pre.descriptors(pc)
    assert v[0, 0, 0, 0] == 0 and (d[:, :, 0, 0] == 0).all()  # missing stays 0
    h = d[0, 0]
    assert h[part].median() == pytest.approx(0.01, abs=2e-4)  # 10 mm above the plane
    assert h[~part & v[0, 0].bool()].abs().median() < 2e-4
    # a tilted and farther support plane gives (nearly) the same heights
    pc2, _ = _cloud(tilt=(0.1, -0.05), offset=0.7)
    d2, _ = pre.descriptors(pc2)
    assert (d2[0, 0] - h)[part].abs().median() < 5e-4
    # normals of the flat top point at the camera: x, y components ~ 0
    inner = torch.zeros_like(part)
    inner[9:15, 12:20] = True
    assert d[0, 1][inner].abs().max() < 0.05 and d[0, 2][inner].abs().max() < 0.05


def test_xyz_descriptors_without_border_plane():
    pre = XyzInput((24, 32))
    pc, part = _cloud()
    pc[:, :, ~part] = 0  # plane already removed: no border support
    d, _v = pre.descriptors(pc)
    assert torch.isfinite(d).all()
    assert (d[:, :, ~part] == 0).all()


def test_scorer_max_fusion_keeps_a_single_modality_anomaly():
    size = (16, 16)
    good = [torch.rand(8, 1, *size) * 0.1 + 0.5 for _ in range(3)]
    scorers = {f: MapScorer(3, size, fusion=f) for f in ("max", "sum")}
    for s in scorers.values():
        s.fit(good)
    spike = [g[:1].clone() for g in good]
    spike[1][..., 6:9, 6:9] += 1.0  # only the second modality sees it
    clean = [g[1:2].clone() for g in good]
    for s in scorers.values():
        amap, score = s.forward_upsampled(spike)
        _, score_clean = s.forward_upsampled(clean)
        assert amap.shape == (1, 1, 16, 16) and score.shape == (1,)
        assert score > score_clean + 3
        assert amap[0, 0, 7, 7] > amap[0, 0, 0, 0]
    # max fusion: the spike's strength equals that of its own branch alone
    alone = MapScorer(1, size)
    alone.fit([good[1]])
    _, s_alone = alone.forward_upsampled([spike[1]])
    _, s_max = scorers["max"].forward_upsampled(spike)
    assert s_max.item() == pytest.approx(s_alone.item(), rel=0.05)


def test_scorer_smoothing_scales_with_the_input_and_zero_leaves_the_map_as_it_is():
    """map_sigma is in pixels at 256 px, scaled to the shorter side with a floor of 0.5 px;
    0 smooths nothing; a thin line keeps more of its peak under a narrow smoothing than a wide
    one (why the shipped students smooth by 1 px, not 4)."""
    assert map_sigma_px(4.0, (256, 256)) == 4.0
    assert map_sigma_px(4.0, (160, 352)) == pytest.approx(2.5)
    assert map_sigma_px(1.0, (64, 64)) == 0.5
    assert map_sigma_px(0.0, (256, 256)) == 0.0
    with pytest.raises(ValueError, match="smoothing"):
        map_sigma_px(-1.0, (64, 64))
    size = (256, 256)  # where 1 and 4 px are above the floor
    good = [torch.rand(8, 1, *size) * 0.1]
    line = good[0][:1].clone()
    line[..., 128, 32:224] += 2.0  # one pixel wide
    peaks = {}
    for sigma in (0.0, 1.0, 4.0):
        s = MapScorer(1, size, map_sigma=sigma)
        s.fit(good)
        amap, score = s.forward_upsampled([line])
        peaks[sigma] = float(score)
        if sigma == 0.0:
            assert torch.allclose(amap, (line - s.mean[0]) / s.std[0])
    assert peaks[0.0] > peaks[1.0] > peaks[4.0]


@pytest.mark.parametrize("mods", [("rgb",), ("ir", "xyz"), ("rgb", "ir", "xyz")])
def test_crd_forward_loss_and_frozen_teacher(mods):
    torch.manual_seed(0)
    model = CrossmodalReverseDistillation(mods, (24, 32), TINY)
    pc, _ = _cloud(b=3)
    x = {"rgb": torch.rand(3, 3, 24, 32) * 255, "ir": torch.rand(3, 1, 24, 32) * 65535, "xyz": pc}
    x = {m: x[m] for m in mods}
    _assert_training_lowers_loss(model, x, steps=15)
    model.eval()
    r = model(x)
    assert isinstance(r, AnomalyResult)
    assert r.anomaly_map.shape == (3, 1, 24, 32) and r.score.shape == (3,)
    torch.testing.assert_close(r.score, r.anomaly_map.flatten(1).amax(1))
    if len(mods) > 1:
        assert model.branches[mods[0]].filter is not None and model.branches[mods[0]].amplifier is not None
    else:
        assert model.branches[mods[0]].filter is None


def test_every_registered_method_is_complete_and_named_in_the_manifest_schema():
    schema = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "model-manifest.schema.json").read_text())
    assert sorted(METHODS) == sorted(schema["$defs"]["model"]["properties"]["method"]["enum"])
    for cls in METHODS.values():
        assert issubclass(cls, Method) and not inspect.isabstract(cls)


def test_a_method_missing_a_member_of_the_contract_cannot_be_built():
    class NoNormalityHook(CrossmodalReverseDistillation):
        fit_normality = Method.fit_normality

    with pytest.raises(TypeError, match="fit_normality"):
        NoNormalityHook(("rgb",), (24, 32), TINY)


def test_crd_has_no_normality_model_to_fit():
    torch.manual_seed(0)
    model = CrossmodalReverseDistillation(("rgb", "xyz"), (24, 32), TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.fit_normality({"rgb": torch.rand(2, 3, 24, 32) * 255, "xyz": _cloud(b=2)[0]}, seed=1, log=print)
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_resnet_encoder_loads_torchvision_layout(tmp_path):
    enc = ResNetEncoder("resnet18")
    keys = set(enc.state_dict())
    # names as in torchvision's resnet18 state_dict
    for k in ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
              "layer2.0.downsample.1.num_batches_tracked", "layer3.1.bn2.bias"):
        assert k in keys
    state = {k: torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v for k, v in enc.state_dict().items()}
    state["layer4.0.conv1.weight"] = torch.zeros(512, 256, 3, 3)
    state["fc.weight"] = torch.zeros(1000, 512)
    path = tmp_path / "resnet18-local.pth"
    torch.save(state, path)
    fresh = ResNetEncoder("resnet18")
    ignored = load_torchvision_checkpoint(fresh, path)
    assert ignored == ["fc.weight", "layer4.0.conv1.weight"]
    torch.testing.assert_close(fresh.conv1.weight, state["conv1.weight"])
    loaded = load_encoder({"kind": "resnet", "arch": "resnet18", "weights": str(path)})
    torch.testing.assert_close(loaded.layer3[1].bn2.bias, state["layer3.1.bn2.bias"])
    f = loaded.eval()(torch.rand(1, 3, 64, 64))
    assert [t.shape[1] for t in f] == [64, 128, 256] and f[0].shape[-1] == 16
    with pytest.raises(ValueError):
        load_torchvision_checkpoint(ResNetEncoder("resnet34"), path)
    wide = ResNetEncoder("wide_resnet50_2")
    assert wide.channels == (256, 512, 1024) and wide.layer1[0].conv2.weight.shape == (128, 128, 3, 3)


def _mtfi_inputs(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    pc, _ = _cloud(b=b, seed=seed)
    return {"rgb": torch.rand(b, 3, 24, 32, generator=g) * 255, "ir": torch.rand(b, 1, 24, 32, generator=g) * 65535,
            "xyz": pc}


def test_scorer_calibration_keeps_a_branch_noisy_on_good_parts_from_winning_the_max():
    """Each branch is standardised by its own good parts' image scores: a branch whose good
    maps have high peaks (a weak modality) cannot out-shout a branch that sees a defect,
    and a good part scores about the same fused as in its best branch alone."""
    torch.manual_seed(0)
    size = (16, 16)
    n = 30
    quiet = torch.rand(n, 1, *size) * 0.1 + 0.5
    noisy = torch.rand(n, 1, *size) * 0.1 + 0.5
    for i in range(n):  # a peak of random height somewhere on every good part
        noisy[i, 0, i % 12 + 2, (3 * i) % 12 + 2] += 2.0 * float(torch.rand(1)) + 1.0
    s = MapScorer(2, size)
    s.fit([quiet, noisy])
    goods = [quiet[:10] + 0.0, noisy[:10]]
    _, good_scores = s.forward_upsampled(goods)
    defect = [quiet[10:11].clone(), noisy[10:11].clone()]
    defect[0][..., 6:9, 6:9] += 0.6  # a defect only the quiet branch sees, far above its own goods
    _, d = s.forward_upsampled(defect)
    assert d.item() > good_scores.max().item() + 1.0
    # standardised by image scores: a good part's fused score is a few units at most, not
    # the noisy branch's peak in pixel standard deviations (tens)
    assert good_scores.max().item() < 6.0


@pytest.mark.parametrize("normality", ["rd", "bank"])
def test_mtfi_students_learn_the_missing_modality_and_teachers_stay_frozen(normality):
    from mmad_models.methods import CrossModalDistillation

    torch.manual_seed(0)
    model = CrossModalDistillation(("rgb",), (24, 32), TINY, train_modalities=("rgb", "ir", "xyz"),
                                   normality=normality, bank_size=32)
    assert model.missing == ("ir", "xyz") and set(model.students) == {"ir", "xyz"}
    if normality == "rd":  # one reconstruction student per trained modality, missing ones included
        assert set(model.normal) == {"rgb", "ir", "xyz"}
    x = _mtfi_inputs()
    _assert_training_lowers_loss(model, x, steps=20)
    model.fit_normality(x)
    if normality == "bank":
        assert model.bank_xyz.abs().sum() > 0 and model.bank_xyz.shape == (32, model.dims["xyz"])
    model.eval()
    # inference takes the present modality only; one map per trained modality
    r = model({"rgb": x["rgb"]})
    assert isinstance(r, AnomalyResult) and r.anomaly_map.shape == (3, 1, 24, 32) and r.score.shape == (3,)
    assert len(model.branch_maps({"rgb": x["rgb"]})) == 3
    torch.testing.assert_close(r.score, r.anomaly_map.flatten(1).amax(1))


def test_mtfi_memory_bank_scores_a_training_part_near_zero():
    from mmad_models.methods import CrossModalDistillation
    from mmad_models.methods.mtfi import greedy_coreset

    torch.manual_seed(0)
    model = CrossModalDistillation(("rgb", "xyz"), (24, 32), TINY, normality="bank", bank_size=4096).eval()
    assert not model.missing and len(model.students) == 0
    x = _mtfi_inputs(b=2)
    x = {m: x[m] for m in ("rgb", "xyz")}
    model.fit_normality(x)  # fewer features than slots: every feature is in the bank
    maps = model.branch_maps(x)
    seen = max(float(m.abs().max()) for m in maps)
    assert seen < 1e-2
    bump = x["xyz"].clone()
    bump[:, 2, 8:16, 10:20] -= 0.004  # a 4 mm bump on the part
    other = {"rgb": torch.full_like(x["rgb"], 20.0), "xyz": bump}
    assert min(float(m.max()) for m in model.branch_maps(other)) > 10 * seen
    # greedy k-centre picks the far-away point before near duplicates
    pts = torch.tensor([[0.0, 0.0], [0.01, 0.0], [0.0, 0.01], [10.0, 10.0]])
    assert 3 in greedy_coreset(pts, 2).tolist()


def test_mtfi_memory_bank_features_include_the_weighted_pooled_input():
    """The bank's features: the teacher's scales and its normalised input pooled to the grid
    of scale 2, weighted; a colour change the teacher hardly sees still moves the distance."""
    from mmad_models.methods import CrossModalDistillation

    torch.manual_seed(0)
    plain = CrossModalDistillation(("rgb",), (24, 32), TINY, normality="bank", bank_size=64, input_weight=0.0)
    model = CrossModalDistillation(("rgb",), (24, 32), TINY, normality="bank", bank_size=64, input_weight=5.0)
    assert model.dims["rgb"] == plain.dims["rgb"] + 3 and model.layers == (0, 1, 2, 3)
    x = {"rgb": _mtfi_inputs(b=2)["rgb"]}
    feats = model.teacher_features(x)["rgb"]
    assert feats[3].shape[-2:] == feats[1].shape[-2:]  # pooled to the grid of scale 2
    e = model.embed(feats)
    assert e.shape[1] == model.dims["rgb"]
    torch.testing.assert_close(e[:, -3:], feats[3] * 5.0)
    # the bank keeps the top principal components of these features, fitted on the training parts
    small = CrossModalDistillation(("rgb",), (24, 32), TINY, normality="bank", bank_size=4096, bank_dims=4).eval()
    small.fit_normality(x)
    assert small.bank_rgb.shape == (4096, 4) and small.proj_rgb.shape == (model.dims["rgb"], 4)
    torch.testing.assert_close(small.proj_rgb.t() @ small.proj_rgb, torch.eye(4), atol=1e-4, rtol=0)
    assert max(float(m.abs().max()) for m in small.branch_maps(x)) < 1e-2  # every training feature is in the bank
    assert float(small.branch_maps({"rgb": torch.full_like(x["rgb"], 20.0)})[0].max()) > 0.1
    # the rd normality model has no input term
    rd = CrossModalDistillation(("rgb",), (24, 32), TINY, normality="rd")
    assert rd.input_index is None and len(rd.teacher_features(x)["rgb"]) == 3


def test_teachers_share_one_encoder_when_the_weights_file_is_the_same(tmp_path):
    from mmad_models.methods.backbones import SmallEncoder

    path = tmp_path / "t.pt"
    torch.save(SmallEncoder((4, 8, 16), 4).state_dict(), path)
    spec = {**TINY, "weights": str(path)}
    model = CrossmodalReverseDistillation(("rgb", "ir", "xyz"), (24, 32), spec)
    assert model.teachers["rgb"].encoder is model.teachers["xyz"].encoder
    assert model.teachers["rgb"].input is not model.teachers["xyz"].input
    # random teachers (no file) stay independent
    rnd = CrossmodalReverseDistillation(("rgb", "ir"), (24, 32), TINY)
    assert rnd.teachers["rgb"].encoder is not rnd.teachers["ir"].encoder


def test_robust_ir_input_scales_by_the_surface_not_the_hot_terminals():
    from mmad_models.methods.preprocess import IrInput

    g = torch.Generator().manual_seed(0)
    ir = 8000 + 40 * torch.randn(6, 1, 32, 32, generator=g)  # the part's surface
    ir[:, :, 4:10, 4:10] = 11000  # a terminal, 3000 counts brighter
    spot = ir.clone()
    spot[:, :, 20:26, 20:26] += 150  # a faint hot spot on the surface
    plain, robust = IrInput(), IrInput(robust=True)
    plain.fit(ir)
    robust.fit(ir)
    contrast = lambda pre: float((pre(spot) - pre(ir))[:, 0, 20:26, 20:26].mean())
    assert contrast(robust) > 5 * contrast(plain)
    assert robust(ir).abs().max() <= 3.0 + 1e-5  # the terminal is soft-clipped
    d = robust.describe()
    assert d["softClip"] == 3.0 and "interquartile" in d["statistics"]


def test_rgb_gamma_lifts_a_dark_parts_texture_and_compresses_a_highlight():
    from mmad_models.methods.preprocess import RgbInput

    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(128.0), indexing="ij")
    tread = 20 + 10 * ((xx // 4 + yy // 4) % 2)  # a dark textured part, 20-30 of 255
    tread[:, 64:] *= 6  # its right half under a highlight: 120-180
    raw = tread.expand(1, 3, 64, 128).clone()
    linear, curved = RgbInput(), RgbInput()
    curved.set_gamma(0.33)
    assert curved.describe()["gamma"] == 0.33 and "gamma" not in linear.describe()

    def swing(pre, half):  # the texture's swing on one half, in the teacher's units
        v = pre(raw)[0, 0][:, half]
        return float(v.max() - v.min())

    dark, lit = slice(0, 64), slice(64, 128)
    # linear: the highlight's texture swings 6x the dark texture's; through the curve 6 ** 0.33 = 1.8x
    assert swing(linear, lit) / swing(linear, dark) == pytest.approx(6, rel=0.01)
    assert swing(curved, lit) / swing(curved, dark) == pytest.approx(6**0.33, rel=0.01)
    # the small teachers' statistics are fitted on the curved values
    curved.fit(raw)
    assert abs(float(curved(raw).mean())) < 1e-4
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="gamma"):
            curved.set_gamma(bad)


def _assert_training_lowers_loss(model, x, steps):
    """A few Adam steps lower the loss by 30 %; the frozen teachers (weights and batch-norm statistics) do not move."""
    teacher_before = {k: v.clone() for k, v in model.teachers.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    for k, v in model.teachers.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k


def test_the_shipped_teacher_loads_and_half_storage_is_lossless_for_the_students(tmp_path):
    from mmad_models.methods.backbones import SmallEncoder, load_encoder
    from mmad_models.methods.common import round_to_half_
    from mmad_models.teachers import save_encoder
    from mmad_models.train import PROCEDURAL_SIZE, SHIPPED_TEACHERS

    shipped = SHIPPED_TEACHERS / f"procedural-{PROCEDURAL_SIZE}-32-64-128-s0.pt"
    enc = load_encoder({"kind": "small", "widths": [32, 64, 128], "weights": str(shipped)})
    assert all(t.dtype == torch.float32 for t in enc.state_dict().values() if t.is_floating_point())
    # what round_to_half_ rounds is stored as float16, the small batch-norm tensors as they are
    torch.manual_seed(0)
    src = SmallEncoder((4, 8, 16))
    for m in src.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    path = save_encoder(src, tmp_path / "t.pt", half=True)
    stored = torch.load(path, weights_only=True)
    assert {v.dtype for k, v in stored.items() if v.numel() >= 256 and v.is_floating_point()} == {torch.float16}
    assert all(v.dtype != torch.float16 for v in stored.values() if v.numel() < 256)
    back = load_encoder({"kind": "small", "widths": [4, 8, 16], "weights": str(path)})
    round_to_half_(src)
    for (k, a), b in zip(src.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("normality", ["bank", "local"])
def test_every_tensor_of_a_graph_follows_its_device(normality):
    """A tensor made in forward without the input's device breaks the graph on a GPU (PyTorch
    CUDA, as scripts/gpu-time.py runs the students) while the CPU and the ONNX export work:
    the model and its inputs on the meta device find such a tensor on the CPU."""
    from mmad_models.methods import CrossModalDistillation

    torch.manual_seed(0)
    extra = {"align": "pose", "xyz_face": True} if normality == "local" else {}
    model = CrossModalDistillation(("rgb", "ir", "xyz"), (24, 32), TINY, normality=normality, bank_size=32, **extra)
    x = _mtfi_inputs()
    model.fit_normality(x)
    model = model.eval().to("meta")
    with torch.no_grad():
        r = model({m: v.to("meta") for m, v in x.items()})
    assert r.anomaly_map.device.type == "meta" and r.anomaly_map.shape == (3, 1, 24, 32)

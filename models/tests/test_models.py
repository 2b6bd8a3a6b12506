import numpy as np
import pytest
import torch

from mmad_models.models import AnomalyResult, CrossmodalReverseDistillation
from mmad_models.models.backbones import ResNetEncoder, load_encoder, load_torchvision_checkpoint
from mmad_models.models.preprocess import XyzInput, _solve3
from mmad_models.models.scoring import MapScorer

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
    d, v = pre.descriptors(pc)
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
    for f, s in scorers.items():
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


@pytest.mark.parametrize("mods", [("rgb",), ("ir", "xyz"), ("rgb", "ir", "xyz")])
def test_crd_forward_loss_and_frozen_teacher(mods):
    torch.manual_seed(0)
    model = CrossmodalReverseDistillation(mods, (24, 32), TINY)
    pc, _ = _cloud(b=3)
    x = {"rgb": torch.rand(3, 3, 24, 32) * 255, "ir": torch.rand(3, 1, 24, 32) * 65535, "xyz": pc}
    x = {m: x[m] for m in mods}
    teacher_before = {k: v.clone() for k, v in model.teachers.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    losses = []
    for _ in range(15):
        loss = model.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    for k, v in model.teachers.state_dict().items():  # weights and batch-norm statistics
        assert torch.equal(v, teacher_before[k]), k
    model.eval()
    r = model(x)
    assert isinstance(r, AnomalyResult)
    assert r.anomaly_map.shape == (3, 1, 24, 32) and r.score.shape == (3,)
    torch.testing.assert_close(r.score, r.anomaly_map.flatten(1).amax(1))
    if len(mods) > 1:
        assert model.branches[mods[0]].filter is not None and model.branches[mods[0]].amplifier is not None
    else:
        assert model.branches[mods[0]].filter is None


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

"""XyzInput(face=True): the height relative to the part's dominant face, signed-log compressed."""

import json

import numpy as np
import onnx
import pytest
import torch

from mmad_models.cli import main
from mmad_models.export import export_model, run_onnx
from mmad_models.methods import CrossmodalReverseDistillation
from mmad_models.methods.preprocess import XyzInput, build_input
from mmad_models.metrics import calibrate_threshold
from mmad_models.train import load_checkpoint

TINY = {"kind": "small", "widths": [4, 8, 16], "stem": 4}
H, W = 48, 64
BUMP = (30, 44)  # row, column of the small bump's centre


def _lid(b=1, face_tilt=(0.0, 0.0), support_tilt=(0.02, -0.01), noise=5e-6, seed=0):
    """A part 5 mm high on a tilted support plane; its top face tilted by ``face_tilt``
    (height per metre of x, y) under a raised block 2 mm high and a 0.3 mm bump; 1 mm per
    pixel; the corner point missing. Returns the cloud [b,3,H,W] and the face's mask."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    x, y = (xx - W / 2) * 1e-3, (yy - H / 2) * 1e-3
    part = ((xx - W / 2).abs() < 24) & ((yy - H / 2).abs() < 18)
    block = ((xx - 20).abs() < 4) & ((yy - 20).abs() < 4)
    bump = 3e-4 * torch.exp(-((xx - BUMP[1]) ** 2 + (yy - BUMP[0]) ** 2) / 8)
    height = part * (0.005 + face_tilt[0] * x + face_tilt[1] * y) + block * 0.002 + part * bump
    z = 0.5 + support_tilt[0] * x + support_tilt[1] * y - height
    pc = torch.stack([x, y, z]).expand(b, 3, H, W).clone()
    pc[:, 2] += noise * torch.randn(b, H, W, generator=g)
    pc[:, :, 0, 0] = 0
    face = part & ~block & (bump < 1e-6)
    face[0, 0] = False
    return pc, face


def _crop(pc):
    """The 32 x 32 middle of a ``_lid`` cloud: the part's face, block and bump, a strip of support."""
    return pc[..., 8:40, 16:48].contiguous()


def _fitted():
    pre = XyzInput((H, W), face=True)
    pre.fit(torch.cat([_lid(face_tilt=t, seed=i)[0] for i, t in enumerate([(0, 0), (0.004, -0.003), (-0.003, 0.002)])]))
    return pre


def test_face_relative_height_is_flat_on_the_face_and_positive_on_the_bump():
    pre = _fitted()
    # fitted: the part level between the support (0) and the face (5 mm), the face's noise level
    assert 0.5e-3 < float(pre.part_level) < 4.5e-3
    assert 0 < float(pre.face_c0) < 2e-3
    assert 2e-6 < float(pre.face_s0) < 2e-5
    descs = []
    on_part = _lid()[0][0, 2] < 0.499  # the part stands >= 5 mm above the support (z 0.5 m)
    for tilt in [(0.0, 0.0), (0.005, -0.004)]:
        pc, face = _lid(face_tilt=tilt, seed=7)
        d, _v = pre.descriptors(pc)
        slog = d[0, 0]
        # ~0 on the face (within its noise level: |r| ~ s0 -> about log 2), whatever the tilt
        assert slog[face].abs().median() < 0.7
        assert slog[face].mean().abs() < 0.2
        # the 0.3 mm bump: r / s0 ~ 50, far above the face
        assert slog[BUMP] > 3.0
        descs.append(d[0, 0][on_part])
    # the same part, its face tilted otherwise: the same channel on the part (off it, the
    # support lies where it lies relative to the face's plane)
    torch.testing.assert_close(descs[0], descs[1], atol=0.02, rtol=0)
    # the height above the support plane moves with the tilt by far more than the bump
    plain = XyzInput((H, W))
    h0 = plain.descriptors(_lid(seed=7)[0])[0][0, 0]
    h1 = plain.descriptors(_lid(face_tilt=(0.005, -0.004), seed=7)[0])[0][0, 0]
    assert (h0 - h1).abs().max() > 1e-4


def test_face_missing_points_stay_zero_and_default_is_unchanged():
    pre = _fitted()
    pc, _ = _lid(b=2, seed=3)
    pc[1, :, 10:14, 30:40] = 0  # a hole on the face
    out = pre(pc)
    assert torch.isfinite(out).all()
    assert (out[:, :, 0, 0] == 0).all() and (out[1, :, 10:14, 30:40] == 0).all()
    assert (out[0, 0, 10:14, 30:40] != 0).any()
    d = pre.describe()
    assert d["descriptors"][0] == "height_to_face_slog"
    assert d["face"]["partLevelM"] == pytest.approx(float(pre.part_level))
    assert d["face"]["s0M"] == pytest.approx(float(pre.face_s0))
    # off: no extra state, the descriptors' names as before
    plain = build_input("xyz", (H, W))
    assert not plain.face and "part_level" not in plain.state_dict()
    assert plain.describe()["descriptors"][0] == "height_above_plane_m" and "face" not in plain.describe()
    assert build_input("xyz", (H, W), xyz_face=True).face


def test_face_input_exports_and_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    size = (32, 32)
    model = CrossmodalReverseDistillation(("xyz",), size, TINY, xyz_face=True).eval()
    pre = model.teachers["xyz"].input
    assert pre.face
    pre.fit(torch.cat([_crop(_lid(face_tilt=t, seed=i)[0]) for i, t in enumerate([(0, 0), (0.004, -0.003)])]))
    model.scorer.mean.copy_(torch.tensor([0.3]))
    model.scorer.std.copy_(torch.tensor([0.05]))
    x = {"xyz": _crop(_lid(b=2, face_tilt=(0.002, 0.001), seed=5)[0]).numpy()}
    threshold = calibrate_threshold([1.0, 1.4, 0.8, 1.9, 1.1, 1.2], 0.01).as_dict()
    metrics = {"i_auroc": 0.9, "p_auroc": 0.95, "aupro_0_3": 0.8, "f1": 0.7, "recall": 0.6, "falseAlarmRate": 0.05}
    metrics.update(threshold=threshold["value"], testCount=10, peakOnDefect=0.5)
    training = {"dataset": "d", "category": "c"}
    entry = export_model(model, tmp_path, "crd-xyz", "0.1.0", "crd", threshold, metrics, training, x)
    g = onnx.load(str(tmp_path / entry["file"]))
    assert g.opset_import[0].version == 18
    assert all(n.domain in ("", "ai.onnx") for n in g.graph.node)  # plain ONNX ops
    norm = entry["inputs"][0]["normalisation"]
    assert norm["descriptors"][0] == "height_to_face_slog" and norm["face"]["s0M"] == pytest.approx(float(pre.face_s0))
    x3 = {"xyz": _crop(_lid(b=3, face_tilt=(-0.003, 0.004), seed=9)[0]).numpy()}
    x3["xyz"][1, :, 5:9, 5:9] = 0  # missing points
    amap, score = run_onnx(tmp_path / entry["file"], x3)
    with torch.no_grad():
        ref = model({"xyz": torch.from_numpy(x3["xyz"])})
        inp = pre(torch.from_numpy(x3["xyz"]))
    assert inp[:, 0].abs().max() > 1.0  # the channel is not trivially flat
    np.testing.assert_allclose(amap, ref.anomaly_map.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(score, ref.score.numpy(), atol=1e-4, rtol=1e-4)


def test_face_option_trains_and_survives_a_checkpoint(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    args = "--category slab --modalities xyz --size 32 --teacher random --teacher-widths 4,8,16"
    args += " --bank-size 64 --bank-dims 8 --xyz-face --threads 1"
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(run), *args.split()]) == 0
    capsys.readouterr()
    res = json.loads((run / "result.json").read_text())
    assert res["config"]["xyz_face"] is True
    ck = torch.load(run / "model.pt", weights_only=False)
    state = ck["state"]
    for k in ("part_level", "face_c0", "face_s0"):
        v = state[f"teachers.xyz.input.{k}"]
        assert torch.isfinite(v) and float(v) > 0
    model, cfg, _ = load_checkpoint(run)
    assert cfg.xyz_face and model.teachers["xyz"].input.face
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    # a checkpoint from before the option (no xyz_face in its config) loads without it
    del ck["result"]["config"]["xyz_face"]
    ck["state"] = {k: v for k, v in state.items() if ".input.part_level" not in k and ".input.face_" not in k}
    torch.save(ck, tmp_path / "old.pt")
    old, cfg_old, _ = load_checkpoint(tmp_path / "old.pt")
    assert not cfg_old.xyz_face and not old.teachers["xyz"].input.face

"""The ct branch: the volume loader, the in-graph projections (CtInput), a ct model's export
with its third output, and its manifest entry against the schema."""

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch

from mmad_models.data import load_split, read_ct, stack, write_ct, write_mask
from mmad_models.export import export_model, run_onnx_outputs, write_manifest
from mmad_models.methods import CrossModalDistillation, CrossmodalReverseDistillation
from mmad_models.methods.preprocess import CtInput
from mmad_models.metrics import calibrate_threshold

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "model-manifest.schema.json"
TINY = {"kind": "small", "widths": [4, 8, 16], "stem": 4}
THRESHOLD = calibrate_threshold([1.0, 1.4, 0.8, 1.9, 1.1, 1.2], 0.01).as_dict()
METRICS = {"i_auroc": 0.9, "p_auroc": 0.95, "aupro_0_3": 0.8, "f1": 0.7, "recall": 0.6, "falseAlarmRate": 0.05,
           "threshold": THRESHOLD["value"], "testCount": 10}
AIR, MATERIAL = 1000.0, 1000.0 + 2.7 * 6000.0
GRID = (12, 8, 8)  # depth x height x width; the 2D frames are 16 x 16 (2 px per voxel)
BOTTOM, TOP = 3, 8  # the slab's lowest and highest material slices
VOID = (5, 2, 3)  # slice, row, column
INCLUSION = (6, 5, 5)


def slab(rng, void=False, inclusion=False, noise=0.01) -> np.ndarray:
    """A D x H x W uint16 volume: air, a slab of material from BOTTOM to TOP with half-filled
    (partial-volume) voxels on both faces, optionally a one-voxel void and a dense inclusion."""
    v = np.full(GRID, AIR)
    v[BOTTOM:TOP + 1] = MATERIAL
    v[BOTTOM - 1] = v[TOP + 1] = AIR + 0.45 * (MATERIAL - AIR)
    if void:
        v[VOID] = AIR
    if inclusion:
        v[INCLUSION] = AIR + 2.0 * (MATERIAL - AIR)
    v = v + rng.normal(0, noise * (MATERIAL - AIR), GRID)
    return np.clip(np.rint(v), 0, 65535).astype(np.uint16)


def test_ct_descriptors_see_a_void_and_an_inclusion_and_the_depth_points_at_their_slice():
    rng = np.random.default_rng(0)
    ci = CtInput((16, 16), GRID)
    good = torch.from_numpy(np.stack([slab(rng) for _ in range(6)]).astype(np.float32))[:, None]
    ci.fit(good)
    assert abs(float(ci.air) - AIR) < 300 and abs(float(ci.material) - MATERIAL) < 300
    x = torch.from_numpy(slab(rng, void=True, inclusion=True).astype(np.float32))[None, None]
    raw = ci.descriptors(x)[0]  # [3,Hc,Wc]: mass, interior min, interior max
    (_, vy, vx), (_, iy, ix) = VOID, INCLUSION
    plain = raw[:, 0, 0]
    assert 0.9 < float(plain[1]) <= 1.0 and 1.0 <= float(plain[2]) < 1.1  # the faces' partial volume is not interior
    assert float(raw[1, vy, vx]) < 0.1  # the void lowers the interior minimum ...
    assert abs(float(raw[2, vy, vx]) - float(plain[2])) < 0.1  # ... and leaves the maximum
    assert float(raw[2, iy, ix]) > 1.8  # the inclusion raises the interior maximum
    assert float(raw[0, vy, vx]) < float(plain[0]) < float(raw[0, iy, ix])  # mass: less, more material
    z = ci(x)[0]  # standardised, on the 16 x 16 frame
    assert z.shape == (3, 16, 16)
    assert float(z[1, 2 * vy:2 * vy + 2, 2 * vx:2 * vx + 2].min()) < -5
    assert float(z[2, 2 * iy:2 * iy + 2, 2 * ix:2 * ix + 2].max()) > 5
    depth = ci.depth(x)[0, 0]
    assert depth.shape == (16, 16)
    assert float(depth[2 * vy, 2 * vx]) == VOID[0] and float(depth[2 * vy + 1, 2 * vx + 1]) == VOID[0]
    assert float(depth[2 * iy, 2 * ix]) == INCLUSION[0]
    assert BOTTOM < float(depth[0, 0]) < TOP  # a good column: an interior slice
    air = torch.full((1, 1, *GRID), AIR)
    assert float(ci.depth(air).abs().max()) == 0.0  # no interior voxel: 0
    assert torch.equal(ci.descriptors(air)[0, 1:], torch.ones(2, 8, 8))


def _ct_dataset(root: Path, rng) -> Path:
    """A 16 x 16 category with ir frames and ct volumes; a test void part whose only 2D mask is
    gt_ct_2d (and its 3D mask gt_ct)."""
    from mmad_models.data import write_ir

    cat = root / "lid"
    for split, defect, n in (("train", "good", 4), ("validation", "good", 2), ("test", "good", 2), ("test", "void", 2)):
        d = cat / split / defect
        for i in range(n):
            stem = f"{i:03d}"
            write_ir(d / "ir" / f"{stem}.png", rng.integers(8000, 9000, (16, 16)))
            write_ct(d / "ct" / f"{stem}.tiff", slab(rng, void=defect == "void"))
            if split == "test":
                write_mask(d / "gt" / f"{stem}.png", np.zeros((16, 16), bool))
                m2 = np.zeros((16, 16), bool)
                if defect == "void":
                    m2[2 * VOID[1]:2 * VOID[1] + 2, 2 * VOID[2]:2 * VOID[2] + 2] = True
                write_mask(d / "gt_ct_2d" / f"{stem}.png", m2)
                m3 = np.zeros(GRID, np.uint8)
                if defect == "void":
                    m3[VOID] = 255
                write_ct(d / "gt_ct" / f"{stem}.tiff", m3)
    return root


def test_loader_reads_ct_at_its_grid_resamples_another_and_joins_the_ct_mask(tmp_path):
    rng = np.random.default_rng(1)
    root = _ct_dataset(tmp_path, rng)
    v = slab(rng)
    write_ct(tmp_path / "v.tiff", v)
    assert np.array_equal(read_ct(tmp_path / "v.tiff"), v)
    test = load_split(root, "lid", "test", ("ir", "ct"), (16, 16))
    x = stack(test, "ct")
    assert x.shape == (4, 1, *GRID) and x.dtype == np.float32  # raw counts at the volume's own grid
    assert float(x.max()) > 10000
    voids = [s for s in test if s.defect == "void"]
    assert all(s.mask.sum() == 4 for s in voids)  # gt is empty: the mask comes from gt_ct_2d
    assert all(s.mask.sum() == 0 for s in load_split(root, "lid", "test", ("ir",), (16, 16)))  # no ct: gt alone
    finer = load_split(root, "lid", "test", ("ct",), (16, 16), ct_grid=(24, 16, 16))
    assert stack(finer, "ct").shape == (4, 1, 24, 16, 16)
    m = stack(finer, "ct")[0, 0, :, 4, 4]  # trilinear: the slab's levels, the faces in between
    assert m.max() > 0.9 * MATERIAL and m.min() < AIR + 0.1 * (MATERIAL - AIR)


def test_train_evaluates_a_ct_model_and_refuses_to_distil_ct(tmp_path):
    from mmad_models.cli import main

    root = _ct_dataset(tmp_path, np.random.default_rng(2))
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(root), "--category", "lid", "--modalities", "ir,ct", "--size", "16",
                 "--teacher", "random", "--bank-size", "64", "--bank-dims", "8", "--out", str(out),
                 "--threads", "1"]) == 0
    res = json.loads((out / "result.json").read_text())
    assert res["config"]["ct_grid"] == list(GRID)
    assert res["metrics"]["defects"]["void"]["count"] == 2
    depth = res["metrics"]["depthError"]["void"]  # the void sits in slice 5 of the column under the peak
    assert depth["count"] == 2 and (depth["onDefect"] == 0 or depth["mean"] < 1.0)
    with pytest.raises(SystemExit, match="ct is not distilled"):
        main(["train", "--dataset", str(root), "--category", "lid", "--modalities", "ir", "--train-modalities",
              "ir,ct", "--size", "16", "--teacher", "random", "--out", str(tmp_path / "no")])


@pytest.mark.parametrize("method", ["mtfi", "crd"])
def test_a_ct_model_exports_with_anomaly_depth_matching_pytorch_and_a_valid_manifest(tmp_path, method):
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    mods = ("ir", "ct")
    if method == "mtfi":
        model = CrossModalDistillation(mods, (16, 16), TINY, normality="bank", bank_size=64, bank_dims=8, ct_grid=GRID)
    else:
        model = CrossmodalReverseDistillation(mods, (16, 16), TINY, slim=True, ct_grid=GRID)

    def batch(n, **kw):
        return {"ir": rng.integers(8000, 9000, (n, 1, 16, 16)).astype(np.float32),
                "ct": np.stack([slab(rng, **kw) for _ in range(n)]).astype(np.float32)[:, None]}

    train = {k: torch.from_numpy(v) for k, v in batch(4).items()}
    for m in mods:
        model.teachers[m].input.fit(train[m])
    model.fit_normality(train)
    model.scorer.mean.copy_(torch.tensor([0.3, 0.2]))
    # the ir branch's good-part spread set wide, so the ct branch leads the map (the untrained
    # ir branch would otherwise lead it in places, and there the depth is -1)
    model.scorer.std.copy_(torch.tensor([1e3, 0.1]))
    model.eval()
    with torch.no_grad():
        model.scorer.mean.copy_(torch.tensor([0.3, 1e6]))  # the ct branch far below every other
        hidden = model({k: torch.from_numpy(v) for k, v in batch(1, void=True).items()}).anomaly_depth
        assert bool((hidden == -1).all()), "where another branch leads the map, no ct depth"
        model.scorer.mean.copy_(torch.tensor([0.3, 0.2]))
    x = batch(1, void=True, inclusion=True)
    entry = export_model(model, tmp_path, f"{method}-ir-ct", "0.1.0", method, THRESHOLD, METRICS,
                         {"dataset": "d", "category": "c"}, x)
    path = write_manifest(tmp_path, [entry])
    jsonschema.validate(json.loads(path.read_text()), json.loads(SCHEMA.read_text()))
    ct_in = entry["inputs"][1]
    assert ct_in["shape"] == ["batch", 1, *GRID] and ct_in["layout"] == "NCDHW" and ct_in["modality"] == "ct"
    assert [o["name"] for o in entry["outputs"]] == ["anomaly_map", "score", "anomaly_depth"]
    x2 = batch(2, void=True)
    got = run_onnx_outputs(tmp_path / entry["file"], x2)  # another batch size than the export's
    with torch.no_grad():
        ref = model({k: torch.from_numpy(v) for k, v in x2.items()})
    np.testing.assert_allclose(got["anomaly_map"], ref.anomaly_map.numpy(), atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(got["score"], ref.score.numpy(), atol=1e-3, rtol=1e-3)
    assert got["anomaly_depth"].shape == (2, 1, 16, 16)
    assert np.array_equal(got["anomaly_depth"], ref.anomaly_depth.numpy())
    assert float(got["anomaly_depth"][0, 0, 2 * VOID[1], 2 * VOID[2]]) == VOID[0]
    index = json.loads((tmp_path / "parity" / entry["id"] / "index.json").read_text())
    assert [o["name"] for o in index["outputs"]] == ["anomaly_map", "score", "anomaly_depth"]
    assert [i["shape"] for i in index["inputs"]] == [[1, 1, 16, 16], [1, 1, *GRID]]
    # its null student (the pipeline benchmark's ceiling) has the same signature
    from mmad_models.null_students import write_null_students

    null = json.loads(write_null_students(path, tmp_path / "null").read_text())["models"][0]
    assert [(o["name"], o["shape"]) for o in null["outputs"]] == [(o["name"], o["shape"]) for o in entry["outputs"]]
    got = run_onnx_outputs(tmp_path / "null" / null["file"], x2)
    assert got["anomaly_map"].shape == (2, 1, 16, 16)
    # the null depth is the slice of each column's brightest voxel, nearest onto the map's grid
    brightest = x2["ct"].argmax(axis=2).astype(np.float32)
    assert np.array_equal(got["anomaly_depth"], brightest.repeat(16 // GRID[1], axis=2).repeat(16 // GRID[2], axis=3))


def test_depth_error_reads_the_depth_at_the_peak_against_the_masks_column():
    from mmad_models.metrics import depth_errors, depth_summary

    maps = np.zeros((3, 1, 16, 16))
    depths = np.zeros((3, 1, 16, 16))
    g = np.zeros((3, *GRID), bool)
    maps[0, 0, 4, 6] = 1  # on the defect: column (2, 3) holds slices 5 and 6
    depths[0, 0, 4, 6] = 5
    g[0, 5:7, 2, 3] = True
    maps[1, 0, 0, 0] = 1  # off the defect: against the whole mask's mean slice (4)
    depths[1, 0, 0, 0] = 1
    g[1, 4, 6, 6] = True
    maps[2, 0, 8, 8] = 1  # no 3D mask: not counted
    errors, on = depth_errors(maps, depths, list(g))
    assert errors[:2].tolist() == [0.5, 3.0] and np.isnan(errors[2])
    assert on.tolist() == [True, False, False]
    s = depth_summary(errors, on)
    assert (s["count"], s["onDefect"], s["mean"], s["meanAll"]) == (2, 1, 0.5, 1.75)

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from mmad_models import manifest as manifest_schema
from mmad_models.export import run_onnx, sha256_file
from mmad_models.null_students import main, write_null_students

SHIPPED = Path(__file__).resolve().parents[1] / "exported" / "manifest.json"


@pytest.fixture(scope="module")
def null(tmp_path_factory):
    out = tmp_path_factory.mktemp("null-students")
    path = write_null_students(SHIPPED, out)
    return out, json.loads(path.read_text()), json.loads(SHIPPED.read_text())


def _signature(values) -> dict:
    return {v.name: ([d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim], v.type.tensor_type.elem_type)
            for v in values}


def _io(path: Path) -> tuple[dict, dict]:
    g = onnx.load(str(path)).graph
    return _signature(g.input), _signature(g.output)


def test_manifest_valid_with_the_shipped_ids_modalities_and_thresholds(null):
    _out, got, shipped = null
    assert manifest_schema.problems(got) == []
    assert [e["id"] for e in got["models"]] == [e["id"] for e in shipped["models"]]
    for n, s in zip(got["models"], shipped["models"], strict=True):
        for key in ("version", "method", "modalities", "inputs", "threshold"):
            assert n[key] == s[key], (n["id"], key)
        assert [(o["name"], o["shape"]) for o in n["outputs"]] == [(o["name"], o["shape"]) for o in s["outputs"]]
        assert n["metrics"] is None and n["training"]["nullStudent"]["sha256Of"] == s["sha256"]


def test_graphs_have_the_students_signature_and_read_every_input(null):
    out, got, _shipped = null
    for e in got["models"]:
        path = out / e["file"]
        assert sha256_file(path) == e["sha256"] and path.stat().st_size == e["sizeBytes"]
        assert _io(path) == _io(SHIPPED.parent / e["file"]), e["id"]
        consumed = {x for node in onnx.load(str(path)).graph.node for x in node.input}
        assert set(e["modalities"]) <= consumed, e["id"]
        assert (out / e["parity"]["index"]).is_file()


def test_outputs_at_another_batch_size_are_ok_parts(null):
    out, got, _shipped = null
    e = next(m for m in got["models"] if m["id"] == "mtfi-rgb-ir-xyz")
    rng = np.random.default_rng(1)
    x = {"rgb": rng.integers(0, 256, (5, 3, 256, 256)).astype(np.float32),
         "ir": rng.integers(0, 65536, (5, 1, 256, 256)).astype(np.float32),
         "xyz": rng.random((5, 3, 256, 256)).astype(np.float32)}
    amap, score = run_onnx(out / e["file"], x)
    assert amap.shape == (5, 1, 256, 256) and score.shape == (5,)
    expected = sum(x[i["name"]].mean(axis=1, keepdims=True) * i["normalisation"].get("scale", 1.0) for i in e["inputs"]) / 3
    np.testing.assert_allclose(amap, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(score, amap.reshape(5, -1).max(1), rtol=1e-6)
    assert (score < e["threshold"]["value"]).all()


def test_command_line_rewrites_the_folder(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text('{"stale": true}')
    assert main(["--manifest", str(SHIPPED), "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "manifest.json")
    assert len(json.loads((tmp_path / "manifest.json").read_text())["models"]) == len(json.loads(SHIPPED.read_text())["models"])
    assert main(["--manifest", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x")]) == 1


def _with_ct(entry: dict, grid: tuple[int, int, int]) -> dict:
    """A manifest entry like ``entry`` that also takes a ct volume of ``grid`` (depth, height, width)."""
    ct = {"name": "ct", "modality": "ct", "shape": ["batch", 1, *grid], "dtype": "float32", "layout": "NCDHW",
          "units": "16-bit CT grey values 0..65535 as float32, lowest slice first", "missing": None,
          "resize": "trilinear to depth x height x width", "normalisation": {"inGraph": True, "scale": 1 / 65535}}
    _b, _c, h, w = next(o["shape"] for o in entry["outputs"] if o["name"] == "anomaly_map")
    depth = {"name": "anomaly_depth", "shape": ["batch", 1, h, w], "dtype": "float32",
             "description": "slice of the strongest deviation per map pixel"}
    return {**entry, "id": entry["id"] + "-ct", "modalities": [*entry["modalities"], "ct"],
            "inputs": [*entry["inputs"], ct], "outputs": [*entry["outputs"], depth]}


def test_a_ct_input_gives_the_volume_input_and_the_depth_output(tmp_path):
    shipped = json.loads(SHIPPED.read_text())
    entry = _with_ct(next(m for m in shipped["models"] if m["id"] == "mtfi-rgb-ir"), (8, 64, 64))
    source = tmp_path / "source.json"
    source.write_text(json.dumps({**shipped, "models": [entry]}))
    path = write_null_students(source, tmp_path / "out")
    got = json.loads(path.read_text())
    assert manifest_schema.problems(got) == []
    (e,) = got["models"]
    assert e["modalities"] == ["rgb", "ir", "ct"] and e["training"]["size"] == [256, 256]
    inputs, outputs = _io(path.parent / e["file"])
    assert inputs["ct"] == (["batch", 1, 8, 64, 64], onnx.TensorProto.FLOAT)
    assert list(outputs) == ["anomaly_map", "score", "anomaly_depth"]
    assert outputs["anomaly_depth"] == (["batch", 1, 256, 256], onnx.TensorProto.FLOAT)

    # a bright voxel at slice 5 under the ct pixel (10, 20): its 4x4 block of the map points at slice 5
    rgb = np.zeros((2, 3, 256, 256), np.float32)
    ir = np.zeros((2, 1, 256, 256), np.float32)
    ct = np.zeros((2, 1, 8, 64, 64), np.float32)
    ct[1, 0, 5, 10, 20] = 65535.0
    ct[1, 0, 2, 10, 20] = 65535.0 / 2
    so = ort.SessionOptions()
    sess = ort.InferenceSession(str(path.parent / e["file"]), so, providers=["CPUExecutionProvider"])
    amap, score, depth = sess.run(["anomaly_map", "score", "anomaly_depth"], {"rgb": rgb, "ir": ir, "ct": ct})
    assert depth.shape == (2, 1, 256, 256) and not depth[0].any()
    block = np.zeros((256, 256), bool)
    block[40:44, 80:84] = True
    assert (depth[1, 0][block] == 5).all() and not depth[1, 0][~block].any()
    np.testing.assert_allclose(amap[1, 0][block], (1.5 / 8) / 3, rtol=1e-5)
    np.testing.assert_allclose(score, [0, (1.5 / 8) / 3], rtol=1e-5)

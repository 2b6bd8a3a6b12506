import hashlib
import json
from pathlib import Path
from unittest import mock

import jsonschema
import numpy as np
import onnx
import pytest
import torch

from mmad_models.cli import main
from mmad_models.export import export_model, run_onnx, sha256_file, write_manifest
from mmad_models.manifest import ManifestError
from mmad_models.methods import CrossmodalReverseDistillation, mtfi
from mmad_models.metrics import calibrate_threshold

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "model-manifest.schema.json"
SHIPPED = Path(__file__).resolve().parents[1] / "exported" / "manifest.json"
TINY = {"kind": "small", "widths": [4, 8, 16], "stem": 4}
THRESHOLD = calibrate_threshold([1.0, 1.4, 0.8, 1.9, 1.1, 1.2], 0.01).as_dict()
METRICS = {"i_auroc": 0.9, "p_auroc": 0.95, "aupro_0_3": 0.8, "f1": 0.7, "recall": 0.6, "falseAlarmRate": 0.05,
           "threshold": THRESHOLD["value"], "testCount": 10, "peakOnDefect": 0.5}


def _inputs(rng, mods, b=2, size=(24, 32)):
    h, w = size
    xyz = np.zeros((b, 3, h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    xyz[:, 0], xyz[:, 1] = (xx - w / 2) * 1e-3, (yy - h / 2) * 1e-3
    xyz[:, 2] = 0.5 - 0.01 * ((np.abs(xx - w / 2) < 8) & (np.abs(yy - h / 2) < 6)) + rng.normal(0, 1e-4, (b, h, w))
    xyz[:, :, 0, 0] = 0  # a missing point
    all_ = {
        "rgb": rng.integers(0, 256, (b, 3, h, w)).astype(np.float32),
        "ir": rng.integers(0, 65536, (b, 1, h, w)).astype(np.float32),
        "xyz": xyz,
    }
    return {m: all_[m] for m in mods}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    out = tmp_path_factory.mktemp("exported")
    mods = ("rgb", "xyz")
    model = CrossmodalReverseDistillation(mods, (24, 32), TINY).eval()
    # non-trivial in-graph statistics, so that a missing normalisation would show
    model.scorer.mean.copy_(torch.tensor([0.3, 0.2]))
    model.scorer.std.copy_(torch.tensor([0.05, 0.1]))
    x = _inputs(rng, mods)
    entry = export_model(model, out, "crd-rgb-xyz", "0.1.0", "crd",
                         THRESHOLD, METRICS,
                         {"dataset": "d", "category": "c"}, x)
    write_manifest(out, [entry])
    return out, model, entry, x


def test_graph_io_names_shapes_dynamic_batch(exported):
    out, model, entry, _x = exported
    g = onnx.load(str(out / entry["file"]))
    ins = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in g.graph.input}
    outs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in g.graph.output}
    assert list(ins) == ["rgb", "xyz"]
    assert ins["rgb"] == ["batch", 3, 24, 32] and ins["xyz"] == ["batch", 3, 24, 32]
    assert outs == {"anomaly_map": ["batch", 1, 24, 32], "score": ["batch"]}
    for o in g.graph.output:
        assert o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # another batch size than the one exported with, compared with PyTorch
    rng = np.random.default_rng(5)
    x5 = _inputs(rng, ("rgb", "xyz"), b=5)
    amap, score = run_onnx(out / entry["file"], x5)
    with torch.no_grad():
        ref = model({k: torch.from_numpy(v) for k, v in x5.items()})
    assert amap.shape == (5, 1, 24, 32) and score.shape == (5,)
    np.testing.assert_allclose(amap, ref.anomaly_map.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(score, ref.score.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(score, amap.reshape(5, -1).max(1), rtol=1e-6)


def test_normalisation_is_inside_the_graph(exported):
    out, _model, entry, x = exported
    # raw 0..255 vs the same image pre-scaled: a graph without normalisation would not care
    a, _ = run_onnx(out / entry["file"], x)
    b, _ = run_onnx(out / entry["file"], {**x, "rgb": x["rgb"] / 255.0})
    assert np.abs(a - b).max() > 1e-3
    assert entry["inputs"][0]["normalisation"]["inGraph"] is True
    assert entry["inputs"][0]["normalisation"]["scale"] == pytest.approx(1 / 255)


def test_manifest_validates_and_checksums(exported):
    out, _, _, _ = exported
    manifest = json.loads((out / "manifest.json").read_text())
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(manifest)
    assert manifest["schemaVersion"] == 2
    m = manifest["models"][0]
    assert m["sha256"] == sha256_file(out / m["file"]) == hashlib.sha256((out / m["file"]).read_bytes()).hexdigest()
    assert m["modalities"] == ["rgb", "xyz"]
    # a broken manifest is rejected: the schema is not vacuous
    bad = json.loads(json.dumps(manifest))
    bad["models"][0]["sha256"] = "xyz"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(bad)
    del bad["models"][0]["threshold"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(bad)


def test_every_schema_property_is_documented():
    schema = json.loads(SCHEMA.read_text())

    def walk(node, path):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                assert "description" in sub, f"{path}.{name} has no description"
                walk(sub, f"{path}.{name}")
            for k in ("items", "additionalProperties"):
                if isinstance(node.get(k), dict):
                    walk(node[k], f"{path}[{k}]")
            for k, sub in node.get("$defs", {}).items():
                walk(sub, f"$defs.{k}")
            for sub in node.get("oneOf", []):
                walk(sub, path)

    walk(schema, "")


def test_parity_fixtures_replay(exported):
    out, _, entry, x = exported
    index_path = out / entry["parity"]["index"]
    index = json.loads(index_path.read_text())
    assert (index_path.parent / index["model"]).resolve() == (out / entry["file"]).resolve()
    feeds = {}
    for i in index["inputs"]:
        raw = (index_path.parent / i["file"]).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == i["sha256"]
        feeds[i["name"]] = np.frombuffer(raw, dtype="<f4").reshape(i["shape"])
        np.testing.assert_array_equal(feeds[i["name"]], x[i["name"]])
    amap, score = run_onnx(index_path.parent / index["model"], feeds)
    expected = {o["name"]: np.frombuffer((index_path.parent / o["file"]).read_bytes(), "<f4").reshape(o["shape"])
                for o in index["outputs"]}
    tol = index["tolerance"]
    for name, got in (("anomaly_map", amap), ("score", score)):
        assert np.all(np.abs(got - expected[name]) <= tol["absolute"] + tol["relative"] * np.abs(expected[name]))
    assert entry["parity"]["maxAbsErrorVsPytorch"]["anomaly_map"] < 1e-3 * max(1.0, float(np.abs(amap).max()))


def _entry(entry, mid, **changes):
    return {**json.loads(json.dumps(entry)), "id": mid, "file": f"{mid}.onnx", **changes}


def test_write_manifest_replaces_by_id(exported, tmp_path):
    _, _, entry, _ = exported
    write_manifest(tmp_path, [_entry(entry, "b"), _entry(entry, "a")])
    write_manifest(tmp_path, [_entry(entry, "b", version="0.2.0")])
    models = json.loads((tmp_path / "manifest.json").read_text())["models"]
    assert [m["id"] for m in models] == ["a", "b"] and [m["version"] for m in models] == ["0.1.0", "0.2.0"]


def test_write_manifest_refuses_what_the_service_would_refuse_and_writes_nothing(exported, tmp_path):
    _, _, entry, _ = exported
    with pytest.raises(ManifestError, match=r"models\[0\] \(crd-rgb-xyz\)\.version: '0\.0\.1-x' does not match"):
        write_manifest(tmp_path, [_entry(entry, "crd-rgb-xyz", version="0.0.1-x")])
    assert not (tmp_path / "manifest.json").exists()
    # a threshold of the older rule (no stated false-alarm rate) is not what the export writes
    old = {"value": 2.5, "rule": "mean + 3 * std", "sigmas": 3.0}
    with pytest.raises(ManifestError, match=r"threshold: 'falseAlarmRate' is a required property"):
        write_manifest(tmp_path, [_entry(entry, "crd-rgb-xyz", threshold=old)])
    # an entry kept from the folder's manifest is named as such
    write_manifest(tmp_path, [_entry(entry, "a")])
    before = (tmp_path / "manifest.json").read_text()
    legacy = json.loads(before)
    legacy["models"][0]["threshold"] = old
    (tmp_path / "manifest.json").write_text(json.dumps(legacy))
    with pytest.raises(ManifestError, match=r"(?s)models\[0\] \(a\)\.threshold.*kept from the manifest already there: a"):
        write_manifest(tmp_path, [_entry(entry, "b")])
    assert json.loads((tmp_path / "manifest.json").read_text()) == legacy


def test_export_cli_checks_the_version_first(tmp_path, capsys):
    # refused while parsing the arguments: the checkpoint (absent here) is never read
    with pytest.raises(SystemExit) as ex:
        main(["export", str(tmp_path / "no-such-run"), "--out", str(tmp_path / "out"), "--version", "0.0.1-x"])
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert "argument --version: version '0.0.1-x' is not a model version the manifest accepts" in err
    assert "models[].version" in err
    assert not (tmp_path / "out").exists()


def test_the_shipped_manifest_still_validates():
    """Manifests written before schemaVersion 2 (mean + k std thresholds) keep loading in the service."""
    schema = json.loads(SCHEMA.read_text())
    manifest = json.loads(SHIPPED.read_text())
    jsonschema.Draft202012Validator(schema).validate(manifest)
    if manifest["schemaVersion"] == 1:  # the same entries do not pass as version 2
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(schema).validate({**manifest, "schemaVersion": 2})


@pytest.fixture(scope="module", params=["rd", "bank", "bank+discriminator", "bank+gamma", "bank+blocks", "local+align",
                                        "local+align+irrelative"])
def exported_mtfi(tmp_path_factory, request):
    from mmad_models.methods import CrossModalDistillation
    from mmad_models.methods.common import round_to_half_

    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    out = tmp_path_factory.mktemp("exported-mtfi")
    model = CrossModalDistillation(("rgb", "ir"), (24, 32), TINY, train_modalities=("rgb", "ir", "xyz"),
                                   normality=request.param.split("+")[0], bank_size=64,
                                   discriminate=request.param.endswith("discriminator"), head_steps=20,
                                   align="pose" if "align" in request.param else "none", local_dims=4,
                                   ir_relative=request.param.endswith("irrelative"))
    if request.param.endswith("gamma"):  # the response curve inside the graph: ONNX Runtime must match PyTorch
        model.teachers["rgb"].input.set_gamma(0.33)
    full = {k: torch.from_numpy(v) for k, v in _inputs(rng, ("rgb", "ir", "xyz"), b=4).items()}
    model.fit_inputs(full)  # the aligner's level and reference pose, the ir level's reference (no-ops without them)
    model.fit_normality(full)
    round_to_half_(model)  # as training does: the file stores the large tensors as float16
    model.scorer.mean.copy_(torch.tensor([0.3, 0.2, 0.5]))
    model.scorer.std.copy_(torch.tensor([0.05, 0.1, 0.2]))
    model.eval()
    x = _inputs(rng, ("rgb", "ir"))
    # blocks: the graph compares the 64 entries 16 at a time (BANK_CHUNK); the PyTorch reference
    # of the tests below takes them at once, so the two agree only if the blocks' minimum is right
    with mock.patch.object(mtfi, "BANK_CHUNK", 16 if request.param.endswith("blocks") else mtfi.BANK_CHUNK):
        entry = export_model(model, out, "mtfi-rgb-ir", "0.1.0", "mtfi",
                             THRESHOLD, METRICS,
                             {"dataset": "d", "category": "c", "trainModalities": ["rgb", "ir", "xyz"],
                              "distilledModalities": ["xyz"]}, x)
    if request.param.endswith("blocks"):  # one ReduceMin per block and per bank (rgb, ir, xyz)
        ops = [n.op_type for n in onnx.load(str(out / entry["file"])).graph.node]
        assert ops.count("ReduceMin") == 3 * 4, ops.count("ReduceMin")
    write_manifest(out, [entry])
    return out, model, entry, x


def test_mtfi_onnx_matches_pytorch_with_the_present_modalities_only(exported_mtfi):
    out, model, entry, _ = exported_mtfi
    g = onnx.load(str(out / entry["file"]))
    assert [i.name for i in g.graph.input] == ["rgb", "ir"]  # xyz is distilled, not an input
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in g.graph.initializer)
    x3 = _inputs(np.random.default_rng(7), ("rgb", "ir"), b=3)
    amap, score = run_onnx(out / entry["file"], x3)
    with torch.no_grad():
        ref = model({k: torch.from_numpy(v) for k, v in x3.items()})
    assert amap.shape == (3, 1, 24, 32) and score.shape == (3,)
    np.testing.assert_allclose(amap, ref.anomaly_map.numpy(), atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(score, ref.score.numpy(), atol=1e-3, rtol=1e-3)
    assert entry["parity"]["maxAbsErrorVsPytorch"]["anomaly_map"] < 1e-3 * max(1.0, float(np.abs(amap).max()))


def test_manifest_with_an_mtfi_entry_validates(exported, exported_mtfi):
    out, _, _, _ = exported_mtfi
    _, _, crd_entry, _ = exported
    write_manifest(out, [crd_entry])  # one manifest with both methods
    manifest = json.loads((out / "manifest.json").read_text())
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema).validate(manifest)
    assert [(m["id"], m["method"]) for m in manifest["models"]] == [("crd-rgb-xyz", "crd"), ("mtfi-rgb-ir", "mtfi")]
    bad = json.loads(json.dumps(manifest))
    bad["models"][1]["method"] = "patchcore"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(bad)


def test_half_storage_is_lossless_and_halves_the_file(tmp_path):
    from mmad_models.export import export_onnx, store_half
    from mmad_models.methods.common import round_to_half_

    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    x = _inputs(rng, ("rgb", "xyz"))
    ex = {k: torch.from_numpy(v) for k, v in x.items()}
    model = CrossmodalReverseDistillation(("rgb", "xyz"), (24, 32), TINY).eval()
    # random float32 weights are not float16-exact: kept as float32 (only constant-initialised
    # batch-norm tensors happen to be exact)
    full = export_onnx(model, tmp_path / "full.onnx", ex)
    n16 = lambda p: sum(i.data_type == onnx.TensorProto.FLOAT16 for i in onnx.load(str(p)).graph.initializer)
    assert round_to_half_(model) > 0
    half = export_onnx(model, tmp_path / "half.onnx", ex)
    assert n16(half) > n16(full) + 10
    assert half.stat().st_size < 0.8 * full.stat().st_size  # tiny model: the graph itself is a good part
    amap, _score = run_onnx(half, x)
    with torch.no_grad():
        ref = model(ex)
    np.testing.assert_allclose(amap, ref.anomaly_map.numpy(), atol=1e-4, rtol=1e-4)
    # a value float16 cannot hold exactly stays float32
    w = onnx.helper.make_tensor("w", onnx.TensorProto.FLOAT, [300], [0.1] * 300)
    m = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [], initializer=[w]))
    assert store_half(m) == 0 and m.graph.initializer[0].data_type == onnx.TensorProto.FLOAT

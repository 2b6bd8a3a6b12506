"""ONNX export of a trained method module, its manifest entry and its parity fixtures.

Each exported graph takes the raw inputs of its modality subset (in the manifest's
order) and returns ``anomaly_map`` [B,1,H,W] and ``score`` [B], both float32, and a graph
that takes ct also ``anomaly_depth`` [B,1,H,W]; input normalisation, map upsampling,
standardisation, fusion, smoothing and the image score are inside the graph. The batch
axis is dynamic.

Parity fixtures: for every model, inputs and the onnxruntime outputs as raw
little-endian float32 files plus an ``index.json``, replayed by the TypeScript tests
through onnxruntime-node.

The manifest is validated against ``schemas/model-manifest.schema.json`` before it is
written (``write_manifest``; ``manifest.py``): a manifest the service would refuse is never
written.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import warnings
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from . import manifest as manifest_schema
from .methods import Method

MANIFEST_SCHEMA_VERSION = manifest_schema.SCHEMA_VERSION
OPSET = 18
INPUT_CONVENTIONS = {
    "rgb": {"channels": 3, "units": "8-bit sample values 0..255 as float32, channel order R,G,B", "missing": None},
    "ir": {"channels": 1, "units": "16-bit sample values 0..65535 as float32", "missing": None},
    "xyz": {"channels": 3, "units": "metres, channel order x,y,z", "missing": "0,0,0 marks a missing point"},
    "ct": {"channels": 1, "units": "raw 16-bit CT grey values 0..65535 as float32, the lowest slice first "
                                   "(depth x height x width, row-major)", "missing": None},
}
RESIZE = {
    "rgb": "lanczos3 (sharp's default kernel) to the model's height x width, rounded to 0..255",
    "ir": "lanczos3 to the model's height x width, rounded to 0..65535",
    "xyz": "nearest valid point: each output pixel takes the valid source point of its footprint closest to the footprint centre, else 0,0,0; never interpolated",
    "ct": "trilinear to the input's depth x height x width (voxel centres, align_corners false); the volume covers the 2D frames' field of view, so its grid need not match theirs",
}
OUTPUTS = ("anomaly_map", "score", "anomaly_depth")


def output_names(model: Method) -> list[str]:
    """anomaly_map, score, and anomaly_depth for a model that takes ct."""
    return list(OUTPUTS if "ct" in model.modalities else OUTPUTS[:2])


class _Graph(nn.Module):
    """Named inputs (the modalities, in manifest order) -> (anomaly_map, score[, anomaly_depth])."""

    def __init__(self, model: Method):
        super().__init__()
        self.model = model
        self.modalities = tuple(model.modalities)

    def forward(self, rgb: torch.Tensor | None = None, ir: torch.Tensor | None = None,
                xyz: torch.Tensor | None = None, ct: torch.Tensor | None = None):
        given = {"rgb": rgb, "ir": ir, "xyz": xyz, "ct": ct}
        r = self.model({m: given[m] for m in self.modalities})
        return (r.anomaly_map, r.score) if r.anomaly_depth is None else (r.anomaly_map, r.score, r.anomaly_depth)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_onnx(model: Method, path: str | Path, example: dict[str, torch.Tensor]) -> Path:
    """Writes the graph (single file, weights inside) and checks it with onnx.checker."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    g = _Graph(model).eval()
    names = list(g.modalities)
    kwargs = {m: example[m] for m in names}
    h, w = model.size
    outs = output_names(model)
    # The TorchScript-based exporter: a few seconds on CPU, where the dynamo exporter takes
    # tens; both give the same graph for these modules (checked against PyTorch below).
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(
            g, (), str(path), kwargs=kwargs, input_names=names, output_names=outs,
            dynamic_axes={**{m: {0: "batch"} for m in names + outs}},
            # no folding: batch norms stay separate nodes, so every weight in the file is the
            # PyTorch tensor itself (float16-exact after round_to_half_, see store_half);
            # onnxruntime folds them into the convolutions when it loads the graph
            opset_version=OPSET, dynamo=False, external_data=False, verbose=False, do_constant_folding=False,
        )
    # Pin the output shapes the exporter leaves symbolic: [batch,1,H,W] and [batch].
    proto = onnx.load(str(path))
    store_half(proto)
    for o in proto.graph.output:
        dims = o.type.tensor_type.shape.dim
        want = ["batch"] if o.name == "score" else ["batch", 1, h, w]
        del dims[:]
        for d in want:
            nd = dims.add()
            if isinstance(d, str):
                nd.dim_param = d
            else:
                nd.dim_value = d
    onnx.save(proto, str(path))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return path


def store_half(proto: onnx.ModelProto, min_numel: int = 256) -> int:
    """Stores every large float32 initializer whose values are all exactly representable in
    float16 as a float16 initializer followed by a Cast back to float32 (lossless: the graph
    computes with the same float32 numbers; onnxruntime folds the Cast when it loads the
    file). Returns the number of initializers converted."""
    from onnx import helper, numpy_helper

    g = proto.graph
    casts, n = [], 0
    for init in g.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        a = numpy_helper.to_array(init)
        if a.size < min_numel:
            continue
        h = a.astype(np.float16)
        if not np.isfinite(h).all() or not np.array_equal(h.astype(np.float32), a):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(h, name + "__fp16"))
        casts.append(helper.make_node("Cast", [name + "__fp16"], [name], to=onnx.TensorProto.FLOAT,
                                      name=f"cast_{n}_to_float"))
        n += 1
    if casts:
        nodes = list(g.node)
        del g.node[:]
        g.node.extend(casts + nodes)
    return n


def run_onnx_outputs(path: str | Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of the graph, by name."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {k: v.astype(np.float32) for k, v in inputs.items()})))


def run_onnx(path: str | Path, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    out = run_onnx_outputs(path, inputs)
    return out["anomaly_map"], out["score"]


def write_parity(
    folder: str | Path, model_file: str, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
    tolerance: float = 1e-3,
) -> dict:
    """Raw little-endian float32 files + index.json, paths relative to the index."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = {"inputs": [], "outputs": []}
    for kind, tensors in (("inputs", inputs), ("outputs", outputs)):
        for name, a in tensors.items():
            a = np.ascontiguousarray(a, dtype="<f4")
            fname = f"{kind[:-1]}_{name}.f32"
            (folder / fname).write_bytes(a.tobytes())
            entries[kind].append({"name": name, "shape": list(a.shape), "dtype": "float32", "file": fname,
                                  "sha256": hashlib.sha256(a.tobytes()).hexdigest()})
    index = {
        "model": model_file,
        "byteOrder": "little",
        **entries,
        "tolerance": {"absolute": tolerance, "relative": tolerance,
                      "rule": "|actual - expected| <= absolute + relative * |expected| for every element"},
    }
    (folder / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return index


def model_io(model: Method, roi: tuple[float, float, float, float] | None = None) -> tuple[list[dict], list[dict]]:
    """The manifest's inputs and outputs; ``roi`` (data/roi.py; None: the whole frame) on every
    2D input: the service crops a frame to it before resizing."""
    h, w = model.size
    inputs = []
    for m in model.modalities:
        c = INPUT_CONVENTIONS[m]
        crop = {} if roi is None or m == "ct" else {"roi": dict(zip(("left", "top", "right", "bottom"), map(float, roi)))}
        inputs.append({
            "name": m,
            "modality": m,
            "shape": ["batch", c["channels"], *(model.teachers[m].input.grid if m == "ct" else (h, w))],
            "dtype": "float32",
            "layout": "NCDHW" if m == "ct" else "NCHW",
            "units": c["units"],
            "missing": c["missing"],
            "resize": RESIZE[m],
            **crop,
            "normalisation": {"inGraph": True, **model.teachers[m].input.describe()},
        })
    outputs = [
        {"name": "anomaly_map", "shape": ["batch", 1, h, w], "dtype": "float32",
         "description": "per-pixel anomaly, in units of the validation good parts' standard deviation of each branch (0 ~ typical good pixel), Gaussian-smoothed, fused across modalities"},
        {"name": "score", "shape": ["batch"], "dtype": "float32",
         "description": "image anomaly score: maximum of anomaly_map; NOK when score >= threshold.value"},
    ]
    if "ct" in model.modalities:
        outputs.append({
            "name": "anomaly_depth", "shape": ["batch", 1, h, w], "dtype": "float32",
            "description": "per pixel of anomaly_map, the height in the ct volume of its column's strongest deviation "
                           "from the material among the voxels strictly inside it (material below and above), in "
                           "slices of the input volume (0 = the centre of the lowest slice; 0 also where the column "
                           "has no interior voxel; -1 where another modality's branch leads the map: no ct depth "
                           "there); millimetres = (slice + 0.5) x the volume's slice thickness above "
                           "the volume's lower face"})
    return inputs, outputs


def export_model(
    model: Method,
    out_dir: str | Path,
    model_id: str,
    version: str,
    method: str,
    threshold: dict,
    metrics: dict | None,
    training: dict,
    parity_inputs: dict[str, np.ndarray],
    roi: tuple[float, float, float, float] | None = None,
) -> dict:
    """Exports one model, verifies onnxruntime against PyTorch, writes parity fixtures;
    returns its manifest entry (the caller assembles the manifest; ``roi``: the box of the
    frames the model was trained on, model_io)."""
    out_dir = Path(out_dir)
    fname = f"{model_id}.onnx"
    example = {k: torch.from_numpy(v.astype(np.float32)) for k, v in parity_inputs.items()}
    path = export_onnx(model, out_dir / fname, example)
    with torch.no_grad():
        ref = model.eval()(example)
    got = run_onnx_outputs(path, parity_inputs)
    errors = {}
    for name in output_names(model):
        want = getattr(ref, name).numpy()
        errors[name] = float(np.abs(got[name] - want).max())
    scale = max(1.0, float(np.abs(ref.anomaly_map.numpy()).max()))
    # anomaly_depth is an index: exact, or a tie between two slices broken otherwise
    # (counted, not bounded by the map's tolerance). The map's bound is looser than the
    # score's: a per-place model on --xyz-face's channel (a log that is steepest on the face
    # itself, where the per-place variance is smallest) turns the float32 rounding of a
    # point's depth into map differences of up to 0.2 % of its peak between the two
    # runtimes (the shipped mtfi-xyz: 0.0067 at a peak of 3.1; 0.012 at 6.1 on another part),
    # far below the sensor's noise. The score is the map's maximum: the same bound.
    if errors["anomaly_map"] > 5e-3 * scale or errors["score"] > 5e-3 * scale:
        raise RuntimeError(f"{model_id}: onnxruntime differs from PyTorch (map {errors['anomaly_map']:.3g}, "
                           f"score {errors['score']:.3g})")
    if "anomaly_depth" in errors:
        off = float((got["anomaly_depth"] != ref.anomaly_depth.numpy()).mean())
        if off > 1e-3:
            raise RuntimeError(f"{model_id}: onnxruntime's anomaly_depth differs from PyTorch's at {off:.2%} of pixels")
    parity_dir = out_dir / "parity" / model_id
    write_parity(parity_dir, f"../../{fname}", parity_inputs, {k: got[k] for k in output_names(model)})
    return manifest_entry(model, model_id, version, method, threshold, metrics, training,
                          sha256=sha256_file(path), size_bytes=path.stat().st_size, max_abs_error=errors, roi=roi)


def manifest_entry(
    model: Method,
    model_id: str,
    version: str,
    method: str,
    threshold: dict,
    metrics: dict | None,
    training: dict,
    *,
    sha256: str = "0" * 64,
    size_bytes: int = 1,
    max_abs_error: dict | None = None,
    roi: tuple[float, float, float, float] | None = None,
) -> dict:
    """A model's manifest entry. The file's checksum, size and parity error are known only
    after the export; without them (placeholders) the entry is a plan, which the command line
    validates before exporting anything."""
    inputs, outputs = model_io(model, roi)
    return {
        "id": model_id,
        "version": version,
        "method": method,
        "modalities": list(model.modalities),
        "file": f"{model_id}.onnx",
        "sha256": sha256,
        "sizeBytes": size_bytes,
        "opset": OPSET,
        "inputs": inputs,
        "outputs": outputs,
        "threshold": threshold,
        "metrics": metrics,
        "training": training,
        "parity": {"index": f"parity/{model_id}/index.json",
                   "maxAbsErrorVsPytorch": max_abs_error or dict.fromkeys(output_names(model), 0.0)},
    }


def build_manifest(out_dir: str | Path, entries: list[dict]) -> tuple[dict, tuple[str, ...]]:
    """The manifest ``write_manifest`` would write, and the ids it keeps from the one already there."""
    path = Path(out_dir) / "manifest.json"
    existing = json.loads(path.read_text())["models"] if path.exists() else []
    ids = {e["id"] for e in entries}
    kept = [e for e in existing if e["id"] not in ids]
    manifest = {
        "$schema": "../../schemas/model-manifest.schema.json",
        "schemaVersion": MANIFEST_SCHEMA_VERSION,
        "updatedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "models": sorted(kept + entries, key=lambda e: e["id"]),
    }
    return manifest, tuple(sorted(e["id"] for e in kept))


def check_manifest(out_dir: str | Path, entries: list[dict]) -> None:
    """Raises ``manifest.ManifestError`` when the manifest ``write_manifest`` would write does not
    validate against the schema (every problem named by its field)."""
    manifest_schema.check(*build_manifest(out_dir, entries))


def write_manifest(out_dir: str | Path, entries: list[dict]) -> Path:
    """``manifest.json``: replaces entries with the same id, keeps the others, sorted by id.
    Validated against the schema first: on a problem it raises ``manifest.ManifestError`` and
    leaves the folder's manifest as it was."""
    manifest, kept = build_manifest(out_dir, entries)
    manifest_schema.check(manifest, kept)
    path = Path(out_dir) / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path

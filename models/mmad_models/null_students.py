"""Null students: for each student of a manifest, an ONNX graph with exactly its inputs and
outputs that does almost no work, and a manifest of them the service accepts.

    python -m mmad_models.null_students --manifest exported/manifest.json --out ../out/bench/null-students

The service routes a part to a null student exactly as to its namesake (same id, version,
modalities, input and output shapes, threshold), so a pipeline run with them costs what the
service does around the model: reading, joining, decoding and resizing, batching, moving the
tensors to and from the inference thread, building and writing the outputs. The pipeline
benchmark (``bench/pipeline.bench.ts``) runs them beside the real students.

The graph reads every input (an unread input would let onnxruntime skip it): per input, the
mean over its channels of the raw values times the input's documented scale (rgb 1/255,
ir 1/65535, xyz 1: about 0..1 per pixel); the anomaly map is the mean of those over the
inputs, the score its maximum. That is below every shipped threshold (about 3), so every part
is OK: a null run writes no alerts, where the real students raise one for some parts.

A ct input (NCDHW, [batch, 1, depth, height, width], a grid of its own) adds the mean over
its slices, brought to the map's height x width by nearest neighbour, and the student then
has the third output of a model that takes ct, ``anomaly_depth``: per map pixel the slice of
the column's brightest voxel (the lowest of equals), also by nearest neighbour — a cheap
stand-in for "the height of the strongest deviation" that a test can steer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import manifest as manifest_schema
from .export import OPSET, build_manifest, run_onnx_outputs, sha256_file, write_parity

RULE = ("null student: anomaly_map = mean over the inputs of the channel mean of the raw values "
        "times the input's normalisation scale; score = its maximum")


def _dims(shape: list) -> list:
    return [d if isinstance(d, str) else int(d) for d in shape]


def _map_size(entry: dict) -> tuple[int, int]:
    """Height and width of the anomaly map (its output's shape; a ct-only model has no 2D input)."""
    shape = next(o["shape"] for o in entry["outputs"] if o["name"] == "anomaly_map")
    return int(shape[2]), int(shape[3])


def _to_map_size(nodes: list, inits: list, x: str, out: str, grid: tuple[int, int], size: tuple[int, int]) -> None:
    """[B,1,h,w] → [B,1,H,W] by nearest neighbour (output pixel i takes floor(i * h / H))."""
    if grid == size:
        nodes.append(helper.make_node("Identity", [x], [out]))
        return
    scales = np.array([1.0, 1.0, size[0] / grid[0], size[1] / grid[1]], dtype=np.float32)
    inits.append(numpy_helper.from_array(scales, f"{out}_scales"))
    nodes.append(helper.make_node("Resize", [x, "", f"{out}_scales"], [out], mode="nearest",
                                  coordinate_transformation_mode="asymmetric", nearest_mode="floor"))


def null_graph(entry: dict) -> onnx.ModelProto:
    """The null student of one manifest entry: its inputs (names, shapes, order) and outputs."""
    nodes, inits, inputs, terms = [], [], [], []
    size = _map_size(entry)
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "channel_axis"))
    inits.append(numpy_helper.from_array(np.array([1, 2, 3], dtype=np.int64), "map_axes"))
    depth = None
    for i in entry["inputs"]:
        name = i["name"]
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, _dims(i["shape"])))
        scale = float(i["normalisation"].get("scale", 1.0)) / len(entry["inputs"])
        inits.append(numpy_helper.from_array(np.array(scale, dtype=np.float32), f"{name}_scale"))
        if i["layout"] == "NCDHW":
            grid = (int(i["shape"][3]), int(i["shape"][4]))
            inits.append(numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "volume_axes"))
            inits.append(numpy_helper.from_array(np.array([2], dtype=np.int64), "slice_axis"))
            nodes += [
                helper.make_node("ReduceMean", [name, "volume_axes"], [f"{name}_mean5"], keepdims=1),
                helper.make_node("Squeeze", [f"{name}_mean5", "slice_axis"], [f"{name}_mean"]),
                helper.make_node("Mul", [f"{name}_mean", f"{name}_scale"], [f"{name}_grid"]),
                helper.make_node("ArgMax", [name], [f"{name}_argmax5"], axis=2, keepdims=1, select_last_index=0),
                helper.make_node("Squeeze", [f"{name}_argmax5", "slice_axis"], [f"{name}_argmax"]),
                helper.make_node("Cast", [f"{name}_argmax"], [f"{name}_slice"], to=TensorProto.FLOAT),
            ]
            _to_map_size(nodes, inits, f"{name}_grid", f"{name}_term", grid, size)
            _to_map_size(nodes, inits, f"{name}_slice", "anomaly_depth", grid, size)
            depth = name
        else:
            nodes += [
                helper.make_node("ReduceMean", [name, "channel_axis"], [f"{name}_mean"], keepdims=1),
                helper.make_node("Mul", [f"{name}_mean", f"{name}_scale"], [f"{name}_term"]),
            ]
        terms.append(f"{name}_term")
    if len(terms) == 1:
        nodes.append(helper.make_node("Identity", terms, ["anomaly_map"]))
    else:
        nodes.append(helper.make_node("Sum", terms, ["anomaly_map"]))
    nodes.append(helper.make_node("ReduceMax", ["anomaly_map", "map_axes"], ["score"], keepdims=0))
    out = {o["name"]: _dims(o["shape"]) for o in entry["outputs"]}
    names = ("anomaly_map", "score") if depth is None else ("anomaly_map", "score", "anomaly_depth")
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, out[n]) for n in names]
    graph = helper.make_graph(nodes, f"null-{entry['id']}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mmad-null-students")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _parity_inputs(entry: dict, batch: int = 2) -> dict[str, np.ndarray]:
    """Deterministic inputs in each modality's raw range (rgb 0..255, ir and ct 0..65535, xyz metres)."""
    rng = np.random.default_rng(0)
    top = {"rgb": 255.0, "ir": 65535.0, "xyz": 1.0, "ct": 65535.0}
    out = {}
    for i in entry["inputs"]:
        out[i["name"]] = (rng.random((batch, *i["shape"][1:])) * top[i["modality"]]).astype(np.float32)
    return out


def null_entry(entry: dict, folder: Path) -> dict:
    """Writes the null student of ``entry`` (ONNX file and parity fixture) into ``folder``; returns
    its manifest entry: the original's with the file, checksum, size, opset, parity and provenance
    of the null graph, and no metrics (it was not evaluated)."""
    fname = f"{entry['id']}.onnx"
    path = folder / fname
    path.write_bytes(null_graph(entry).SerializeToString())
    x = _parity_inputs(entry)
    write_parity(folder / "parity" / entry["id"], f"../../{fname}", x, run_onnx_outputs(path, x))
    h, w = _map_size(entry)
    described = {"anomaly_map": f"{RULE} (not an anomaly measure)", "score": "maximum of anomaly_map (not an anomaly measure)",
                 "anomaly_depth": "slice of the column's brightest ct voxel, nearest neighbour to the map's size (not a defect depth)"}
    return {
        **entry,
        "file": fname,
        "sha256": sha256_file(path),
        "sizeBytes": path.stat().st_size,
        "opset": OPSET,
        "outputs": [{**o, "description": described[o["name"]]} for o in entry["outputs"]],
        "metrics": None,
        "training": {"size": [h, w], "nullStudent": {"of": f"{entry['id']} {entry['version']}", "sha256Of": entry["sha256"],
                                                     "rule": RULE}},
        "parity": {"index": f"parity/{entry['id']}/index.json"},
    }


def write_null_students(manifest_path: str | Path, out_dir: str | Path) -> Path:
    """The null students of every entry of ``manifest_path`` and their manifest in ``out_dir``
    (validated against the schema before it is written); returns the manifest's path."""
    source = json.loads(Path(manifest_path).read_text())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_file = out / "manifest.json"
    manifest_file.unlink(missing_ok=True)  # entries of an earlier run are not kept
    entries = [null_entry(e, out) for e in source["models"]]
    manifest, _ = build_manifest(out, entries)
    manifest["$schema"] = os.path.relpath(manifest_schema.SCHEMA_FILE, out.resolve())
    manifest_schema.check(manifest)
    manifest_file.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest_file


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmad_models.null_students", description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", default="exported/manifest.json", help="the students to imitate (default %(default)s)")
    p.add_argument("--out", required=True, help="folder for the null students and their manifest.json")
    a = p.parse_args(argv)
    try:
        path = write_null_students(a.manifest, a.out)
    except (OSError, manifest_schema.ManifestError) as e:
        print(f"null-students: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

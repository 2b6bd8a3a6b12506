"""Time per batch of trained students on a GPU (or the CPU), in PyTorch: the very modules
`export` traces into the ONNX graphs, with the checkpoint's weights, float32 as exported
(TF32 matmuls off) and again with TF32 and with bfloat16 autocast, batches of 1 to 256.
Prints parts/s per configuration; the README's sizing uses the float32 rows.

    .venv/bin/python scripts/gpu-time.py out/runs/mtfi-rgb-ir [RUN ...] [--batches 1,8,32,128]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch

from mmad_models.export import _Graph, model_io
from mmad_models.train import load_checkpoint


def example(model, n: int, dev) -> dict[str, torch.Tensor]:
    """Random inputs of the shapes the manifest gives the model's inputs (rgb in 0-255)."""
    return {i["name"]: torch.rand(n, *i["shape"][1:], device=dev) * (255 if i["name"] == "rgb" else 1)
            for i in model_io(model)[0]}


def timed(fn, reps: int, dev) -> float:
    for _ in range(3):
        fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+")
    p.add_argument("--batches", default="1,8,32,128,256")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    dev = torch.device(a.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    rows = []
    for run in a.runs:
        model, _, _ = load_checkpoint(run)
        g = _Graph(model).eval().to(dev)
        for b in [int(x) for x in a.batches.split(",")]:
            x = example(model, b, dev)
            for mode in ("fp32", "tf32", "bf16"):
                if dev.type != "cuda" and mode != "fp32":
                    continue
                torch.backends.cuda.matmul.allow_tf32 = mode != "fp32"
                torch.backends.cudnn.allow_tf32 = mode != "fp32"
                amp = torch.autocast("cuda", dtype=torch.bfloat16) if mode == "bf16" else contextlib.nullcontext()

                def fwd(x=x, amp=amp, g=g):
                    with torch.inference_mode(), amp:
                        g(**x)
                try:
                    s = timed(fwd, a.reps, dev)
                except RuntimeError as e:  # out of memory, or an op the mode lacks
                    print(f"{run} batch {b} {mode}: {str(e).splitlines()[0]}", flush=True)
                    continue
                row = {"run": run, "device": name, "batch": b, "mode": mode, "ms_per_batch": round(s * 1e3, 3),
                       "parts_per_s": round(b / s, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(json.dumps({"summary": rows}))


if __name__ == "__main__":
    main()

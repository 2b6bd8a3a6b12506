#!/usr/bin/env bash
# Reproduces the shipped default teacher, teachers/procedural-64-32-64-128-s0.pt: the small
# encoder (32/64/128 channels) pre-trained to classify 64 classes of formula-driven fractal
# renders (64 px, 32 per class, 12 epochs, seed 0; no real image, nothing downloaded),
# stored as float16. About 3 min on 2 CPU cores.
#   bash models/scripts/pretrain-teacher.sh [OUT_FILE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-teachers/procedural-64-32-64-128-s0.pt}"
.venv/bin/python - "$out" <<'PY'
import sys
import torch
from mmad_models.teachers import pretrain_procedural, save_encoder
from mmad_models.train import PROCEDURAL_SIZE
torch.set_num_threads(2)
torch.manual_seed(0)
enc = pretrain_procedural((32, 64, 128), PROCEDURAL_SIZE, seed=0)
print(f"wrote {save_encoder(enc, sys.argv[1], half=True)}")
PY

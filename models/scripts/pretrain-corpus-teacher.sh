#!/usr/bin/env bash
# Reproduces teachers/corpus-simclr-r18-s0.pt (`train --teacher corpus`): a ResNet-18's stem and
# layers 1-3 pre-trained with SimCLR on the formula-driven corpus of mmad_models/corpus.py
# (dead leaves, 1/f noise, random coordinate networks, IFS fractals; rendered on the fly, no
# real image, nothing downloaded): 2053 steps of 512 images (two 128 px views each), seed 0,
# stored as float16. 6.3 min on one NVIDIA H200 (sharing it with a second pre-training run);
# on 2 CPU cores about 17 hours (30 s a step, measured over 3 steps; --threads, and --resume
# after a stop: the state is saved beside the output every minute). A GPU run is not bit-identical to another. The shipped
# file came from `--minutes 6.3`, whose first 40 steps measure the rate at a learning rate of
# about zero before the step count is fixed; `--steps` starts the warm-up at once, so it repeats
# that run's schedule from step 40 on.
#   bash models/scripts/pretrain-corpus-teacher.sh [OUT_FILE] [--resume]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-teachers/corpus-simclr-r18-s0.pt}"
shift || true
.venv/bin/python -m mmad_models pretrain --out "$out" --objective simclr --steps 2053 --batch 512 --size 128 \
  --seed 0 "$@"

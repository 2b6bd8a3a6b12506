#!/usr/bin/env bash
# Trains CRD for every modality subset the manifest offers, prints the eval table and
# exports the ONNX models, manifest and parity fixtures to models/exported/.
#   bash models/scripts/train-all.sh [DATASET_ROOT] [CATEGORY] [EPOCHS] [TEACHER]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ds="${1:-../data/main}"
cat="${2:-slab}"
epochs="${3:-40}"
teacher="${4:-procedural}"
py=.venv/bin/python
[ -d "$ds/$cat" ] || $py -m mmad_models synth --root "$ds" --category "$cat" --seed 2
runs=()
for mods in rgb xyz rgb,ir rgb,xyz rgb,ir,xyz ir ir,xyz; do
  out="out/runs/crd-${mods//,/-}"
  mkdir -p out/runs
  $py -m mmad_models train --dataset "$ds" --category "$cat" --modalities "$mods" --teacher "$teacher" \
    --epochs "$epochs" --out "$out" > "$out.log" 2>&1 || { cat "$out.log"; exit 1; }
  runs+=("$out")
done
$py -m mmad_models eval "${runs[@]}"
$py -m mmad_models export "${runs[@]}" --out exported

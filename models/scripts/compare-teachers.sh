#!/usr/bin/env bash
# Teacher comparison: single-modality CRD with each default-teacher candidate, on the
# development dataset (a different seed from the dataset the final figures use, so the
# choice never sees the evaluation parts). Prints the eval table.
#   bash models/scripts/compare-teachers.sh [DATASET_ROOT] [EPOCHS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ds="${1:-../data/dev}"
epochs="${2:-40}"
py=.venv/bin/python
[ -d "$ds/slab" ] || $py -m mmad_models synth --root "$ds" --category slab --seed 1
runs=()
for teacher in random procedural selfsup; do
  for m in rgb ir xyz; do
    out="out/teachers-compare/$teacher-$m"
    # the configuration the comparison was measured with (64 px, full-width float32 students)
    $py -m mmad_models train --dataset "$ds" --category slab --modalities "$m" --teacher "$teacher" \
      --epochs "$epochs" --size 64 --no-slim --no-half --out "$out" > "$out.log" 2>&1 || { cat "$out.log"; exit 1; }
    runs+=("$out")
  done
done
$py -m mmad_models eval "${runs[@]}"

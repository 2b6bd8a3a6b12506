#!/usr/bin/env bash
# The MTFI paper's central comparison on the simulator's battery_lid parts: for each
# modality subset used at inference, (i) a student trained and inferred on that subset
# alone vs (ii) MTFI, trained with rgb, ir and xyz and inferred with that subset (the
# missing modalities' features distilled from the present ones). Both with the same
# normality model (the default: a memory bank per modality), so the only
# difference is the cross-modal distillation. Prints one eval table (and per defect).
#   bash models/scripts/compare-mtfi.sh [DATASET_ROOT] [EPOCHS] [SIZE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ds="${1:-../data/mmad-sim256}"
epochs="${2:-30}"
size="${3:-128}"
py=.venv/bin/python
if [ ! -d "$ds/battery_lid" ]; then
  # the dataset every figure of models/README.md on the simulator's data comes from
  root="$(realpath -m "$ds")"
  (cd .. && node bin/mmad.mjs dataset --root "$root" --product battery_lid --train 100 --validation 20 \
    --test 20 --size 256 --seed 1)
fi
mkdir -p out/compare-mtfi
runs=()
train() {
  local out="out/compare-mtfi/$1"; shift
  if [ ! -f "$out/model.pt" ]; then
    echo "training $out" >&2
    $py -m mmad_models train --dataset "$ds" --category battery_lid --method mtfi --size "$size" \
      --epochs "$epochs" --out "$out" "$@" > "$out.log" 2>&1 || { cat "$out.log"; exit 1; }
  fi
  runs+=("$out")
}
for mods in rgb ir xyz rgb,ir rgb,xyz ir,xyz; do
  tag="${mods//,/-}"
  train "alone-$tag" --modalities "$mods"
  train "all-$tag" --modalities "$mods" --train-modalities rgb,ir,xyz
done
train "all-rgb-ir-xyz" --modalities rgb,ir,xyz
# the shipped CRD students beside them when train-all.sh trained them on the same dataset
for r in out/runs/crd-*/; do
  if [ -f "$r/result.json" ] && grep -q "\"dataset\": \"$ds\"" "$r/result.json"; then runs+=("${r%/}"); fi
done
$py -m mmad_models eval "${runs[@]}" --per-defect

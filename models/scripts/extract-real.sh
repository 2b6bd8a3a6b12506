#!/usr/bin/env bash
# Extracts one MVTec 3D-AD category from a git copy of a public repository into the
# git-ignored data/real/<category>/ (MVTec 3D-AD is CC BY-NC-SA 4.0: for development
# and evaluation only, never committed). Files whose blobs the copy lacks (large TIFFs
# kept out of a partial or LFS copy) are skipped and counted, so a copy with rgb + gt
# and no xyz gives an rgb-only category.
#
#   bash models/scripts/extract-real.sh GIT_DIR REV PATH_IN_REPO [DEST]
#
#   GIT_DIR       a clone (its .git or work tree) or a bare repository
#   REV           commit or branch to read (HEAD for the checked-out one)
#   PATH_IN_REPO  the category folder inside the repository (e.g. rope, dataset/mvtec_3d/tire)
#   DEST          default data/real/<last part of PATH_IN_REPO>, from the repository root
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
src=$1 rev=$2 path=${3%/}
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest=${4:-$root/data/real/$(basename "$path")}
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  gitdir=$(cd "$src" && cd "$(git rev-parse --git-dir)" && pwd)
else
  echo "extract-real: $src is not a git repository" >&2
  exit 2
fi
git --git-dir="$gitdir" rev-parse --verify -q "$rev^{commit}" >/dev/null || { echo "extract-real: no commit $rev in $src" >&2; exit 2; }
[ -n "$(git --git-dir="$gitdir" ls-tree "$rev" -- "$path")" ] || { echo "extract-real: no folder $path at $rev" >&2; exit 2; }

mkdir -p "$dest"
taken=0 missing=0
# one line per file: mode type blob<TAB>path; only the layout's files
while IFS=$'\t' read -r meta file; do
  blob=${meta##* }
  rel=${file#"$path"/}
  case "$rel" in
    */rgb/*.png|*/ir/*.png|*/gt/*.png|*/xyz/*.tiff|*.txt|*.json|calibration/*) ;;
    *) continue ;;
  esac
  if ! git --git-dir="$gitdir" cat-file -e "$blob" 2>/dev/null; then
    missing=$((missing + 1))
    continue
  fi
  mkdir -p "$dest/$(dirname "$rel")"
  git --git-dir="$gitdir" cat-file blob "$blob" >"$dest/$rel"
  taken=$((taken + 1))
done < <(git --git-dir="$gitdir" ls-tree -r "$rev" -- "$path")
echo "extract-real: $taken files into $dest ($missing listed but absent from this copy)"
for s in train validation test; do
  [ -d "$dest/$s" ] || continue
  for d in "$dest/$s"/*/; do
    n=$(find "$d" -path '*/rgb/*.png' | wc -l); x=$(find "$d" -path '*/xyz/*.tiff' | wc -l)
    echo "  $s/$(basename "$d"): $n rgb, $x xyz"
  done
done

#!/usr/bin/env bash
# Creates models/.venv with the machine's python3 (3.11) and installs the
# mmad-models package editable with its pinned dependencies and test extra.
# Idempotent: when the venv already satisfies pyproject.toml (same content
# hash as the last successful install), it returns at once.
#
#   bash models/scripts/setup-venv.sh          create or update
#   MMAD_VENV=/path bash models/scripts/...    another location
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MMAD_VENV:-$here/.venv}"
py="${PYTHON:-python3}"

ver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$ver" != "3.11" ]; then
  echo "setup-venv: need Python 3.11, $py is $ver" >&2
  exit 1
fi

stamp="$venv/.mmad-installed"
want="$(cat "$here/pyproject.toml" "$here/scripts/setup-venv.sh" | sha256sum | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup-venv: $venv is up to date"
  exit 0
fi

[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$here[test]"
"$venv/bin/python" -c 'import torch, onnxruntime, onnx, numpy, scipy, tifffile, PIL; print("setup-venv: torch", torch.__version__, "onnxruntime", onnxruntime.__version__)'
echo "$want" > "$stamp"

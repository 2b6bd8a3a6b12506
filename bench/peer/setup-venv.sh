#!/usr/bin/env bash
# Creates bench/peer/.venv with the machine's python3 (3.11) and installs the peer's
# pinned requirements (wheels only: nothing is compiled). Idempotent: when the venv
# already matches requirements.txt (same content hash as the last successful install),
# it returns at once.
#
#   bash bench/peer/setup-venv.sh           create or update
#   PEER_VENV=/path bash bench/peer/...     another location
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${PEER_VENV:-$here/.venv}"
py="${PYTHON:-python3}"

ver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$ver" != "3.11" ]; then
  echo "setup-venv: need Python 3.11, $py is $ver" >&2
  exit 1
fi

stamp="$venv/.peer-installed"
want="$(cat "$here/requirements.txt" "$here/setup-venv.sh" | sha256sum | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup-venv: $venv is up to date"
  exit 0
fi

[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: -r "$here/requirements.txt"
"$venv/bin/python" -c 'import confluent_kafka, fastavro, numpy, onnxruntime, PIL; print("setup-venv: confluent-kafka", confluent_kafka.version()[0], "librdkafka", confluent_kafka.libversion()[0], "onnxruntime", onnxruntime.__version__)'
echo "$want" > "$stamp"

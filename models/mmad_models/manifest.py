"""The model manifest's contract: ``schemas/model-manifest.schema.json``.

The service validates a manifest against that schema at start-up and refuses one that does
not match (MODEL_INVALID), so the export validates every manifest before it writes it
(``check``), and the command line checks the fields it is given (``--version``) before any
work. Light on imports: the command line uses it while parsing its arguments.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "model-manifest.schema.json"
# 2: thresholds calibrated for a stated false-alarm rate (threshold.falseAlarmRate and
# threshold.distribution), recall and false-alarm rate in the metrics
SCHEMA_VERSION = 2


class ManifestError(ValueError):
    """A manifest (or a field of one) that the schema, and so the service, would refuse."""


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    if not SCHEMA_FILE.is_file():
        raise ManifestError(f"the manifest schema {SCHEMA_FILE} is missing (the package runs from the repository)")
    schema = json.loads(SCHEMA_FILE.read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _where(manifest: dict, path: list) -> str:
    """'models[2] (crd-ir) threshold' for the instance path models/2/threshold."""
    out = ""
    for i, p in enumerate(path):
        if isinstance(p, int):
            out += f"[{p}]"
            models = manifest.get("models")
            if i == 1 and path[0] == "models" and isinstance(models, list) and p < len(models):
                mid = models[p].get("id") if isinstance(models[p], dict) else None
                if isinstance(mid, str):
                    out += f" ({mid})"
        else:
            out += f".{p}" if out else str(p)
    return out or "(root)"


def problems(manifest: dict) -> list[str]:
    """Every way the manifest fails the schema, one line each naming the field, in field order."""
    errors = sorted(_validator().iter_errors(manifest),
                    key=lambda e: [(0, p, "") if isinstance(p, int) else (1, 0, p) for p in e.absolute_path])
    return [f"{_where(manifest, list(e.absolute_path))}: {e.message}" for e in errors]


def check(manifest: dict, kept: tuple[str, ...] = ()) -> None:
    """Raises ManifestError listing every problem; ``kept``: ids of entries taken over from the
    manifest already in the folder (named in the message: they were not exported now)."""
    found = problems(manifest)
    if found:
        hint = ""
        if kept:
            hint = (f"\n(kept from the manifest already there: {', '.join(kept)}; export those again as well, "
                    f"or export into another folder)")
        raise ManifestError(
            f"the manifest does not match {SCHEMA_FILE.name} (the service would refuse it: MODEL_INVALID):\n"
            + "\n".join(f"  - {p}" for p in found[:20]) + hint)


def check_version(version: str) -> str:
    """A model version as the manifest takes it (``MAJOR.MINOR.PATCH``), else ManifestError naming the field."""
    spec = _validator().schema["$defs"]["model"]["properties"]["version"]
    errors = list(jsonschema.Draft202012Validator(spec).iter_errors(version))
    if errors:
        raise ManifestError(f"version {version!r} is not a model version the manifest accepts "
                            f"(models[].version must match {spec['pattern']}, e.g. 0.3.0)")
    return version

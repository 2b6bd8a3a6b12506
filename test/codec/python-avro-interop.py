"""Apache Avro's Python implementation on the other side of our codec.

usage: python-avro-interop.py read SCHEMA_FILE   (stdin: binary body → stdout: JSON)
       python-avro-interop.py write SCHEMA_FILE  (stdin: JSON → stdout: binary body)
Dates travel as epoch milliseconds and bytes as hex in the JSON.
"""
import datetime
import io
import json
import sys

import avro.io
import avro.schema

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def to_json(v):
    if isinstance(v, datetime.datetime):
        return {"$ms": round((v - EPOCH).total_seconds() * 1000)}
    if isinstance(v, bytes):
        return {"$hex": v.hex()}
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    return v


def from_json(v):
    if isinstance(v, dict):
        if set(v) == {"$ms"}:
            return EPOCH + datetime.timedelta(milliseconds=v["$ms"])
        if set(v) == {"$hex"}:
            return bytes.fromhex(v["$hex"])
        return {k: from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v


mode, schema_file = sys.argv[1], sys.argv[2]
schema = avro.schema.parse(open(schema_file).read())
if mode == "read":
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(sys.stdin.buffer.read())))
    sys.stdout.write(json.dumps(to_json(datum)))
else:
    out = io.BytesIO()
    avro.io.DatumWriter(schema).write(from_json(json.loads(sys.stdin.read())), avro.io.BinaryEncoder(out))
    sys.stdout.buffer.write(out.getvalue())

"""The anomaly-detection job as a small, conventional Python consumer.

A peer for the benchmark (bench/peer.bench.ts): the job the service does, written
the way a team would write it with the usual Python stack and none of this
project's code. It reads the rgb and ir topics in batches, decodes the Avro
frames (single-object encoding, or the Confluent wire format) and their PNG
payloads, pairs rgb and ir by sample id, judges the pairs with one ONNX Runtime
session in micro-batches, produces one JSON event per part with an idempotent
producer, and commits offsets once the events of the frames consumed are
delivered (at-least-once).

Pairing timeout, in event time per partition: rgb and ir of a part share a
partition number (the inputs are co-partitioned), so a part still waiting for
its partner is given up when both of that partition's topics have moved more
than --pair-timeout-ms of capture time past it, or when nothing has been read
for that long (wall clock). A part given up is not judged (the student needs
both images): its event says verdict UNKNOWN, reason "partner timeout", and it
is counted in the summary (pairTimeouts).

Events (value: UTF-8 JSON, key: the sample id): sampleId, line, station,
verdict (OK, NOK or UNKNOWN), reason, score, threshold, model {id, version},
modalitiesUsed, captureTime (epoch ms, the earliest of the part's frames),
producedAt (epoch ms), timings {endToEndMs: first frame of the part read by
this process to the event produced, inferenceMs: the part's micro-batch's run},
sources [{modality, topic, partition, offset}].

On SIGTERM or SIGINT it finishes what it has consumed, commits and prints one
JSON line of counts to stdout.

    python bench/peer/peer.py --brokers 127.0.0.1:9092 --rgb-topic T.rgb --ir-topic T.ir \
        --group G --events-topic T.events [--manifest models/exported/manifest.json]
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import fastavro
import numpy as np
import onnxruntime as ort
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from fastavro.schema import fingerprint, to_parsing_canonical_form
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SINGLE_OBJECT_MARKER = b"\xc3\x01"


def now_ms() -> float:
    return time.time() * 1000.0


class FrameDecoder:
    """Avro Frame records: single-object encoding (C3 01, CRC-64-AVRO fingerprint of the writer's
    schema, any version in the schemas folder) or Confluent (00, schema id; the newest version is
    assumed: no registry look-up)."""

    def __init__(self, schema_dir: Path) -> None:
        paths = sorted(schema_dir.glob("Frame.v*.avsc"), key=lambda p: int(p.stem.split(".v")[-1]))
        if not paths:
            raise SystemExit(f"no Frame.v*.avsc in {schema_dir}")
        self.writers: dict[bytes, dict] = {}
        for path in paths:
            schema = fastavro.parse_schema(json.loads(path.read_text()))
            # fastavro's hex is the 8 bytes in the order they follow the marker (little-endian)
            self.writers[bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))] = schema
        self.newest = schema

    def decode(self, value: bytes) -> dict:
        if value[:2] == SINGLE_OBJECT_MARKER:
            writer = self.writers.get(value[2:10])
            if writer is None:
                raise ValueError(f"unknown writer schema fingerprint {value[2:10].hex()}")
            body = value[10:]
        elif value[:1] == b"\x00" and len(value) >= 5:
            writer, body = self.newest, value[5:]
        else:
            raise ValueError(f"not an Avro frame: starts with {value[:2].hex()}")
        return fastavro.schemaless_reader(io.BytesIO(body), writer, self.newest)


@dataclass
class Student:
    """The manifest's student for rgb + ir: its session, input size and threshold."""

    id: str
    version: str
    session: ort.InferenceSession
    height: int
    width: int
    threshold: float

    @staticmethod
    def load(manifest_path: Path, prefer: list[str]) -> Student:
        manifest = json.loads(manifest_path.read_text())
        candidates = [m for m in manifest["models"] if sorted(m["modalities"]) == ["ir", "rgb"]]
        if not candidates:
            raise SystemExit(f"no rgb + ir student in {manifest_path}")
        rank = {method: i for i, method in enumerate(prefer)}
        spec = min(candidates, key=lambda m: (rank.get(m["method"], len(prefer)), m["id"]))
        names = [i["name"] for i in spec["inputs"]]
        if names != ["rgb", "ir"]:
            raise SystemExit(f"{spec['id']}: expected inputs rgb, ir; has {names}")
        _, _, height, width = spec["inputs"][0]["shape"]
        session = ort.InferenceSession(str(manifest_path.parent / spec["file"]), providers=["CPUExecutionProvider"])
        return Student(spec["id"], spec["version"], session, int(height), int(width), float(spec["threshold"]["value"]))


def rgb_tensor(png: bytes, height: int, width: int) -> np.ndarray:
    """[3,H,W] float32, samples 0..255; lanczos to the model's size where the frame differs."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float32).transpose(2, 0, 1)


def ir_tensor(png: bytes, height: int, width: int) -> np.ndarray:
    """[1,H,W] float32, 16-bit samples 0..65535; lanczos (rounded, clipped) where the frame differs."""
    image = Image.open(io.BytesIO(png))
    if image.size != (width, height):
        resized = image.convert("F").resize((width, height), Image.Resampling.LANCZOS)
        samples = np.clip(np.rint(np.asarray(resized)), 0, 65535)
    else:
        samples = np.asarray(image)
    return samples.astype(np.float32)[None, :, :]


@dataclass
class Part:
    sample_id: str
    first_read_ms: float
    partition: int
    frames: dict[str, dict] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)

    @property
    def capture_ms(self) -> int:
        return min(f["captureTime"] for f in self.frames.values())


class Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.student = Student.load(Path(args.manifest), args.prefer.split(","))
        self.frames = FrameDecoder(Path(args.schemas))
        self.modality_of = {args.rgb_topic: "rgb", args.ir_topic: "ir"}
        self.consumer = Consumer(
            {
                "bootstrap.servers": args.brokers,
                "group.id": args.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "client.id": "peer",
            }
        )
        self.producer = Producer(
            {
                "bootstrap.servers": args.brokers,
                "enable.idempotence": True,
                "linger.ms": 5,
                "client.id": "peer",
            }
        )
        self.pending: dict[str, Part] = {}
        # per input partition: the next offset to read, and the latest capture time seen (event time)
        self.position: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.event_time: dict[tuple[str, int], int] = {}
        self.last_read_ms = now_ms()
        self.delivery_errors: list[str] = []
        self.counts = {
            "frames": 0,
            "badFrames": 0,
            "parts": 0,
            "events": 0,
            "pairTimeouts": 0,
            "batches": 0,
            "judged": 0,
            "commits": 0,
        }
        self.stopping = False

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        self.consumer.subscribe([self.args.rgb_topic, self.args.ir_topic], on_revoke=self.on_revoke)
        while not self.stopping:
            messages = self.consumer.consume(num_messages=self.args.consume_batch, timeout=self.args.consume_timeout)
            read_at = now_ms()
            ready: list[Part] = []
            for message in messages:
                part = self.take(message, read_at)
                if part is not None:
                    ready.append(part)
            if messages:
                self.last_read_ms = read_at
            expired = self.expired(read_at)
            if ready or expired:
                self.publish(ready, expired)
        self.close()

    def take(self, message: Message, read_at: float) -> Part | None:
        """Records one message; returns its part when this frame completed the pair."""
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return None
            raise KafkaException(error)
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        self.position[(topic, partition)] = offset + 1
        self.counts["frames"] += 1
        modality = self.modality_of[topic]
        try:
            frame = self.frames.decode(message.value())
            if frame["modality"] != modality or frame["encoding"] != "png" or frame["payload"] is None:
                raise ValueError(f"{modality} frame {frame['modality']}/{frame['encoding']} not handled")
            size = (self.student.height, self.student.width)
            tensor = rgb_tensor(frame["payload"], *size) if modality == "rgb" else ir_tensor(frame["payload"], *size)
        except (ValueError, TypeError, KeyError, IndexError, EOFError, OSError) as err:  # counted and skipped
            self.counts["badFrames"] += 1
            print(f"peer: skipping {topic}[{partition}]@{offset}: {err}", file=sys.stderr)
            return None
        capture = frame["captureTime"]
        capture_ms = int(capture.timestamp() * 1000) if hasattr(capture, "timestamp") else int(capture)
        key = (topic, partition)
        self.event_time[key] = max(self.event_time.get(key, capture_ms), capture_ms)
        part = self.pending.get(frame["sampleId"])
        if part is None:
            part = self.pending[frame["sampleId"]] = Part(frame["sampleId"], read_at, partition)
        frame["captureTime"] = capture_ms
        frame["payload"] = None
        part.frames[modality] = frame
        part.tensors[modality] = tensor
        part.sources.append({"modality": modality, "topic": topic, "partition": partition, "offset": offset})
        if len(part.frames) == 2:
            del self.pending[part.sample_id]
            return part
        return None

    def expired(self, at: float) -> list[Part]:
        """Parts whose partner is later than the timeout in event time, or all waiting parts after an idle timeout."""
        timeout = self.args.pair_timeout_ms
        idle = at - self.last_read_ms >= timeout
        out = []
        for part in list(self.pending.values()):
            p = part.partition
            passed = [self.event_time.get((t, p)) for t in (self.args.rgb_topic, self.args.ir_topic)]
            moved_on = all(t is not None and t - part.capture_ms > timeout for t in passed)
            if idle or moved_on:
                out.append(self.pending.pop(part.sample_id))
        return out

    def publish(self, ready: list[Part], expired: list[Part]) -> None:
        """Judges `ready` in micro-batches, produces every event, waits for delivery, then commits."""
        for i in range(0, len(ready), self.args.batch):
            self.judge(ready[i : i + self.args.batch])
        for part in expired:
            self.counts["pairTimeouts"] += 1
            have = sorted(part.frames)
            self.produce(part, "UNKNOWN", f"partner timeout: only {'+'.join(have)}", None, None, have)
        remaining = self.producer.flush(30)
        if remaining > 0 or self.delivery_errors:
            raise SystemExit(f"peer: {remaining} events undelivered, errors: {self.delivery_errors[:3]}")
        self.commit(asynchronous=True)

    def judge(self, parts: list[Part]) -> None:
        rgb = np.stack([p.tensors["rgb"] for p in parts])
        ir = np.stack([p.tensors["ir"] for p in parts])
        t0 = time.perf_counter()
        _, scores = self.student.session.run(["anomaly_map", "score"], {"rgb": rgb, "ir": ir})
        inference_ms = (time.perf_counter() - t0) * 1000.0
        self.counts["batches"] += 1
        self.counts["judged"] += len(parts)
        for part, score in zip(parts, scores.tolist(), strict=True):
            verdict = "NOK" if score >= self.student.threshold else "OK"
            self.produce(part, verdict, None, score, inference_ms, ["rgb", "ir"])

    def produce(
        self,
        part: Part,
        verdict: str,
        reason: str | None,
        score: float | None,
        inference_ms: float | None,
        used: list[str],
    ) -> None:
        any_frame = next(iter(part.frames.values()))
        produced_at = now_ms()
        event = {
            "sampleId": part.sample_id,
            "line": any_frame["line"],
            "station": any_frame["station"],
            "verdict": verdict,
            "reason": reason,
            "score": score,
            "threshold": self.student.threshold,
            "model": {"id": self.student.id, "version": self.student.version} if score is not None else None,
            "modalitiesUsed": used,
            "captureTime": part.capture_ms,
            "producedAt": round(produced_at),
            "timings": {"endToEndMs": produced_at - part.first_read_ms, "inferenceMs": inference_ms},
            "sources": part.sources,
        }
        self.producer.produce(
            self.args.events_topic,
            key=part.sample_id.encode(),
            value=json.dumps(event).encode(),
            on_delivery=self.delivered,
        )
        self.producer.poll(0)
        self.counts["parts"] += 1

    def delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self.delivery_errors.append(str(err))
        else:
            self.counts["events"] += 1

    # -- offsets ----------------------------------------------------------------------------------

    def safe_offsets(self) -> list[TopicPartition]:
        """Per partition read: the offset of its oldest frame still waiting for a partner, else the next to read."""
        safe = dict(self.position)
        for part in self.pending.values():
            for s in part.sources:
                key = (s["topic"], s["partition"])
                safe[key] = min(safe[key], s["offset"])
        return [TopicPartition(t, p, o) for (t, p), o in safe.items() if self.committed.get((t, p)) != o]

    def commit(self, asynchronous: bool) -> None:
        offsets = self.safe_offsets()
        if not offsets:
            return
        self.consumer.commit(offsets=offsets, asynchronous=asynchronous)
        for tp in offsets:
            self.committed[(tp.topic, tp.partition)] = tp.offset
        self.counts["commits"] += 1

    def on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Before losing partitions: deliver what was produced and commit; parts waiting there go to the new owner."""
        self.producer.flush(30)
        self.commit(asynchronous=False)
        lost = {(tp.topic, tp.partition) for tp in partitions}
        for part in list(self.pending.values()):
            if any((s["topic"], s["partition"]) in lost for s in part.sources):
                del self.pending[part.sample_id]
        for key in lost:
            self.position.pop(key, None)
            self.committed.pop(key, None)
            self.event_time.pop(key, None)

    def close(self) -> None:
        self.producer.flush(30)
        self.commit(asynchronous=False)
        self.consumer.close()
        self.counts["pending"] = len(self.pending)
        print(json.dumps(self.counts), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--rgb-topic", required=True)
    ap.add_argument("--ir-topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--events-topic", required=True)
    ap.add_argument("--manifest", default=str(REPO / "models" / "exported" / "manifest.json"))
    ap.add_argument("--schemas", default=str(REPO / "schemas" / "avro"), help="folder of the Frame.v*.avsc versions")
    ap.add_argument("--prefer", default="mtfi,crd", help="method order when several rgb + ir students exist")
    ap.add_argument("--batch", type=int, default=8, help="micro-batch size of the model")
    ap.add_argument("--consume-batch", type=int, default=16, help="messages per consume() call")
    ap.add_argument("--consume-timeout", type=float, default=0.1, help="seconds consume() waits")
    ap.add_argument("--pair-timeout-ms", type=float, default=2000.0)
    args = ap.parse_args()
    peer = Peer(args)

    def stop(_signum: int, _frame: object) -> None:
        peer.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"peer: {peer.student.id}@{peer.student.version} {peer.student.height}x{peer.student.width}, group {args.group}",
        file=sys.stderr,
        flush=True,
    )
    peer.run()


if __name__ == "__main__":
    main()

/**
 * The service beside a peer: the same job written as a plain Python consumer
 * (bench/peer/peer.py: confluent-kafka, fastavro, Pillow, numpy, onnxruntime;
 * its own environment, bench/peer/setup-venv.sh), on one backlog and one broker.
 *
 * One backlog of simulated rgb + ir parts (the station of the pipeline benchmark,
 * every frame announcing rgb + ir) is published once; then, one after the other,
 * each contender judges all of it from the start with a consumer group and an
 * output topic of its own, as a separate process:
 *
 *   - the service, `mmad run` (the CLI, a child process, as the peer is), at its
 *     default guarantee (exactly-once) and at at-least-once, default configuration
 *     (micro-batches of up to 8);
 *   - the peer, micro-batches of 8, at-least-once.
 *
 * The order alternates between runs (`--runs`). A contender is done when its group's
 * committed offsets reach the ends of both input topics; it is then stopped (SIGTERM)
 * and its event topic read back. Before any figure is printed, every contender's
 * output is checked: exactly one final event per sample id, every published part
 * there, each judged (OK/NOK) by the same rgb + ir student, and the scores of the
 * contenders equal within 1e-3 (the same inputs reached the model). A failed check
 * stops the benchmark with an error: the figures of a wrong run mean nothing.
 *
 * Figures, defined the same way for both from their events (each event carries when it
 * was produced and how long after its part's first frame was read by the process):
 *   - parts/s: parts / (last event produced − first frame read), the first frame read
 *     being the earliest (produced − end-to-end) of the run's events: start-up (the
 *     service loads every student of the manifest, the peer one) is outside the window;
 *   - CPU ms per part: the process's CPU time (/proc/<pid>/stat, every thread, sampled
 *     every 50 ms and interpolated) over that window, per part; the broker's likewise;
 *   - p50 / p99 ms: per part, the first of its frames read by the process → its event
 *     produced (the service's timings.endToEndMs; the peer measures the same). On a
 *     backlog this is how long a part waits inside the process (read-ahead, batching),
 *     not a live line's latency.
 *
 * `--students null` runs both on the shipped students' null students (graphs with their
 * inputs, outputs and ids that only average the inputs' channels, as the pipeline
 * benchmark's ceiling): what each contender spends around the model, the figure that
 * decides how many parts one core feeds to a GPU.
 *
 * `comparePeer` runs it; `npm run bench -- peer` (peer.bench.ts) on its own, the pipeline
 * benchmark with the null students after its ceiling (`--peer-runs`).
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Admin } from 'kafkajs';
import { AvroCodec } from '../src/codec/avro-codec.js';
import { SchemaCatalog } from '../src/codec/schema-catalog.js';
import type { Config } from '../src/config/config-schema.js';
import { loadConfig } from '../src/config/load-config.js';
import { REPO_ROOT } from '../src/config/paths.js';
import { NODE_FLAGS } from '../src/cli/node-flags.js';
import { createKafka } from '../src/kafka/kafka-client.js';
import type { ProvidedBroker } from '../src/kafka/provide-broker.js';
import { readTopicToEnd } from '../src/replay/event-summary.js';
import { SimulatedPartSource } from '../src/simulate/line-simulator.js';
import { createLogger } from '../src/base/logger.js';
import { at } from '../src/base/invariant.js';
import { messageOf } from '../src/base/errors.js';
import { benchTopics, createTopics, publishParts, steadyTiming } from './backlog.js';
import { processCpuMs } from './cpu.js';
import { percentile, printTable } from './harness.js';

/** A contender whose committed offsets have not moved for this long has failed. */
const STALL_MS = 120_000;
/** Scores of one part by two contenders further apart than this: they did not feed the model the same inputs. */
const SCORE_TOLERANCE = 1e-3;
const fmt = (v: number, d = 1): string => (Number.isFinite(v) ? v.toFixed(d) : '-');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const quiet = createLogger({}, 'error');
/** The peer's name in the figures. */
export const PEER = 'peer (Python)';

export interface PeerOptions {
  /** Parts in the backlog. */
  parts: number;
  /** Runs of every contender, the order alternating between runs. */
  runs: number;
  /** Frame side, pixels. */
  size: number;
  /** The manifest of the students both contenders run: the shipped ones, or their null students (what each spends around the model). */
  manifest: string;
  /** Whether they are the null students (the table says so). */
  nullStudents: boolean;
  /** The broker to run on (the caller's; left running). */
  broker: ProvidedBroker;
}

/** One contender's events, as the checks and figures need them. */
interface PartEvent {
  sampleId: string;
  final: boolean;
  verdict: string;
  score: number | null;
  model: string | null;
  used: string[];
  producedAt: number;
  endToEndMs: number;
}

interface Contender {
  name: string;
  /** Starts the contender on the backlog with consumer group and output topic prefix `group`. */
  start: (group: string) => ReturnType<typeof spawn>;
  /** Its events on `<group>.events`, decoded. */
  decode: (value: Buffer) => Promise<PartEvent>;
}

interface Outcome {
  run: number;
  name: string;
  events: PartEvent[];
  partsPerS: number;
  cpuMsPerPart: number;
  brokerMsPerPart: number;
  p50: number;
  p99: number;
  peakRssMiB: number;
  /** The peer's counts line (frames, pair timeouts, batches...), when it printed one. */
  counts: Record<string, number> | undefined;
}

/** One contender's figures in one run. */
export type PeerFigures = Omit<Outcome, 'events' | 'counts'>;

/** The peer's JSON event (bench/peer/peer.py); it writes one event per part, so each is final. */
interface PeerEvent {
  sampleId: string;
  verdict: string;
  score: number | null;
  model: { id: string } | null;
  modalitiesUsed: string[];
  producedAt: number;
  timings: { endToEndMs: number };
}

/** CPU time at `t` by linear interpolation between samples taken at increasing times. */
function cpuAt(samples: { t: number; ms: number }[], t: number): number {
  let i = samples.findIndex((s) => s.t >= t);
  if (i < 0) i = samples.length - 1;
  if (i === 0) return at(samples, 0).ms;
  const a = at(samples, i - 1);
  const b = at(samples, i);
  return b.t === a.t ? b.ms : a.ms + ((b.ms - a.ms) * (t - a.t)) / (b.t - a.t);
}

/** Peak resident memory of a process so far, MiB (VmHWM); NaN when unknown. */
function peakRssMiB(pid: number | undefined): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'));
    return m === null ? NaN : Number(m[1]) / 1024;
  } catch {
    return NaN;
  }
}

/** A `mmad run` contender's name in the figures. */
export const serviceName = (guarantee: Config['processing']['guarantee']): string => `service ${guarantee}`;

/**
 * The peer's environment made or checked (bench/peer/setup-venv.sh: Python 3.11 and its pinned
 * wheels from the package index): undefined when it is ready, else why not.
 */
export function setUpPeer(): string | undefined {
  try {
    execFileSync('bash', [join(REPO_ROOT, 'bench', 'peer', 'setup-venv.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
    return undefined;
  } catch (err) {
    return `bench/peer/setup-venv.sh failed: ${at(messageOf(err).split('\n'), 0)}`;
  }
}

/**
 * Publishes one backlog, has each contender judge it `runs` times (checking every output first), prints
 * the table of figures and ratios, and returns each run's figures. The peer's environment must be
 * ready (setUpPeer).
 */
export async function comparePeer(o: PeerOptions): Promise<PeerFigures[]> {
  const { parts: PARTS, runs: RUNS, size: SIZE, broker } = o;
  const runId = Date.now().toString(36);
  const MANIFEST = o.manifest;
  const python = join(REPO_ROOT, 'bench', 'peer', '.venv', 'bin', 'python');

  const prefix = `bench-${runId}-peer`;
  const config: Config = loadConfig({ env: {}, overrides: { kafka: { brokers: broker.brokers }, topics: benchTopics(prefix), input: { groupId: prefix } } });
  const kafka = createKafka(config, config.kafka.brokers, quiet);
  const eventCodec = AvroCodec.local(SchemaCatalog.load(), 'AnomalyEvent');

  function serviceContender(guarantee: Config['processing']['guarantee']): Contender {
    return {
      name: serviceName(guarantee),
      start: (group) => {
        const t = benchTopics(group);
        const env = {
          ...process.env,
          KAFKA_BROKERS: config.kafka.brokers.join(','),
          MMAD_TOPICS__INPUTS__RGB: config.topics.inputs.rgb,
          MMAD_TOPICS__INPUTS__IR: config.topics.inputs.ir,
          MMAD_TOPICS__INPUTS__XYZ: config.topics.inputs.xyz,
          MMAD_TOPICS__EVENTS: t.events,
          MMAD_TOPICS__ALERTS: t.alerts,
          MMAD_TOPICS__DEAD_LETTERS: t.deadLetters,
          MMAD_TOPICS__LABELS: t.labels,
          MMAD_INPUT__GROUP_ID: group,
          MMAD_PROCESSING__GUARANTEE: guarantee,
          MMAD_INFERENCE__MANIFEST: MANIFEST,
          MMAD_TELEMETRY__PROMETHEUS__PORT: '0',
          MMAD_LOG_LEVEL: 'warn',
        };
        return spawn(process.execPath, [...NODE_FLAGS, join(REPO_ROOT, 'bin', 'mmad.mjs'), 'run'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      },
      decode: async (value) => {
        const e = await eventCodec.decode(value);
        return {
          sampleId: e.sampleId,
          final: e.final,
          verdict: e.verdict,
          score: e.score,
          model: e.model?.id ?? null,
          used: [...e.modalitiesUsed],
          producedAt: e.producedAt.getTime(),
          endToEndMs: e.timings.endToEndMs,
        };
      },
    };
  }

  const peerContender: Contender = {
    name: PEER,
    start: (group) => {
      const args = ['--brokers', config.kafka.brokers.join(','), '--rgb-topic', config.topics.inputs.rgb, '--ir-topic', config.topics.inputs.ir, '--group', group, '--events-topic', `${group}.events`, '--manifest', MANIFEST];
      return spawn(python, [join(REPO_ROOT, 'bench', 'peer', 'peer.py'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    },
    decode: (value) => {
      const e = JSON.parse(value.toString('utf8')) as PeerEvent;
      return Promise.resolve({
        sampleId: e.sampleId,
        final: true,
        verdict: e.verdict,
        score: e.score,
        model: e.model?.id ?? null,
        used: e.modalitiesUsed,
        producedAt: e.producedAt,
        endToEndMs: e.timings.endToEndMs,
      });
    },
  };

  /** Sum over the input topics' partitions of the group's committed offsets, and of the ends; undefined while the group's coordinator is not ready. */
  async function progress(admin: Admin, group: string, ends: Map<string, number>): Promise<{ committed: number; end: number } | undefined> {
    const topics = [config.topics.inputs.rgb, config.topics.inputs.ir];
    let offsets: Awaited<ReturnType<Admin['fetchOffsets']>>;
    try {
      offsets = await admin.fetchOffsets({ groupId: group, topics });
    } catch (err) {
      // a group just created: its coordinator is still loading (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS)
      if ((err as { retriable?: unknown }).retriable === true) return undefined;
      throw err;
    }
    let committed = 0;
    for (const t of offsets) for (const p of t.partitions) committed += Math.max(0, Number(p.offset));
    return { committed, end: [...ends.values()].reduce((a, b) => a + b, 0) };
  }

  /** One contender over the whole backlog: started, watched until its commits reach the ends, stopped, its events read. */
  async function runContender(c: Contender, run: number, admin: Admin, ends: Map<string, number>): Promise<Outcome> {
    const group = `${prefix}.r${String(run)}.${c.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}`;
    await admin.createTopics({ topics: [{ topic: `${group}.events`, numPartitions: config.topics.partitions, replicationFactor: 1 }] });
    const child = c.start(group);
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    /** The exit code once the process has exited (null: killed by a signal). */
    const exit: { code?: number | null } = {};
    void exited.then((code) => (exit.code = code));
    const cpu: { t: number; ms: number }[] = [];
    const brokerCpu: { t: number; ms: number }[] = [];
    const sampler = setInterval(() => {
      const t = Date.now();
      cpu.push({ t, ms: processCpuMs(child.pid) });
      brokerCpu.push({ t, ms: processCpuMs(broker.local?.pid) });
    }, 50);
    let peak: number;
    let code: number | null;
    try {
      let last = -1;
      let movedAt = Date.now();
      for (;;) {
        await sleep(250);
        if (exit.code !== undefined) throw new Error(`${c.name} exited (${String(exit.code)}) before judging the backlog:\n${err.slice(-3000)}`);
        const p = (await progress(admin, group, ends)) ?? { committed: last, end: Infinity };
        if (p.committed >= p.end) break;
        if (p.committed !== last) [last, movedAt] = [p.committed, Date.now()];
        else if (Date.now() - movedAt > STALL_MS) throw new Error(`${c.name}: committed offsets stuck at ${String(p.committed)} of ${String(p.end)} for ${String(STALL_MS / 1000)} s:\n${err.slice(-3000)}`);
      }
      peak = peakRssMiB(child.pid);
    } finally {
      clearInterval(sampler);
      if (exit.code === undefined) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      code = await exited;
      clearTimeout(killer);
    }
    if (code !== 0) throw new Error(`${c.name} did not stop cleanly (exit ${String(code)}):\n${err.slice(-3000)}`);
    const events: PartEvent[] = [];
    await readTopicToEnd(kafka, config, `${group}.events`, async (value) => {
      events.push(await c.decode(value));
    });
    const finals = events.filter((e) => e.final);
    const start = Math.min(...finals.map((e) => e.producedAt - e.endToEndMs));
    const end = Math.max(...finals.map((e) => e.producedAt));
    const countsLine = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
    return {
      run,
      name: c.name,
      events,
      partsPerS: finals.length / ((end - start) / 1000),
      cpuMsPerPart: (cpuAt(cpu, end) - cpuAt(cpu, start)) / finals.length,
      brokerMsPerPart: (cpuAt(brokerCpu, end) - cpuAt(brokerCpu, start)) / finals.length,
      p50: percentile(finals.map((e) => e.endToEndMs), 0.5),
      p99: percentile(finals.map((e) => e.endToEndMs), 0.99),
      peakRssMiB: peak,
      counts: countsLine === undefined ? undefined : (JSON.parse(countsLine) as Record<string, number>),
    };
  }

  /**
   * Fails unless `o` has exactly one final event per published part, each judged (OK/NOK) with rgb + ir by
   * `model`, and its scores match `reference`'s (another contender's) within SCORE_TOLERANCE.
   */
  function verify(o: Outcome, model: string, reference: Map<string, PartEvent> | undefined): Map<string, PartEvent> {
    const problems: string[] = [];
    const byId = new Map<string, PartEvent>();
    for (const e of o.events.filter((x) => x.final)) {
      if (byId.has(e.sampleId)) problems.push(`two final events for ${e.sampleId}`);
      byId.set(e.sampleId, e);
      if (e.verdict !== 'OK' && e.verdict !== 'NOK') problems.push(`${e.sampleId}: verdict ${e.verdict}`);
      else if (e.model !== model || [...e.used].sort().join('+') !== 'ir+rgb') problems.push(`${e.sampleId}: judged by ${String(e.model)} with ${e.used.join('+')}, not ${model} with rgb+ir`);
    }
    const foreign = [...byId.keys()].filter((id) => !id.startsWith(`${prefix}-`));
    if (foreign.length > 0) problems.push(`events for parts never published: ${foreign.slice(0, 3).join(', ')}`);
    if (byId.size !== PARTS) problems.push(`${String(byId.size)} parts have a final event, ${String(PARTS)} were published`);
    if (o.counts !== undefined && (o.counts.pairTimeouts ?? 0) + (o.counts.badFrames ?? 0) > 0) problems.push(`pair timeouts ${String(o.counts.pairTimeouts)}, bad frames ${String(o.counts.badFrames)}`);
    if (reference !== undefined) {
      for (const [id, r] of reference) {
        const e = byId.get(id);
        if (e === undefined) problems.push(`no event for ${id}`);
        else if (Math.abs((e.score ?? NaN) - (r.score ?? NaN)) > SCORE_TOLERANCE || Number.isNaN((e.score ?? NaN) - (r.score ?? NaN))) {
          problems.push(`${id}: score ${String(e.score)} against ${String(r.score)} (verdicts ${e.verdict} / ${r.verdict})`);
        }
      }
    }
    if (problems.length > 0) throw new Error(`run ${String(o.run)}, ${o.name}: wrong output, no figures (${String(problems.length)} problems):\n  ${problems.slice(0, 10).join('\n  ')}`);
    return byId;
  }

  const outcomes: Outcome[] = [];
  const admin = kafka.admin();
  try {
    await admin.connect();
    await createTopics(config, quiet);
    const source = await SimulatedPartSource.create({ product: 'battery_lid', width: SIZE, height: SIZE, seed: 1, defectRate: 0.2, defects: [], poolSize: 16 });
    await publishParts(config, { source, count: PARTS, pace: false, timing: steadyTiming(), logger: quiet });
    const ends = new Map<string, number>();
    for (const topic of [config.topics.inputs.rgb, config.topics.inputs.ir]) for (const o of await admin.fetchTopicOffsets(topic)) ends.set(`${topic}/${String(o.partition)}`, Number(o.high));
    const contenders = [serviceContender('exactly-once'), serviceContender('at-least-once'), peerContender];
    let reference: Map<string, PartEvent> | undefined;
    let model: string | undefined;
    for (let run = 1; run <= RUNS; run++) {
      for (const c of run % 2 === 1 ? contenders : [...contenders].reverse()) {
        const o = await runContender(c, run, admin, ends);
        model ??= o.events.find((e) => e.model !== null)?.model ?? 'no model';
        const byId = verify(o, model, reference);
        reference ??= byId;
        outcomes.push(o);
        console.log(`run ${String(run)}, ${c.name}: ${fmt(o.partsPerS)} parts/s, verified (${String(o.events.length)} events)`);
      }
    }
    const rows: Record<string, string | number>[] = [];
    const figures: [string, (o: Outcome) => number, number][] = [
      ['parts/s', (o) => o.partsPerS, 1],
      ['CPU ms/part', (o) => o.cpuMsPerPart, 1],
      ['broker CPU ms/part', (o) => o.brokerMsPerPart, 1],
      ['p50 ms', (o) => o.p50, 0],
      ['p99 ms', (o) => o.p99, 0],
      ['peak RSS MiB', (o) => o.peakRssMiB, 0],
    ];
    const peerName = PEER;
    for (let run = 1; run <= RUNS; run++) {
      const ofRun = outcomes.filter((o) => o.run === run);
      const peer = ofRun.find((o) => o.name === peerName);
      for (const o of ofRun) rows.push({ run, contender: o.name, ...Object.fromEntries(figures.map(([name, f, d]) => [name, fmt(f(o), d)])) });
      for (const o of ofRun.filter((x) => x.name !== peerName)) {
        if (peer !== undefined) rows.push({ run, contender: `${o.name} / peer`, ...Object.fromEntries(figures.map(([name, f]) => [name, fmt(f(o) / f(peer), 2)])) });
      }
    }
    printTable(`the service (mmad run, a child process) beside the peer (bench/peer/peer.py), ${String(PARTS)}-part backlog, ${o.nullStudents ? 'null student ' : ''}${model ?? '?'}; p50/p99: first frame read → event produced, per part`, rows);
    const peerCounts = outcomes.filter((o) => o.name === peerName).map((o) => o.counts);
    console.log(`peer counts per run: ${peerCounts.map((c) => JSON.stringify(c)).join('; ')}`);
    console.log('outputs verified: one final event per part, every part judged by the same student with rgb+ir, scores equal within 1e-3 across contenders');
  } finally {
    await admin.disconnect();
  }
  return outcomes.map(({ events: _events, counts: _counts, ...figures }) => figures);
}

/**
 * deploy/ cannot be run here (no container engine, no cluster), so it is
 * checked against the code it deploys: every configuration the files give the
 * service loads through the real config schema; every port they name is the
 * one that configuration opens; every metric a dashboard or the autoscaler
 * queries is one the service exports, with labels it has; the Kubernetes
 * objects validate against the Kubernetes (and KEDA) API schemas, offline.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { parse, parseAllDocuments } from 'yaml';
import { at, present } from '../../src/base/invariant.js';
import { COMMANDS } from '../../src/cli/main.js';
import { NODE_FLAGS } from '../../src/cli/node-flags.js';
import type { Config } from '../../src/config/config-schema.js';
import { defaultConfig, loadConfig } from '../../src/config/load-config.js';
import { fromRoot } from '../../src/config/paths.js';
import { METRICS, allSeriesNames, type MetricDef } from '../../src/telemetry/metrics.js';

const DEPLOY = fromRoot('deploy');
const read = (rel: string): string => readFileSync(join(DEPLOY, rel), 'utf8');
const defaults = defaultConfig();

/** What this file reads of a service in deploy/compose.yaml. */
interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string | number>;
  depends_on?: string[] | Record<string, unknown>;
  volumes?: string[];
  configs?: { source: string; target: string }[];
  expose?: (string | number)[];
  ports?: string[];
  deploy?: { replicas: number };
  healthcheck?: { test: string[] };
  stop_grace_period?: string;
}

interface Compose {
  services: Partial<Record<string, ComposeService>>;
  configs: Partial<Record<string, { file: string }>>;
}

// compose files share settings through YAML merge keys (<<: *anchor)
const compose = (): Compose => parse(read('compose.yaml'), { merge: true }) as Compose;

/** A service of the compose file, which must be there. */
function serviceOf(c: Compose, name: string): ComposeService {
  return present(c.services[name], `compose service ${name}`);
}

/** The ports a compose service opens to the others, as strings. */
const exposed = (s: ComposeService): string[] => (s.expose ?? []).map(String);

/** The config a process gets from this file and environment (what `mmad` itself would load). */
function configFrom(text: string | undefined, env: Record<string, string>): Config {
  if (text === undefined) return loadConfig({ env });
  const file = join(mkdtempSync(join(tmpdir(), 'mmad-deploy-')), 'mmad.yaml');
  writeFileSync(file, text);
  return loadConfig({ file, env });
}

/** host and port of a URL or host:port. */
function hostPort(s: string): { host: string; port: number } {
  const u = new URL(s.includes('://') ? s : `tcp://${s}`);
  return { host: u.hostname, port: Number(u.port) };
}

// ---- PromQL: the metric names and labels a query uses ----

const SERIES = new Set(allSeriesNames());
/** Labels every series has besides its own: histogram buckets, the resource's service name, Prometheus' target labels. */
const COMMON_LABELS = new Set(['le', 'service_name', 'job', 'instance']);

function defOf(series: string): MetricDef | undefined {
  return Object.values(METRICS).find((d) => [d.name, `${d.name}_total`, `${d.name}_bucket`, `${d.name}_sum`, `${d.name}_count`].includes(series));
}

function checkQuery(expr: string, where: string): MetricDef[] {
  const names = [...expr.matchAll(/\b(mmad_[a-z0-9_]+)/g)].map((m) => at(m, 1));
  assert.ok(names.length > 0, `${where}: the query uses no mmad metric: ${expr}`);
  for (const n of names) assert.ok(SERIES.has(n), `${where}: ${n} is not a series the service exports (${expr})`);
  const defs = names.map((n) => present(defOf(n), `the metric of series ${n}`));
  const known = new Set([...COMMON_LABELS, ...defs.flatMap((d) => d.labels)]);
  for (const m of expr.matchAll(/\b(mmad_[a-z0-9_]+)\{([^}]*)\}/g)) {
    const series = at(m, 1);
    const labels = new Set([...COMMON_LABELS, ...present(defOf(series), `the metric of series ${series}`).labels]);
    for (const l of at(m, 2).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
      const label = at(l, 1);
      assert.ok(labels.has(label), `${where}: ${series} has no label ${label} (${expr})`);
    }
  }
  for (const m of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    for (const l of at(m, 1).split(',').map((x) => x.trim()).filter(Boolean)) assert.ok(known.has(l), `${where}: no metric of the query has label ${l} (${expr})`);
  }
  return defs;
}

test('compose: Kafka in KRaft mode with what transactions on one node need, matching the service config', () => {
  const kafka = serviceOf(compose(), 'kafka');
  const image = present(kafka.image, 'the Kafka image');
  assert.match(image, /^apache\/kafka:\d+\.\d+\.\d+$/);
  assert.equal(image.split(':')[1], defaults.broker.kafkaVersion, 'the same Kafka as the local broker of tests and demo');
  const env = present(kafka.environment, 'the Kafka environment');
  assert.deepEqual(String(env.KAFKA_PROCESS_ROLES).split(',').sort(), ['broker', 'controller']);
  assert.ok(!Object.keys(env).some((k) => k.includes('ZOOKEEPER')));
  for (const k of ['KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_MIN_ISR']) assert.equal(Number(env[k]), 1, k);
  const voter = at(String(env.KAFKA_CONTROLLER_QUORUM_VOTERS).split('@'), 1);
  assert.ok(String(env.KAFKA_LISTENERS).includes(`CONTROLLER://:${hostPort(voter).port}`), 'the quorum voter is the controller listener');
  const advertised = String(env.KAFKA_ADVERTISED_LISTENERS).replace('PLAINTEXT://', '');
  const config = configFrom(read('config/mmad.yaml'), {});
  assert.deepEqual(config.kafka.brokers, [advertised], 'the service connects to the advertised listener');
  assert.equal(hostPort(advertised).host, 'kafka');
  assert.ok(Number(env.KAFKA_MESSAGE_MAX_BYTES) >= config.kafka.maxMessageBytes, 'the broker takes the largest frame the service accepts');
});

/** What this file reads of deploy/prometheus/prometheus.yml and deploy/otel-collector/config.yaml. */
interface PrometheusConfig {
  scrape_configs: { job_name: string; metrics_path?: string; dns_sd_configs: { names: string[]; port: number }[] }[];
}
interface CollectorConfig {
  receivers: { otlp: { protocols: { http: { endpoint: string } } } };
  exporters: Partial<Record<string, { endpoint: string }>>;
  service: { pipelines: { traces: { receivers: string[]; exporters: string[] }; metrics?: unknown } };
}
type Datasources = { datasources: { uid: string; url: string }[] };

test('compose: three replicas of the service; every mmad container loads its config and opens the ports the others use', () => {
  const file = compose();
  const { services, configs } = file;
  for (const c of Object.values(configs)) if (c !== undefined) assert.ok(existsSync(join(DEPLOY, c.file)), `config file ${c.file}`);
  for (const [name, s] of Object.entries(services)) {
    if (s === undefined) continue;
    for (const dep of Object.keys(Array.isArray(s.depends_on) ? Object.fromEntries(s.depends_on.map((d) => [d, 1])) : (s.depends_on ?? {}))) {
      assert.ok(dep in services, `${name} depends on ${dep}, which is not a service`);
    }
    for (const v of s.volumes ?? []) {
      const src = at(v.split(':'), 0);
      if (src.startsWith('.')) assert.ok(existsSync(join(DEPLOY, src)), `${name} mounts ${src}`);
    }
    for (const c of s.configs ?? []) assert.ok(c.source in configs, `${name} uses config ${c.source}`);
    assert.ok(s.image !== undefined && !/:latest$/.test(s.image) && s.image.includes(':'), `${name}: a pinned image (${s.image ?? 'none'})`);
  }
  const mmad = serviceOf(file, 'mmad');
  assert.equal(mmad.deploy?.replicas, 3);
  const builds = Object.entries(services).flatMap(([n, s]) => (s?.build === undefined ? [] : [{ name: n, s, build: s.build }]));
  assert.deepEqual(builds.map((b) => b.name).sort(), ['mmad', 'simulator', 'topics']);
  for (const { name, s, build } of builds) {
    assert.ok(existsSync(join(DEPLOY, build.context, build.dockerfile)), `${name}: ${build.dockerfile}`);
    const commands = COMMANDS.map((c) => c.name);
    const command = at(present(s.command, `${name}: the command`), 0);
    assert.ok(commands.includes(command), `${name} runs mmad ${command}`);
    const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
    const mounted = (s.configs ?? []).find((c) => c.target === env.MMAD_CONFIG);
    assert.ok(mounted !== undefined, `${name}: MMAD_CONFIG (${env.MMAD_CONFIG ?? 'unset'}) is a mounted config`);
    const { MMAD_CONFIG: _file, MMAD_LOG_LEVEL: _level, ...overrides } = env;
    const config = configFrom(read(present(configs[mounted.source], `config ${mounted.source}`).file), overrides);
    if (name !== 'mmad') continue;

    const port = config.telemetry.prometheus.port;
    assert.equal(port, defaults.telemetry.prometheus.port, 'the documented default port');
    assert.ok(exposed(mmad).includes(String(port)), 'the operations port is exposed to the other containers');
    const probe = present(mmad.healthcheck, 'the healthcheck').test.join(' ');
    assert.equal(hostPort(at(present(/https?:\/\/[^'"\s)]+/.exec(probe), 'the URL the healthcheck asks'), 0)).port, port, 'the healthcheck asks the operations port');
    assert.match(probe, /\/readyz/);
    const prom = parse(read('prometheus/prometheus.yml')) as PrometheusConfig;
    const job = present(prom.scrape_configs.find((j) => j.job_name === 'mmad'), 'the mmad scrape job');
    assert.equal(job.metrics_path ?? '/metrics', '/metrics');
    assert.deepEqual(at(job.dns_sd_configs, 0).names, ['mmad'], 'Prometheus finds every replica of the service');
    assert.equal(at(job.dns_sd_configs, 0).port, port);

    // traces: service → collector (OTLP/HTTP) → Jaeger (OTLP/gRPC)
    const otlp = hostPort(present(config.telemetry.otlp.endpoint, 'telemetry.otlp.endpoint'));
    const collectorService = services[otlp.host];
    assert.ok(collectorService !== undefined && exposed(collectorService).includes(String(otlp.port)), `the collector listens on ${otlp.port}`);
    const collector = parse(read('otel-collector/config.yaml')) as CollectorConfig;
    assert.equal(hostPort(collector.receivers.otlp.protocols.http.endpoint).port, otlp.port);
    const exporter = present(collector.exporters[at(collector.service.pipelines.traces.exporters, 0)], 'the traces exporter');
    const jaeger = hostPort(exporter.endpoint);
    assert.ok(exposed(serviceOf(file, jaeger.host)).includes(String(jaeger.port)));
    assert.deepEqual(collector.service.pipelines.traces.receivers, ['otlp']);
    if (config.telemetry.otlp.metricIntervalMs > 0) assert.ok(collector.service.pipelines.metrics, 'metrics pushed over OTLP need a metrics pipeline');

    // Grafana's data sources are the services that serve them
    const ds = (parse(read('grafana/provisioning/datasources/datasources.yaml')) as Datasources).datasources;
    for (const d of ds) {
      const u = hostPort(d.url);
      const served = serviceOf(file, u.host);
      const ports = [...(served.ports ?? []).map((p) => p.split(':').at(-1)), ...exposed(served)];
      assert.ok(ports.includes(String(u.port)), `${d.uid}: ${d.url}`);
    }
  }
  const k8s = parse(read('k8s/deployment.yaml')) as { spec: { template: { spec: { terminationGracePeriodSeconds: number } } } };
  assert.equal(mmad.stop_grace_period, `${k8s.spec.template.spec.terminationGracePeriodSeconds}s`, 'compose and Kubernetes give shutdown the same time');
});

test('the dashboard queries only metrics the service exports, with their labels, and shows every one of them', () => {
  const dash = JSON.parse(read('grafana/dashboards/mmad.json')) as { uid: string; panels: { id: number; type: string; title: string; datasource?: { uid: string }; targets?: { expr: string }[] }[] };
  const uids = new Set((parse(read('grafana/provisioning/datasources/datasources.yaml')) as Datasources).datasources.map((d) => d.uid));
  const provider = at((parse(read('grafana/provisioning/dashboards/dashboards.yaml')) as { providers: { options: { path: string } }[] }).providers, 0);
  const mount = present((serviceOf(compose(), 'grafana').volumes ?? []).find((v) => v.startsWith('./grafana/dashboards:')), 'the dashboards mount');
  assert.equal(mount.split(':')[1], provider.options.path, 'the provisioned folder is where the dashboards are mounted');
  const ids = dash.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const used = new Set<string>();
  for (const p of dash.panels.filter((x) => x.type !== 'row')) {
    assert.ok(p.datasource !== undefined && uids.has(p.datasource.uid), `${p.title}: a provisioned data source`);
    const targets = p.targets ?? [];
    assert.ok(targets.length > 0, `${p.title} has a query`);
    for (const t of targets) for (const d of checkQuery(t.expr, `panel "${p.title}"`)) used.add(d.name);
  }
  const unshown = Object.values(METRICS).map((d) => d.name).filter((n) => !used.has(n));
  assert.deepEqual(unshown, [], 'every metric has a panel');
});

test('the query checker catches unknown metrics and labels (so the checks above can fail)', () => {
  assert.throws(() => checkQuery('sum(rate(mmad_frames_total[1m]))', 't'), /not a series/);
  assert.throws(() => checkQuery('sum(mmad_consumer_lag_records{partition="1"})', 't'), /no label partition/);
  assert.throws(() => checkQuery('sum by (verdict) (rate(mmad_frames_read_total[1m]))', 't'), /no metric of the query has label verdict/);
  assert.throws(() => checkQuery('sum(rate(mmad_join_wait_seconds[1m]))', 't'), /not a series/, 'a histogram is queried by its _bucket, _sum, _count');
  assert.equal(at(checkQuery('histogram_quantile(0.9, sum by (le, model) (rate(mmad_inference_seconds_bucket[5m])))', 't'), 0).name, 'mmad_inference_seconds');
});

/** Resident memory per byte the join and buffer bounds count (README Operations → Sizing: measured ≈ 1.2). */
const RESIDENT_PER_COUNTED_BYTE = 1.2;
/** The process with the nine production students loaded and warmed up at the default batch size (measured ≈ 1 250 MB), with a margin. */
const BASE_BYTES = 1536 * 2 ** 20;

function quantityBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q);
  assert.ok(m !== null, `a memory quantity: ${q}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
}

/** What this file reads of each kind of object in deploy/k8s/. */
interface K8sKinds {
  Deployment: K8sObject & {
    spec: {
      replicas: number;
      selector: { matchLabels: Record<string, string> };
      template: {
        metadata: { labels: Record<string, string>; annotations: Partial<Record<string, string>> };
        spec: { containers: K8sContainer[]; volumes: { name: string; configMap?: { name: string } }[]; terminationGracePeriodSeconds: number };
      };
    };
  };
  ConfigMap: K8sObject & { data: Partial<Record<string, string>> };
  Service: K8sObject & { spec: { ports: { port: number; targetPort: string | number }[]; selector: Record<string, string> } };
  PodDisruptionBudget: K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; maxUnavailable: number } };
  ScaledObject: K8sObject & {
    spec: {
      scaleTargetRef: { name: string };
      minReplicaCount: number;
      maxReplicaCount: number;
      triggers: { type: string; metadata: { query: string; threshold: string } }[];
    };
  };
}

interface K8sContainer {
  args: string[];
  env: { name: string; value: string }[];
  volumeMounts: { name: string; mountPath: string }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { port: string | number; path: string } };
  readinessProbe: { httpGet: { port: string | number; path: string } };
  resources: { limits: { memory: string }; requests: { memory: string } };
}

function k8sObjects(): K8sObject[] {
  const kustomization = parse(read('k8s/kustomization.yaml')) as { resources: string[] };
  const files = readdirSync(join(DEPLOY, 'k8s')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
  assert.deepEqual([...kustomization.resources].sort(), files.sort(), 'kustomization lists every manifest');
  return kustomization.resources.flatMap((f) => parseAllDocuments(read(join('k8s', f))).map((d) => d.toJS() as K8sObject));
}

/** The object of a kind (the first, where there are several), read as that kind. */
function k8sObject<K extends keyof K8sKinds>(objects: K8sObject[], kind: K): K8sKinds[K] {
  return present(objects.find((o) => o.kind === kind), `a ${kind}`) as K8sKinds[K];
}

test('Kubernetes: every manifest validates against its API schema (Kubernetes and KEDA, bundled, offline)', () => {
  const models: Record<string, new (data: never) => { validate(): void }> = {
    'v1/ConfigMap': ConfigMap,
    'v1/Service': Service,
    'apps/v1/Deployment': Deployment,
    'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
    'keda.sh/v1alpha1/ScaledObject': ScaledObject,
  };
  const objects = k8sObjects();
  assert.deepEqual(objects.map((o) => o.kind).sort(), ['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'ScaledObject', 'Service']);
  for (const o of objects) {
    const Model = models[`${o.apiVersion}/${o.kind}`];
    assert.ok(Model !== undefined, `no schema for ${o.apiVersion} ${o.kind}`);
    assert.doesNotThrow(() => new Model(o as never).validate(), `${o.kind} ${o.metadata.name}`);
  }
  // the validator does reject a broken object
  const broken = structuredClone(k8sObject(objects, 'Deployment'));
  Object.assign(at(at(broken.spec.template.spec.containers, 0).ports, 0), { containerPort: 'nine' });
  assert.throws(() => new Deployment(broken as never).validate(), /containerPort must be integer/);
});

test('Kubernetes: config, ports, probes, shutdown time, disruption budget and autoscaler agree with the service', () => {
  const objects = k8sObjects();
  const deployment = k8sObject(objects, 'Deployment');
  const pod = deployment.spec.template;
  const container = at(pod.spec.containers, 0);
  const env = Object.fromEntries(container.env.map((e) => [e.name, e.value]));
  const configPath = present(env.MMAD_CONFIG, 'MMAD_CONFIG');
  const mount = present(container.volumeMounts.find((m) => configPath.startsWith(`${m.mountPath}/`)), `the volume mount of ${configPath}`);
  const volume = present(pod.spec.volumes.find((v) => v.name === mount.name), `volume ${mount.name}`);
  const configMap = objects
    .filter((o): o is K8sKinds['ConfigMap'] => o.kind === 'ConfigMap')
    .find((o) => o.metadata.name === volume.configMap?.name);
  assert.ok(configMap !== undefined, `the ConfigMap of volume ${volume.name}`);
  const key = configPath.slice(mount.mountPath.length + 1);
  const text = configMap.data[key];
  assert.ok(text !== undefined, `MMAD_CONFIG is key ${key} of ConfigMap ${configMap.metadata.name}`);
  const { MMAD_CONFIG: _f, MMAD_LOG_LEVEL: _l, ...overrides } = env;
  const config = configFrom(text, overrides);
  assert.equal(container.args[0], 'run');

  // one port: the operations server
  const port = config.telemetry.prometheus.port;
  const named = present(container.ports.find((p) => p.name === 'metrics'), 'the metrics port');
  assert.equal(named.containerPort, port);
  const resolve = (p: string | number): number => (typeof p === 'number' ? p : present(container.ports.find((x) => x.name === p), `port ${p}`).containerPort);
  assert.equal(resolve(container.livenessProbe.httpGet.port), port);
  assert.equal(container.livenessProbe.httpGet.path, '/healthz');
  assert.equal(resolve(container.readinessProbe.httpGet.port), port);
  assert.equal(container.readinessProbe.httpGet.path, '/readyz');
  assert.equal(Number(pod.metadata.annotations['prometheus.io/port']), port);
  assert.equal(pod.metadata.annotations['prometheus.io/path'], '/metrics');
  const service = k8sObject(objects, 'Service');
  assert.equal(at(service.spec.ports, 0).port, port);
  assert.equal(resolve(at(service.spec.ports, 0).targetPort), port);

  // selectors select the pods
  const labels: Partial<Record<string, string>> = pod.metadata.labels;
  const selects = (sel: Record<string, string>): boolean => Object.entries(sel).every(([k, v]) => labels[k] === v);
  assert.ok(selects(deployment.spec.selector.matchLabels));
  assert.ok(selects(service.spec.selector));
  const budget = k8sObject(objects, 'PodDisruptionBudget');
  assert.ok(selects(budget.spec.selector.matchLabels));
  assert.ok(budget.spec.maxUnavailable < deployment.spec.replicas);

  // memory: the join and buffer bounds of every task one pod can own, at the measured resident/counted ratio, plus the students
  const scaled = k8sObject(objects, 'ScaledObject');
  const limit = quantityBytes(container.resources.limits.memory);
  const tasksPerPod = Math.ceil(config.topics.partitions / scaled.spec.minReplicaCount);
  const bounded = tasksPerPod * (config.join.maxPendingBytes + config.processing.maxBufferedBytesPerTask) * RESIDENT_PER_COUNTED_BYTE + BASE_BYTES;
  assert.ok(bounded <= limit, `${tasksPerPod} tasks at their bounds need ${Math.round(bounded / 2 ** 20)} MiB, the limit is ${Math.round(limit / 2 ** 20)} MiB`);
  assert.ok(quantityBytes(container.resources.requests.memory) <= limit);

  // graceful shutdown (a commit per task, leaving the group) fits in the grace period
  assert.ok(pod.spec.terminationGracePeriodSeconds * 1000 >= 2 * config.kafka.requestTimeoutMs, 'two Kafka requests fit in the grace period');

  // the autoscaler: on the service's own lag, never more members than tasks
  assert.equal(scaled.spec.scaleTargetRef.name, deployment.metadata.name);
  assert.ok(scaled.spec.maxReplicaCount <= config.topics.partitions, 'a member beyond the partition count would get no task');
  assert.ok(scaled.spec.minReplicaCount >= 1);
  for (const trigger of scaled.spec.triggers) {
    assert.equal(trigger.type, 'prometheus');
    const defs = checkQuery(trigger.metadata.query, 'ScaledObject');
    assert.ok(defs.some((d) => d.name === METRICS.consumerLag.name), 'scaled on consumer lag');
    const service = /service_name="([^"]+)"/.exec(trigger.metadata.query)?.[1];
    assert.equal(service, config.telemetry.serviceName, 'the query selects this deployment by its service name');
    assert.ok(Number(trigger.metadata.threshold) > 0);
  }
});

/** Whether a Node version satisfies an npm `engines` range (comparators >=, >, <=, <, =, ^, ~ and partial versions, joined by spaces and ||). */
function nodeSatisfies(version: string, range: string): boolean {
  type Version = [number, number, number];
  const parse = (v: string): Version => {
    const [major = 0, minor = 0, patch = 0] = v.replace(/^v/, '').split('.').map((x) => (/^\d+$/.test(x) ? Number(x) : 0));
    return [major, minor, patch];
  };
  const cmp = (a: Version, b: Version): number => Math.sign(a[0] - b[0]) || Math.sign(a[1] - b[1]) || Math.sign(a[2] - b[2]);
  const v = parse(version);
  const one = (c: string): boolean => {
    const m = /^(>=|<=|>|<|=|\^|~)?v?([\d.x*]+)$/.exec(c);
    assert.ok(m !== null, `an engines comparator: ${c}`);
    const b = parse(at(m, 2));
    const d = cmp(v, b);
    switch (m[1]) {
      case '>=': return d >= 0;
      case '>': return d > 0;
      case '<=': return d <= 0;
      case '<': return d < 0;
      case '^': return d >= 0 && (b[0] > 0 ? v[0] === b[0] : v[0] === 0 && v[1] === b[1]);
      case '~': return d >= 0 && v[0] === b[0] && v[1] === b[1];
      default: return d === 0;
    }
  };
  return range.split('||').some((alt) => alt.replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').trim().split(/\s+/).filter(Boolean).every(one));
}

test('the engines checker reads ranges the way npm does', () => {
  assert.ok(nodeSatisfies('20.9.0', '>=20.9'));
  assert.ok(!nodeSatisfies('20.8.1', '>=20.9'));
  assert.ok(nodeSatisfies('20.9.0', '^18.19.0 || >=20.6.0'));
  assert.ok(!nodeSatisfies('20.9.0', '>=22.15'), 'the OpenTelemetry SDK 3.x range does not admit Node 20');
  assert.ok(nodeSatisfies('22.1.0', '>=20.9 <23'));
  assert.ok(!nodeSatisfies('19.0.0', '^18.19.0 || >=20.6.0'));
  assert.ok(nodeSatisfies('20.9.0', '>= 14.6'));
  // ESLint 10's range, the project's own
  const eslint = '^20.19.0 || ^22.13.0 || >=24';
  assert.ok(nodeSatisfies('20.19.0', eslint));
  assert.ok(!nodeSatisfies('20.18.3', eslint));
  assert.ok(!nodeSatisfies('21.7.3', eslint));
  assert.ok(!nodeSatisfies('22.12.0', eslint));
  assert.ok(nodeSatisfies('22.13.0', eslint));
  assert.ok(!nodeSatisfies('23.11.0', eslint));
  assert.ok(nodeSatisfies('24.0.0', eslint));
});

test('the images: pinned bases, the Node the dependencies need, the files the service reads, the port it opens', () => {
  const pkg = JSON.parse(readFileSync(fromRoot('package.json'), 'utf8')) as { engines: { node: string }; dependencies: Record<string, string> };
  const engines = pkg.engines.node;
  // the oldest Node of each line the range admits (^20.19.0 || ^22.13.0 || >=24: 20.19.0, 22.13.0, 24)
  const floors = engines.split('||').map((alt) => /^\s*(?:>=|\^|~)\s*v?(\d+(?:\.\d+){0,2})\s*$/.exec(alt)?.[1]);
  assert.ok(floors.every((f) => f !== undefined), `package.json engines.node: each alternative a lower bound (>=x.y, ^x.y.z, ~x.y.z): ${engines}`);
  // every runtime dependency runs on the oldest Node of each line the project supports (npm warns EBADENGINE otherwise)
  for (const dep of Object.keys(pkg.dependencies)) {
    const range = (JSON.parse(readFileSync(fromRoot(join('node_modules', dep, 'package.json')), 'utf8')) as { engines?: { node?: string } }).engines?.node;
    if (range === undefined) continue;
    for (const floor of floors) assert.ok(nodeSatisfies(floor, range), `${dep} needs Node ${range}, package.json promises ${engines}`);
  }
  for (const file of ['Dockerfile', 'Dockerfile.cuda']) {
    const text = read(file);
    const lines = text.split('\n').map((l) => l.trim());
    for (const from of lines.filter((l) => l.startsWith('FROM '))) {
      const image = at(from.split(/\s+/), 1);
      if (!image.includes(':')) continue; // a stage name
      assert.ok(!image.endsWith(':latest'), `${file}: ${image} is pinned`);
      const node = /^node:(\d+)/.exec(image)?.[1];
      // a node:<major> tag pulls that line's newest release
      if (node !== undefined) assert.ok(nodeSatisfies(`${node}.${Number.MAX_SAFE_INTEGER}.0`, engines), `${file}: Node ${node}, package.json engines ${engines}`);
    }
    for (const copy of lines.filter((l) => l.startsWith('COPY ') && !l.includes('--from='))) {
      for (const src of copy.split(/\s+/).slice(1, -1)) assert.ok(existsSync(fromRoot(src)), `${file}: ${src} exists`);
    }
    assert.ok(existsSync(fromRoot('models/exported/manifest.json')));
    const expose = present(lines.find((l) => l.startsWith('EXPOSE ')), `${file}: an EXPOSE line`);
    assert.equal(Number(expose.split(/\s+/)[1]), defaults.telemetry.prometheus.port);
    assert.ok(existsSync(join(DEPLOY, `${file}.dockerignore`)), `${file}.dockerignore keeps the context small`);
    // ENV lines must be configuration the service accepts
    const env: Record<string, string> = {};
    for (const m of text.matchAll(/^ENV\s+((?:[^\n]*\\\n)*[^\n]*)/gm)) {
      for (const kv of at(m, 1).replace(/\\\n/g, ' ').trim().split(/\s+/)) {
        const [k, v] = kv.split('=');
        if (k === undefined || !k.startsWith('MMAD_')) continue;
        assert.ok(v !== undefined, `${file}: ENV ${k} is KEY=value`);
        env[k] = v;
      }
    }
    configFrom(undefined, env);
  }
  const cuda = read('Dockerfile.cuda');
  assert.match(cuda, /--onnxruntime-node-install=cuda12/);
  assert.match(cuda, /FROM nvidia\/cuda:12\.[\d.]+-cudnn-runtime/, 'CUDA 12 with cuDNN (9), what onnxruntime-node’s CUDA provider needs');
  assert.deepEqual(configFrom(undefined, { MMAD_INFERENCE__EXECUTION_PROVIDERS: 'cuda' }).inference.executionProviders, ['cuda']);
});

test('every long-running mmad process starts with the same V8 options: the images, npm start, the CLI\'s shebang', () => {
  const flags = NODE_FLAGS.join(' ');
  assert.ok(NODE_FLAGS.length > 0);
  for (const file of ['Dockerfile', 'Dockerfile.cuda']) {
    const entry = present(/^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(read(file))?.[1], `${file}: an ENTRYPOINT in exec form`);
    assert.deepEqual(JSON.parse(entry), ['node', ...NODE_FLAGS, 'bin/mmad.mjs'], `${file}: the entrypoint passes node the flags of src/cli/node-flags.ts`);
  }
  // the Deployment and compose give the image arguments (run, simulate...), never a command of their own
  for (const doc of parseAllDocuments(read('k8s/deployment.yaml'))) {
    const d = doc.toJS() as { spec?: { template?: { spec?: { containers?: { command?: unknown }[] } } } };
    for (const c of d.spec?.template?.spec?.containers ?? []) assert.equal(c.command, undefined, 'k8s: the image entrypoint, not another command');
  }
  const pkg = JSON.parse(readFileSync(fromRoot('package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.start, `node ${flags} bin/mmad.mjs demo`);
  assert.ok(pkg.scripts.bench?.startsWith(`node ${flags} `), 'the benchmarks measure the service as it runs');
  assert.equal(readFileSync(fromRoot('bin/mmad.mjs'), 'utf8').split('\n')[0], `#!/usr/bin/env -S node ${flags}`);
});

test('README documents every metric, the endpoints and the telemetry configuration', () => {
  const readme = readFileSync(fromRoot('README.md'), 'utf8');
  for (const d of Object.values(METRICS)) assert.ok(readme.includes(`\`${d.name}`), `README names ${d.name}`);
  for (const e of ['/metrics', '/healthz', '/readyz']) assert.ok(readme.includes(e), e);
  assert.ok(readme.includes(`${RESIDENT_PER_COUNTED_BYTE} ×`), 'the sizing rule the manifests are checked with');
  for (const k of ['telemetry.prometheus.port', 'telemetry.otlp.endpoint']) assert.ok(readme.includes(k), k);
  assert.ok(readme.includes(String(defaults.telemetry.prometheus.port)));
});

/**
 * A real single-node Apache Kafka broker (KRaft: broker and controller in one
 * JVM), run from the jars Maven fetches from Maven Central into the project's
 * cache. Used by tests, CI and the demo when no broker is configured and no
 * container runtime is reachable.
 *
 * Lifecycle guarantees: the JVM is stopped by stop(), by this process's exit
 * (even a failing test), and — because a process killed by a signal runs no
 * handler — by a watchdog shell that kills the JVM within a second of this
 * process disappearing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { REPO_ROOT, fromRoot } from '../config/paths.js';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { rootLogger, type Logger } from '../base/logger.js';

const POM = join(REPO_ROOT, 'deploy', 'kafka', 'pom.xml');

export interface LocalKraftOptions {
  kafkaVersion: string;
  /** Jars go to <cacheDir>/<version>/libs; run directories to <cacheDir>/runs. */
  cacheDir: string;
  heapMb: number;
  maxMessageBytes: number;
  startTimeoutMs: number;
  /** Keep data here across starts (developer broker); a fresh temporary directory when absent. */
  dataDir?: string | undefined;
  /** Fixed client port; a free one when absent. */
  port?: number | undefined;
  logger?: Logger;
}

export interface LocalKraftTimings {
  /** Time spent fetching jars (0 when the cache was warm). */
  fetchMs: number;
  formatMs: number;
  startMs: number;
}

/** Marker on the JVM command line, so a run's brokers can be found (and proved gone). */
export const BROKER_MARKER_PROPERTY = 'mmad.localBroker';
/** Environment variable naming a group of brokers (a test run): every broker started under it carries it on its command line. */
export const BROKER_GROUP_ENV = 'LOCAL_KAFKA_BROKER_GROUP';
const GROUP_PROPERTY = 'mmad.brokerGroup';

const live = new Set<LocalKraftBroker>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  // A normal exit (even a failing test) runs this; death by signal does not,
  // and is covered by the watchdog below.
  process.on('exit', () => {
    for (const b of live) b.killNow();
  });
}

export class LocalKraftBroker {
  readonly id = randomBytes(6).toString('hex');
  private proc: ChildProcess | undefined;
  private watchdog: ChildProcess | undefined;
  private runDir = '';
  private ownsRunDir = false;
  private exited: Promise<number | null> = Promise.resolve(null);
  port = 0;
  timings: LocalKraftTimings = { fetchMs: 0, formatMs: 0, startMs: 0 };
  private readonly log: Logger;

  constructor(private readonly options: LocalKraftOptions) {
    this.log = (options.logger ?? rootLogger).child({ component: 'local-kafka' });
  }

  get bootstrap(): string {
    return `127.0.0.1:${this.port}`;
  }

  get logFile(): string {
    return join(this.runDir, 'server.log');
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Directory holding the broker's jars, fetched on first use. */
  libsDir(): string {
    return join(fromRoot(this.options.cacheDir), this.options.kafkaVersion, 'libs');
  }

  /** Fetches the jars once; later calls find the cache and return at once. */
  ensureJars(): void {
    const libs = this.libsDir();
    if (existsSync(join(libs, '.complete'))) return;
    const t0 = performance.now();
    const tmp = `${libs}.tmp-${process.pid}-${this.id}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    this.log.info('fetching Apache Kafka jars from Maven Central (first use only)', { version: this.options.kafkaVersion });
    const mvn = spawnSync(
      'mvn',
      [
        '-q',
        '-B',
        '-f',
        POM,
        'dependency:copy-dependencies',
        `-DoutputDirectory=${tmp}`,
        '-DincludeScope=runtime',
        `-Dkafka.version=${this.options.kafkaVersion}`,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    if (mvn.error !== undefined || mvn.status !== 0) {
      rmSync(tmp, { recursive: true, force: true });
      const why = mvn.error !== undefined ? messageOf(mvn.error) : `${mvn.stdout}\n${mvn.stderr}`.trim().slice(-2000);
      throw new MmadError(
        ErrorCode.BROKER_START_FAILED,
        `could not fetch Kafka ${this.options.kafkaVersion} jars with Maven (is 'mvn' installed and Maven Central reachable?): ${why}`,
        { cause: mvn.error },
      );
    }
    writeFileSync(join(tmp, '.complete'), new Date().toISOString());
    rmSync(libs, { recursive: true, force: true });
    mkdirSync(dirname(libs), { recursive: true });
    try {
      renameSync(tmp, libs);
    } catch (err) {
      // another process finished first; its copy is as good as ours
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(join(libs, '.complete'))) throw err;
    }
    this.timings.fetchMs = performance.now() - t0;
  }

  async start(): Promise<string> {
    if (this.proc !== undefined) return this.bootstrap;
    const t0 = performance.now();
    this.ensureJars();
    const classpath = `${this.libsDir()}/*`;

    if (this.options.dataDir !== undefined) {
      this.runDir = resolve(this.options.dataDir);
      mkdirSync(this.runDir, { recursive: true });
    } else {
      const runs = join(fromRoot(this.options.cacheDir), 'runs');
      mkdirSync(runs, { recursive: true });
      this.runDir = mkdtempSync(join(runs, 'broker-'));
      this.ownsRunDir = true;
    }
    const dataDir = join(this.runDir, 'data');
    const propsFile = join(this.runDir, 'server.properties');
    const log4jFile = join(this.runDir, 'log4j2.properties');
    const previous = existsSync(propsFile) ? readFileSync(propsFile, 'utf8') : '';
    const prevPorts = /listeners=PLAINTEXT:\/\/127\.0\.0\.1:(\d+),CONTROLLER:\/\/127\.0\.0\.1:(\d+)/.exec(previous);
    // A persistent data dir keeps its ports (the metadata log remembers the controller address).
    this.port = this.options.port ?? (prevPorts !== null ? Number(prevPorts[1]) : await freePort());
    const controllerPort = prevPorts !== null ? Number(prevPorts[2]) : await freePort(this.port);
    writeFileSync(propsFile, this.serverProperties(dataDir, controllerPort));
    writeFileSync(log4jFile, log4jProperties(this.logFile));
    const jvmBase = [
      `-Dlog4j2.configurationFile=${log4jFile}`,
      `-D${BROKER_MARKER_PROPERTY}=${this.id}`,
      `-D${GROUP_PROPERTY}=${process.env[BROKER_GROUP_ENV] ?? 'none'}`,
      '-Djava.awt.headless=true',
      '-cp',
      classpath,
    ];

    if (!existsSync(join(dataDir, 'meta.properties'))) {
      const tf = performance.now();
      // a leading '-' would be read as an option by the storage tool
      const clusterId = randomBytes(16).toString('base64url').replace(/^-/, 'A');
      const fmt = spawnSync('java', ['-Xmx256m', ...jvmBase, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', propsFile], {
        encoding: 'utf8',
      });
      if (fmt.error !== undefined || fmt.status !== 0) {
        throw new MmadError(
          ErrorCode.BROKER_START_FAILED,
          `formatting the KRaft storage failed (is a JDK 17+ 'java' on PATH?): ${fmt.error !== undefined ? messageOf(fmt.error) : `${fmt.stdout}${fmt.stderr}`.trim().slice(-2000)}`,
          { cause: fmt.error },
        );
      }
      this.timings.formatMs = performance.now() - tf;
    }

    installExitHooks();
    const proc = spawn(
      'java',
      [`-Xmx${this.options.heapMb}m`, `-Xms${Math.min(256, this.options.heapMb)}m`, '-XX:+UseG1GC', ...jvmBase, 'kafka.Kafka', propsFile],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.proc = proc;
    live.add(this);
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    this.exited = new Promise((res) => proc.once('exit', (code) => res(code)));
    void this.exited.then(() => live.delete(this));
    if (proc.pid !== undefined) {
      // Kills the JVM if this process dies without running its exit handlers (SIGKILL).
      this.watchdog = spawn(
        'sh',
        ['-c', `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${proc.pid} 2>/dev/null; do sleep 1; done; kill -9 ${proc.pid} 2>/dev/null`],
        { stdio: 'ignore', detached: true },
      );
      this.watchdog.unref();
    }

    const deadline = performance.now() + this.options.startTimeoutMs;
    let lastError = '';
    while (performance.now() < deadline) {
      const exit = proc.exitCode ?? proc.signalCode;
      if (exit !== null) {
        throw new MmadError(
          ErrorCode.BROKER_START_FAILED,
          `the Kafka broker exited during start-up (code ${exit}); see ${this.logFile}: ${stderr.trim().slice(-1000) || tailOf(this.logFile)}`,
        );
      }
      if (isStarted(this.logFile)) {
        const probe = await canConnect(this.port);
        if (probe === true) {
          this.timings.startMs = performance.now() - t0;
          this.log.info('local Kafka broker ready', {
            bootstrap: this.bootstrap,
            ms: Math.round(this.timings.startMs),
            logFile: this.logFile,
          });
          return this.bootstrap;
        }
        lastError = probe;
      }
      await sleep(100);
    }
    this.killNow();
    throw new MmadError(
      ErrorCode.BROKER_START_FAILED,
      `the Kafka broker did not become ready within ${this.options.startTimeoutMs} ms (${lastError}); see ${this.logFile}`,
    );
  }

  /** Controlled shutdown; SIGKILL after the grace period. Removes a temporary run directory. */
  async stop(graceMs = 20_000): Promise<void> {
    const proc = this.proc;
    if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.watchdog?.kill('SIGKILL');
    this.proc = undefined;
    live.delete(this);
    if (this.ownsRunDir) rmSync(this.runDir, { recursive: true, force: true });
  }

  /** Synchronous last resort for exit handlers. */
  killNow(): void {
    const proc = this.proc;
    if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    this.watchdog?.kill('SIGKILL');
  }

  private serverProperties(dataDir: string, controllerPort: number): string {
    const max = this.options.maxMessageBytes;
    return [
      '# written by mmad (src/kafka/local-kraft.ts); regenerated at every start',
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${this.port},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${this.port}`,
      'controller.listener.names=CONTROLLER',
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      'inter.broker.listener.name=PLAINTEXT',
      `log.dirs=${dataDir}`,
      // one broker: internal topics cannot have more than one replica
      'offsets.topic.replication.factor=1',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      'min.insync.replicas=1',
      // topics are created explicitly (src/kafka/topics.ts), never by a typo
      'auto.create.topics.enable=false',
      'group.initial.rebalance.delay.ms=0',
      // image frames: records of several MiB
      `message.max.bytes=${max}`,
      `replica.fetch.max.bytes=${max}`,
      `socket.request.max.bytes=${Math.max(104_857_600, 2 * max)}`,
      'num.partitions=1',
      'log.retention.hours=168',
      '',
    ].join('\n');
  }
}

function log4jProperties(file: string): string {
  return [
    'status = warn',
    'appender.file.type = File',
    'appender.file.name = file',
    `appender.file.fileName = ${file}`,
    'appender.file.layout.type = PatternLayout',
    'appender.file.layout.pattern = [%d] %p %m (%c)%n',
    'rootLogger.level = info',
    'rootLogger.appenderRef.file.ref = file',
    // the broker's per-request chatter is noise in a test log
    'logger.state.name = state.change.logger',
    'logger.state.level = warn',
    '',
  ].join('\n');
}

function isStarted(logFile: string): boolean {
  try {
    return readFileSync(logFile, 'utf8').includes('Kafka Server started');
  } catch {
    return false;
  }
}

function tailOf(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

function canConnect(port: number): Promise<true | string> {
  return new Promise((res) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      res(true);
    });
    s.on('error', (e) => res(e.message));
  });
}

function freePort(avoid?: number): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => {
        if (port === avoid) freePort(avoid).then(res, rej);
        else res(port);
      });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** PIDs of live local brokers: the one with this id, or all of a group (see BROKER_GROUP_ENV), from /proc. */
export function findBrokerProcesses(which: { id: string } | { group: string }): number[] {
  const needle = 'id' in which ? `-D${BROKER_MARKER_PROPERTY}=${which.id}\0` : `-D${GROUP_PROPERTY}=${which.group}\0`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes(needle) && cmd.includes('kafka.Kafka')) pids.push(Number(entry));
    } catch {
      // process ended while we looked
    }
  }
  return pids;
}

/**
 * The operations HTTP server (config telemetry.prometheus): what a scraper
 * and an orchestrator ask a running instance.
 *
 *   GET /metrics  Prometheus text format (the OpenTelemetry Prometheus exporter)
 *   GET /healthz  liveness: 200 while the process serves requests and no work is stalled
 *                 (processing.stallTimeoutMs), 503 with the stalls otherwise
 *   GET /readyz   200 when ready, 503 otherwise; JSON body with each check
 *
 * Readiness is what the caller says it is (see Telemetry.readiness): the
 * consumer has its assignment, the students are loaded, the broker answers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { at } from '../base/invariant.js';

export interface Check {
  ok: boolean;
  detail?: string;
}

export interface Readiness {
  ready: boolean;
  checks: Record<string, Check>;
}

export interface OpsServerOptions {
  host: string;
  /** 0: any free port (tests); the bound port is `OpsServer.port`. */
  port: number;
  /** Serves /metrics; without it /metrics is 404. */
  prometheus?: PrometheusExporter;
  readiness: () => Readiness;
  /** Liveness beyond answering HTTP (no stalled work); without it /healthz is always 200. */
  liveness?: () => Readiness;
}

export interface OpsServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startOpsServer(o: OpsServerOptions): Promise<OpsServer> {
  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`${JSON.stringify(body)}\n`);
  };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = at((req.url ?? '/').split('?'), 0);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics' && o.prometheus !== undefined) {
      o.prometheus.getMetricsRequestHandler(req, res);
    } else if (path === '/healthz') {
      let r: Readiness = { ready: true, checks: {} };
      try {
        if (o.liveness) r = o.liveness();
      } catch (err) {
        r = { ready: false, checks: { liveness: { ok: false, detail: messageOf(err) } } };
      }
      json(res, r.ready ? 200 : 503, { status: r.ready ? 'ok' : 'stalled', checks: r.checks });
    } else if (path === '/readyz') {
      let r: Readiness;
      try {
        r = o.readiness();
      } catch (err) {
        r = { ready: false, checks: { readiness: { ok: false, detail: messageOf(err) } } };
      }
      json(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', checks: r.checks });
    } else {
      json(res, 404, { error: `no such endpoint ${path}; try /metrics, /healthz, /readyz` });
    }
  };
  const server: Server = createServer(handle);
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(
        new MmadError(ErrorCode.TELEMETRY_FAILED, `cannot serve /metrics, /healthz, /readyz on ${o.host}:${o.port} (telemetry.prometheus.port): ${err.code ?? messageOf(err)}`, {
          cause: err,
        }),
      );
    };
    server.once('error', onError);
    server.listen(o.port, o.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

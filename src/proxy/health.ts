/**
 * Health endpoints for load balancers, without a client certificate:
 *
 *   GET /healthz   200 {"status":"ok"}: the process is up and serving HTTP
 *   GET /readyz    200 {"status":"ready"}, or 503 {"status":"not ready","problems":[…]}:
 *                  listening, the backend answers, the audit trail can be written
 *
 * Answers are tiny and say nothing about the configuration. A shutting-down
 * proxy answers 503 to both (server.ts refuses every request then).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describeError } from '../errors.js';
import type { AuditWriter, Backend } from '../backend/types.js';
import type { ProxyRoutes } from './server.js';

export const HEALTH_PATHS = { healthz: '/healthz', readyz: '/readyz' } as const;

/** A readiness check gives up after this long (a load balancer's check is short). */
const CHECK_TIMEOUT_MS = 2_000;

export interface HealthState {
  listening(): boolean;
  backend: Backend;
  audit(): AuditWriter | undefined;
}

export async function readinessProblems(state: HealthState): Promise<string[]> {
  const problems: string[] = [];
  if (!state.listening()) problems.push('not listening yet');
  const check = async (what: string, fn: () => Promise<void>) => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        fn(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      problems.push(`${what}: ${describeError(err)}`);
    } finally {
      clearTimeout(timer);
    }
  };
  await check('backend', () => state.backend.ping());
  const audit = state.audit();
  if (audit && !audit.healthy) await check('audit', () => audit.probe());
  return problems;
}

export function healthRoutes(state: HealthState, other?: ProxyRoutes): ProxyRoutes {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== HEALTH_PATHS.healthz && path !== HEALTH_PATHS.readyz) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      reply(res, 405, { status: 'use GET' });
      return true;
    }
    if (path === HEALTH_PATHS.healthz) {
      reply(res, 200, { status: 'ok' });
      return true;
    }
    const problems = await readinessProblems(state);
    reply(res, problems.length ? 503 : 200, problems.length ? { status: 'not ready', problems } : { status: 'ready' });
    return true;
  };
  return {
    openPaths: [HEALTH_PATHS.healthz, HEALTH_PATHS.readyz, ...(other?.openPaths ?? [])],
    handle: async (req, res, peer) => (await handle(req, res)) || ((await other?.handle?.(req, res, peer)) ?? false),
  };
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/**
 * The monitor's HTTP surface on node:http: the JSON API, server-sent events, `/metrics` and the dashboard.
 *
 * Every route needs the token — as `Authorization: Bearer <token>`, or for the page (a browser cannot set
 * headers on a link or an EventSource) as the HttpOnly, SameSite=Strict cookie set by `GET /?token=…` —
 * except the page's static files under `/assets/` (the package's own code and styles, no data).
 * Write actions take the header only: a cookie rides along with requests other sites make, a header does not.
 * A wrong or missing token gets 401 and no data.
 */
import type { ControlAction } from '../scheduler/controls.js';
import type { TaskName, UnitName } from '../scheduler/names.js';
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ConfigError, toError } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { Actor } from '../scheduler/controls.js';
import { RUN_STATUSES, runKeyOfId, type HistoryRun, type RunHistoryPage, type RunHistoryQuery, type RunStatus } from './run-history.js';
import { dashboardAsset, type DashboardAsset } from './dashboard-page.js';
import type { OwnerChange, OwnerChangeQuery } from './owner-log.js';
import type { StatusDelta } from './status-delta.js';
import type { MonitorStatus, StampedEvent } from './monitor-events.js';


/** A history query as the API takes it: a task's units or one unit, else every task (run-history.ts). */
export interface RunsQuery extends Omit<RunHistoryQuery, 'units'> {
  /** Every unit of this task; with neither `task` nor `unit`, every task. */
  readonly task?: TaskName;
  /** One unit (`task`, `task#i`, `task@node`). */
  readonly unit?: UnitName;
}

/** A control asked over the API, with who asked and from where (recorded with the control). */
export interface ControlRequest {
  readonly action: ControlAction;
  readonly task: string;
  readonly actor: Actor;
}

/** What the HTTP layer needs from the monitor. */
export interface ApiBackend {
  /** The latest snapshot, or undefined before the first read succeeded. */
  status(): MonitorStatus | undefined;
  runs(query: RunsQuery): Promise<RunHistoryPage>;
  /** One run by its id (`<unit>/<tick>` or `<unit>/<trigger id>`); undefined when the store has none. */
  run(id: string): Promise<HistoryRun | undefined>;
  /** Owner changes this monitor saw (owners over time), newest first. */
  ownerChanges(query: OwnerChangeQuery): OwnerChange[];
  /** The buffered events, oldest first (the newest `limit`). */
  recentEvents(limit: number): StampedEvent[];
  /** Buffered events after `seq` (a reconnecting EventSource's Last-Event-ID), then every new one. */
  subscribe(listener: (item: StreamItem) => void, afterSeq?: number): () => void;
  metrics(): Promise<{ body: string; contentType: string }>;
  /** @throws ConfigError when no node declares the task (404). */
  control(request: ControlRequest): Promise<{ readonly trigger?: string }>;
}

/** What streams are sent after their first full status: a status delta, or an event. */
export type StreamItem = { readonly kind: 'delta'; readonly delta: StatusDelta } | { readonly kind: 'event'; readonly event: StampedEvent };

export interface ApiOptions {
  /** null: reads without a token (loopback only; checked by the caller); write actions are then refused. */
  readonly token: string | null;
  readonly log: Logger;
  readonly clock: Clock;
  /** Who a write action over the API is recorded as (`by`). Default `token`. */
  readonly tokenLabel?: string;
  /** Comment lines on idle event streams, so proxies and browsers keep them open. Default 15 s. */
  readonly heartbeatMs?: number;
}

const COOKIE = 'baton_token';
const TASK = /^[A-Za-z0-9][\w.:-]{0,127}$/;
const UNIT = /^[A-Za-z0-9][\w.:@#-]{0,255}$/;
const MAX_LIMIT = 1000;

export interface ApiServer {
  readonly server: Server;
  /** Ends every event stream (the server's close() would wait for them for ever). */
  endStreams(): void;
}

export function createApiServer(backend: ApiBackend, options: ApiOptions): ApiServer {
  const streams = new Set<ServerResponse>();
  const expected = options.token === null ? null : digest(options.token);
  const tokenMatches = (candidate: string | undefined): boolean =>
    expected !== null && candidate !== undefined && timingSafeEqual(digest(candidate), expected);
  const bearer = (req: IncomingMessage): string | undefined => /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
  const cookie = (req: IncomingMessage): string | undefined => parseCookies(req.headers.cookie)[COOKIE];
  const mayRead = (req: IncomingMessage): boolean => expected === null || tokenMatches(bearer(req)) || tokenMatches(cookie(req));

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const err = toError(error);
      options.log.error({ err, method: req.method, path: pathOf(req) }, 'monitor: request failed');
      if (!res.headersSent) sendJson(res, 500, { error: `internal error: ${err.message}` });
      else res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://monitor');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    setCommonHeaders(res);

    if (path === '/' || path === '/index.html') {
      if (method !== 'GET') return methodNotAllowed(res, 'GET');
      const offered = url.searchParams.get('token');
      if (offered !== null) {
        if (!tokenMatches(offered)) return sendHtml(challenged(res), 401, unauthorizedPage());
        // The token leaves the address bar (and history) at once; the cookie carries it from now on.
        res.setHeader('Set-Cookie', `${COOKIE}=${encodeURIComponent(offered)}; HttpOnly; SameSite=Strict; Path=/`);
        res.writeHead(303, { Location: '/' }).end();
        return;
      }
      if (!mayRead(req)) return sendHtml(challenged(res), 401, unauthorizedPage());
      return sendAsset(res, dashboardAsset('index.html'));
    }

    const asset = /^\/assets\/([\w.-]+)$/.exec(path);
    if (asset) {
      if (method !== 'GET') return methodNotAllowed(res, 'GET');
      const file = dashboardAsset(asset[1] as string);
      if (!file) return sendJson(res, 404, { error: `no such asset: ${path}` });
      return sendAsset(res, file);
    }

    const control = /^\/api\/tasks\/([^/]+)\/(pause|resume|trigger)$/.exec(path);
    if (control) {
      if (method !== 'POST') return methodNotAllowed(res, 'POST');
      if (expected === null) return sendJson(res, 403, { error: 'write actions need a token: start the monitor with --token (or BATON_TOKEN)' });
      // A page of another site cannot read the token, but refuse its requests outright (defence in depth):
      // a browser always sends Origin on a POST; the CLI and curl send none.
      const origin = req.headers.origin;
      if (origin !== undefined && origin !== `http://${req.headers.host ?? ''}` && origin !== `https://${req.headers.host ?? ''}`) {
        return sendJson(res, 403, { error: `write actions from another origin are refused (Origin ${JSON.stringify(origin)}, this monitor is ${JSON.stringify(req.headers.host ?? '')})` });
      }
      if (!tokenMatches(bearer(req))) return sendJson(challenged(res), 401, { error: 'write actions need the header Authorization: Bearer <token>' });
      const task = decodeSegment(control[1] as string);
      if (task === null || !UNIT.test(task)) return sendJson(res, 400, { error: `task name: not a valid task name: ${JSON.stringify(control[1])}` });
      const action = control[2] as ControlAction;
      const actor = { by: options.tokenLabel ?? 'token', address: req.socket.remoteAddress ?? 'unknown' };
      try {
        const result = await backend.control({ action, task, actor });
        return sendJson(res, 200, { ok: true, action, task, ...result });
      } catch (error) {
        if (error instanceof ConfigError) return sendJson(res, 404, { error: error.message });
        throw error;
      }
    }

    if (!mayRead(req)) return sendJson(challenged(res), 401, { error: 'missing or wrong token: send Authorization: Bearer <token>' });
    if (method !== 'GET') return methodNotAllowed(res, 'GET');
    switch (path) {
      case '/api/status': {
        const status = backend.status();
        if (!status) return sendJson(res, 503, { error: 'no snapshot yet: the store has not answered' });
        return sendJson(res, 200, status);
      }
      case '/api/runs':
        return sendRuns(url, res);
      case '/api/events':
        return openStream(req, res);
      case '/api/events/recent':
        return sendRecentEvents(url, res);
      case '/api/owners':
        return sendOwners(url, res);
      case '/metrics': {
        const { body, contentType } = await backend.metrics();
        res.writeHead(200, { 'Content-Type': contentType }).end(body);
        return;
      }
      default:
        return sendJson(res, 404, { error: `no such endpoint: ${path} (known: /, /api/status, /api/runs, /api/events, /api/events/recent, /api/owners, /metrics, POST /api/tasks/:name/{pause,resume,trigger})` });
    }
  }

  async function sendRuns(url: URL, res: ServerResponse): Promise<void> {
    const known = ['task', 'unit', 'id', 'limit', 'cursor', 'outcome', 'node', 'from', 'to'];
    for (const key of url.searchParams.keys()) {
      if (!known.includes(key)) return sendJson(res, 400, { error: `unknown query parameter "${key}" (known: ${known.join(', ')})` });
    }
    const param = (key: string): string | undefined => url.searchParams.get(key) ?? undefined;
    const id = param('id');
    if (id !== undefined) {
      try {
        runKeyOfId(id);
      } catch (error) {
        return sendJson(res, 400, { error: toError(error).message });
      }
      const run = await backend.run(id);
      if (!run) return sendJson(res, 404, { error: `run "${id}": not in the store (pruned by the task's history retention, or never written)` });
      return sendJson(res, 200, { runs: [run] });
    }
    const limitText = param('limit') ?? '100';
    const limit = Number(limitText);
    if (!/^\d+$/.test(limitText) || limit < 1 || limit > MAX_LIMIT) {
      return sendJson(res, 400, { error: `limit: expected an integer from 1 to ${MAX_LIMIT}, got ${JSON.stringify(limitText)}` });
    }
    const times: { from?: number; to?: number } = {};
    for (const key of ['from', 'to'] as const) {
      const text = param(key);
      if (text === undefined) continue;
      const at = parseTime(text);
      if (at === undefined) return sendJson(res, 400, { error: `${key}: expected ms since the epoch or an ISO 8601 time (2026-12-07T15:00:00Z), got ${JSON.stringify(text)}` });
      times[key] = at;
    }
    let statuses: Set<RunStatus> | undefined;
    const outcome = param('outcome');
    if (outcome !== undefined) {
      const asked = outcome.split(',');
      const unknownStatus = asked.find((s) => !(RUN_STATUSES as readonly string[]).includes(s));
      if (unknownStatus !== undefined) return sendJson(res, 400, { error: `outcome: unknown ${JSON.stringify(unknownStatus)} (known: ${RUN_STATUSES.join(', ')}; several: comma-separated)` });
      statuses = new Set(asked as RunStatus[]);
    }
    const node = param('node');
    if (node !== undefined && !/^[\w.:@#[\]-]{1,256}$/.test(node)) return sendJson(res, 400, { error: `node: expected a node id, host:pid or host, got ${JSON.stringify(node)}` });
    const cursor = param('cursor');
    const task = param('task');
    const unit = param('unit');
    const status = backend.status();
    if (task !== undefined) {
      if (!TASK.test(task)) return sendJson(res, 400, { error: `task: not a valid task name: ${JSON.stringify(task)}` });
      if (status && !status.tasks.some((t) => t.task === task)) {
        return sendJson(res, 404, { error: `task "${task}": unknown (no node declares it and it has no history)` });
      }
    }
    if (unit !== undefined) {
      if (!UNIT.test(unit)) return sendJson(res, 400, { error: `unit: not a valid unit name: ${JSON.stringify(unit)}` });
      if (status && !status.tasks.some((t) => t.unit === unit)) {
        return sendJson(res, 404, { error: `unit "${unit}": unknown (no node declares it and it has no history)` });
      }
    }
    try {
      const page = await backend.runs({
        limit,
        ...times,
        ...(task !== undefined ? { task: task as TaskName } : {}),
        ...(unit !== undefined ? { unit: unit as UnitName } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
        ...(statuses ? { statuses } : {}),
        ...(node !== undefined ? { node } : {}),
      });
      return sendJson(res, 200, page);
    } catch (error) {
      if (error instanceof ConfigError) return sendJson(res, 400, { error: error.message });
      throw error;
    }
  }

  function sendRecentEvents(url: URL, res: ServerResponse): void {
    const query = simpleQuery(url, res, []);
    if (query) sendJson(res, 200, { events: backend.recentEvents(query.limit) });
  }

  function sendOwners(url: URL, res: ServerResponse): void {
    const query = simpleQuery(url, res, ['task', 'unit']);
    if (!query) return;
    const { task, unit } = query.params;
    if (task !== undefined && !TASK.test(task)) return sendJson(res, 400, { error: `task: not a valid task name: ${JSON.stringify(task)}` });
    if (unit !== undefined && !UNIT.test(unit)) return sendJson(res, 400, { error: `unit: not a valid unit name: ${JSON.stringify(unit)}` });
    sendJson(res, 200, { changes: backend.ownerChanges({ limit: query.limit, ...(task !== undefined ? { task } : {}), ...(unit !== undefined ? { unit } : {}) }) });
  }

  /** `limit` (1–MAX_LIMIT, default 100) and the named parameters; answers 400 and returns undefined for others. */
  function simpleQuery(url: URL, res: ServerResponse, names: readonly string[]): { limit: number; params: Record<string, string | undefined> } | undefined {
    const known = [...names, 'limit'];
    for (const key of url.searchParams.keys()) {
      if (!known.includes(key)) {
        sendJson(res, 400, { error: `unknown query parameter "${key}" (known: ${known.join(', ')})` });
        return undefined;
      }
    }
    const limitText = url.searchParams.get('limit') ?? '100';
    const limit = Number(limitText);
    if (!/^\d+$/.test(limitText) || limit < 1 || limit > MAX_LIMIT) {
      sendJson(res, 400, { error: `limit: expected an integer from 1 to ${MAX_LIMIT}, got ${JSON.stringify(limitText)}` });
      return undefined;
    }
    return { limit, params: Object.fromEntries(names.map((name) => [name, url.searchParams.get(name) ?? undefined])) };
  }

  function openStream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.write('retry: 2000\n\n');
    streams.add(res);
    const lastId = Number(req.headers['last-event-id']);
    const write = (item: StreamItem): void => {
      if (item.kind === 'delta') res.write(`event: status:delta\ndata: ${toJson(item.delta)}\n\n`);
      else res.write(`id: ${item.event.seq}\nevent: ${item.event.type}\ndata: ${toJson(item.event)}\n\n`);
    };
    // The whole status once; then only what changes (status-delta.ts).
    const status = backend.status();
    if (status) res.write(`event: status\ndata: ${toJson(status)}\n\n`);
    const unsubscribe = backend.subscribe(write, Number.isSafeInteger(lastId) ? lastId : undefined);
    const everyMs = options.heartbeatMs ?? 15_000;
    let cancelHeartbeat = options.clock.setTimer(everyMs, function beat() {
      res.write(': keep-alive\n\n');
      cancelHeartbeat = options.clock.setTimer(everyMs, beat);
    });
    res.on('close', () => {
      cancelHeartbeat();
      unsubscribe();
      streams.delete(res);
    });
  }

  return {
    server,
    endStreams: () => {
      for (const res of streams) res.end();
      streams.clear();
    },
  };
}

/** ms since the epoch, or an ISO 8601 time with its zone; undefined for anything else. */
function parseTime(text: string): number | undefined {
  if (/^\d{1,15}$/.test(text)) return Number(text);
  if (!/^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})$/.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : at;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function parseCookies(header: string | undefined): Record<string, string> {
  const cookies: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const value = decodeSegment(part.slice(eq + 1).trim());
    if (value !== null) cookies[part.slice(0, eq).trim()] = value;
  }
  return cookies;
}

function decodeSegment(value: string): string | null {
  try {
    return decodeURIComponent(value);
  } catch {
    return null;
  }
}

const pathOf = (req: IncomingMessage): string => (req.url ?? '/').split('?')[0] ?? '/';

/** JSON with bigints as strings (fencing tokens). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

function setCommonHeaders(res: ServerResponse): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  // The page's address may carry the token once (before the redirect): never send it on.
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Frame-Options', 'DENY');
}

/** A 401 names the scheme it wants (RFC 6750 §3), so clients and proxies know how to authenticate. */
function challenged(res: ServerResponse): ServerResponse {
  return res.setHeader('WWW-Authenticate', 'Bearer realm="baton"');
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'Content-Type': 'application/json; charset=utf-8' }).end(toJson(body));
}

/**
 * The page's files and every HTML answer share one policy: scripts and styles from this origin only (no
 * inline script, style or handler), requests to this origin only, nothing framed.
 */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function sendHtml(res: ServerResponse, code: number, html: string): void {
  res.writeHead(code, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': CSP }).end(html);
}

function sendAsset(res: ServerResponse, asset: DashboardAsset | undefined): void {
  if (!asset) return sendJson(res, 500, { error: 'the dashboard files are missing from this installation (dist/monitor/assets): reinstall the package, or run npm run build in a checkout' });
  res.writeHead(200, { 'Content-Type': asset.contentType, 'Content-Security-Policy': CSP }).end(asset.body);
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.setHeader('Allow', allow);
  sendJson(res, 405, { error: `method not allowed (allowed: ${allow})` });
}

function unauthorizedPage(): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>baton monitor — sign in</title>
<link rel="stylesheet" href="/assets/dashboard.css"></head>
<body class="signin" data-testid="unauthorized"><h1>baton monitor</h1>
<p>This page needs the monitor's token. Open the address <code>baton serve</code> printed at start (it ends in <code>?token=…</code>),
or append <code>?token=YOUR_TOKEN</code> to this address.</p></body></html>`;
}

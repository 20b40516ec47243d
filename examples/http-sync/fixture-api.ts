/**
 * A local, deliberately unreliable orders API for the http-sync example and its tests: a real node:http
 * server on 127.0.0.1 serving a dataset that changes while it is read, with faults injected by a seeded
 * PRNG or by schedule.
 *
 * Endpoints (JSON, newest last):
 * - `GET /orders?updated_since=TS[&after_id=ID]&limit=N`: records with (updated_at, id) > (TS, ID), or
 *   updated_at ≥ TS without `after_id`, ordered by (updated_at, id): `{ "records": [...] }`.
 * - `GET /orders/by-id?after_id=ID&limit=N`: records with id > ID by id (for `increasingId`).
 * - `GET /orders/pages?page_token=T&limit=N`: `{ "records": [...], "next_page_token": T | null }`.
 *
 * Faults (each page request gets at most one): `error500`, `tooMany` (429 with Retry-After), `hang`
 * (no answer until the client gives up), `malformed` (a truncated JSON body), `duplicate` (the answer
 * this same URL got before, replayed from a cache, stale versions included), `stale` (the cached answer
 * of an earlier position: records older than the cursor) and `shuffle` (the page's records out of order).
 * Records change in batches sharing one timestamp, so pages end between records of equal `updated_at`;
 * every `invalidEvery`-th new record is invalid (a schema must reject it) and is never updated.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Order {
  readonly id: number;
  readonly customer: string;
  readonly amount_cents: number | string;
  readonly status: string;
  readonly updated_at: string;
}

export type Fault = 'error500' | 'tooMany' | 'hang' | 'malformed' | 'duplicate' | 'stale' | 'shuffle';

export interface FixtureApiOptions {
  /** PRNG seed for data and faults. Default 1. */
  readonly seed?: number;
  /** Records created at start. Default 200. */
  readonly initial?: number;
  /** Every n-th new record is invalid (0: none). Default 0. */
  readonly invalidEvery?: number;
  /** Probability of each fault per page request (their sum must stay ≤ 1). Default none. */
  readonly faults?: Partial<Record<Fault, number>>;
  /** The Retry-After of a `tooMany` answer, in seconds. Default 1. */
  readonly retryAfterSeconds?: number;
  /** Delay added to every page, in ms. Default 0. */
  readonly latencyMs?: number;
}

/** A page request held by {@link FixtureApi.holdNext}: who sent it, and a way to let it through. */
export interface HeldRequest {
  /** The `X-Node` header of the request, if any. */
  readonly node: string | undefined;
  readonly url: string;
  /** Answers the request normally (no fault). */
  release(): void;
  /** Resolves when the client has gone (aborted or killed) before the answer. */
  readonly gone: Promise<void>;
}

const STATUSES = ['new', 'paid', 'shipped', 'cancelled'] as const;
const CUSTOMERS = ['ada', 'grace', 'edsger', 'barbara', 'ken', 'margaret', 'donald', 'frances'] as const;

export class FixtureApi {
  readonly url: string;
  readonly #server: Server;
  readonly #options: Required<Omit<FixtureApiOptions, 'faults'>> & { faults: Partial<Record<Fault, number>> };
  readonly #records = new Map<number, Order>();
  readonly #invalid = new Set<number>();
  readonly #cache = new Map<string, { position: string; body: string }>();
  readonly #scheduled: Fault[] = [];
  readonly #hanging = new Set<ServerResponse>();
  #hold: ((held: HeldRequest) => void) | undefined;
  #random: () => number;
  #nextId = 1;
  #lastBatchMs = 0;
  #changer: NodeJS.Timeout | undefined;
  #inserts = 0;
  /** Page requests served, by fault (`none` for a normal answer). */
  readonly served: Record<Fault | 'none' | 'held', number> = { none: 0, error500: 0, tooMany: 0, hang: 0, malformed: 0, duplicate: 0, stale: 0, shuffle: 0, held: 0 };
  /** Page requests received per `X-Node` header. */
  readonly byNode = new Map<string, number>();

  private constructor(server: Server, options: FixtureApiOptions) {
    this.#server = server;
    this.#options = {
      seed: options.seed ?? 1,
      initial: options.initial ?? 200,
      invalidEvery: options.invalidEvery ?? 0,
      faults: options.faults ?? {},
      retryAfterSeconds: options.retryAfterSeconds ?? 1,
      latencyMs: options.latencyMs ?? 0,
    };
    this.#random = mulberry32(this.#options.seed);
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    this.insert(this.#options.initial);
  }

  /** Starts a server on 127.0.0.1 and a free port. */
  static async start(options: FixtureApiOptions = {}): Promise<FixtureApi> {
    let api: FixtureApi | undefined;
    const server = createServer((req, res) => {
      if (api) api.#handle(req, res);
      else res.writeHead(503).end();
    });
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    api = new FixtureApi(server, options);
    return api;
  }

  /** Creates `count` records in one batch (one shared `updated_at`). */
  insert(count: number): void {
    const at = this.#batchTime();
    for (let i = 0; i < count; i++) {
      const id = this.#nextId++;
      this.#inserts++;
      const invalid = this.#options.invalidEvery > 0 && this.#inserts % this.#options.invalidEvery === 0;
      const order: Order = {
        id,
        customer: CUSTOMERS[Math.floor(this.#random() * CUSTOMERS.length)] as string,
        amount_cents: Math.floor(this.#random() * 100_000),
        status: 'new',
        updated_at: at,
      };
      // Three kinds of invalid record, each failing one rule of the example's schema.
      this.#records.set(id, invalid ? [{ ...order, amount_cents: 'twelve' }, { ...order, status: 'lost' }, { ...order, customer: '' }][id % 3] as Order : order);
      if (invalid) this.#invalid.add(id);
    }
  }

  /** Changes `count` random valid records in one batch: new status and amount, a later `updated_at`. */
  update(count: number): void {
    const at = this.#batchTime();
    const valid = [...this.#records.keys()].filter((id) => !this.#invalid.has(id));
    for (let i = 0; i < count && valid.length > 0; i++) {
      const id = valid[Math.floor(this.#random() * valid.length)] as number;
      const order = this.#records.get(id) as Order;
      this.#records.set(id, {
        ...order,
        status: STATUSES[Math.floor(this.#random() * STATUSES.length)] as string,
        amount_cents: Math.floor(this.#random() * 100_000),
        updated_at: at,
      });
    }
  }

  /** Inserts and updates a few records every `everyMs` until {@link stopChanging}. */
  startChanging(options: { readonly everyMs?: number; readonly inserts?: number; readonly updates?: number } = {}): void {
    this.stopChanging();
    this.#changer = setInterval(() => {
      this.insert(options.inserts ?? 3);
      this.update(options.updates ?? 2);
    }, options.everyMs ?? 100);
  }

  stopChanging(): void {
    if (this.#changer) clearInterval(this.#changer);
    this.#changer = undefined;
  }

  /** Every record, valid or not. */
  records(): Order[] {
    return [...this.#records.values()];
  }

  /** The records a schema must accept: what the target must end up holding. */
  validRecords(): Order[] {
    return this.records().filter((r) => !this.#invalid.has(r.id));
  }

  invalidRecords(): Order[] {
    return this.records().filter((r) => this.#invalid.has(r.id));
  }

  /** Sets the fault probabilities from now on. */
  setFaults(faults: Partial<Record<Fault, number>>): void {
    this.#options.faults = faults;
  }

  /** The next page requests get these faults, in order, before the random ones resume. */
  schedule(...faults: Fault[]): void {
    this.#scheduled.push(...faults);
  }

  /**
   * Holds the next page request (no fault) until `release()`: resolves when it arrives, so a test can
   * kill or pause the process that sent it while its page is in flight.
   */
  holdNext(): Promise<HeldRequest> {
    return new Promise((resolve) => (this.#hold = resolve));
  }

  async close(): Promise<void> {
    this.stopChanging();
    for (const res of this.#hanging) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** One shared timestamp per batch, strictly later than the previous batch's. */
  #batchTime(): string {
    this.#lastBatchMs = Math.max(Date.now(), this.#lastBatchMs + 1);
    return new Date(this.#lastBatchMs).toISOString();
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const node = typeof req.headers['x-node'] === 'string' ? req.headers['x-node'] : undefined;
    if (node) this.byNode.set(node, (this.byNode.get(node) ?? 0) + 1);
    const route = url.pathname;
    if (route !== '/orders' && route !== '/orders/by-id' && route !== '/orders/pages') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    const hold = this.#hold;
    if (hold) {
      this.#hold = undefined;
      this.served.held++;
      let release: () => void = () => undefined;
      const released = new Promise<void>((resolve) => (release = resolve));
      const gone = new Promise<void>((resolve) => res.once('close', () => resolve()));
      this.#hanging.add(res);
      hold({ node, url: url.toString(), release, gone });
      void released.then(() => {
        this.#hanging.delete(res);
        if (!res.destroyed) this.#answer(route, url, res, 'none');
      });
      return;
    }
    const fault = this.#scheduled.shift() ?? this.#pickFault();
    const answer = () => this.#answer(route, url, res, fault);
    if (this.#options.latencyMs > 0) setTimeout(answer, this.#options.latencyMs);
    else answer();
  }

  #pickFault(): Fault | 'none' {
    let roll = this.#random();
    for (const [fault, p] of Object.entries(this.#options.faults) as [Fault, number][]) {
      if (roll < p) return fault;
      roll -= p;
    }
    return 'none';
  }

  #answer(route: string, url: URL, res: ServerResponse, fault: Fault | 'none'): void {
    if (res.destroyed) return;
    const json = (status: number, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body);
    };
    const key = `${route}?${[...url.searchParams].sort().map(([k, v]) => `${k}=${v}`).join('&')}`;
    const position = this.#positionOf(route, url);
    this.served[fault]++;
    switch (fault) {
      case 'error500':
        json(500, '{"error":"internal error"}');
        return;
      case 'tooMany':
        json(429, '{"error":"slow down"}', { 'retry-after': String(this.#options.retryAfterSeconds) });
        return;
      case 'hang':
        // No answer at all: the client's timeout must end it. Freed on close().
        this.#hanging.add(res);
        res.once('close', () => this.#hanging.delete(res));
        return;
      case 'malformed': {
        const body = this.#page(route, url, false);
        json(200, body.slice(0, Math.max(1, Math.floor(body.length / 2))));
        return;
      }
      case 'duplicate': {
        const cached = this.#cache.get(key);
        json(200, cached ? cached.body : this.#remember(key, position, this.#page(route, url, false)));
        return;
      }
      case 'stale': {
        const earlier = [...this.#cache.values()].filter((c) => c.position <= position && c.position.startsWith(`${route}|`));
        const pick = earlier[Math.floor(this.#random() * earlier.length)];
        json(200, pick ? pick.body : this.#remember(key, position, this.#page(route, url, false)));
        return;
      }
      default:
        json(200, this.#remember(key, position, this.#page(route, url, fault === 'shuffle')));
    }
  }

  /** Keeps the answer for later replays (bounded). */
  #remember(key: string, position: string, body: string): string {
    this.#cache.delete(key);
    this.#cache.set(key, { position, body });
    if (this.#cache.size > 500) this.#cache.delete(this.#cache.keys().next().value as string);
    return body;
  }

  /** A sortable text of where a request starts, to find answers of earlier positions. */
  #positionOf(route: string, url: URL): string {
    if (route === '/orders/by-id') return `${route}|${(url.searchParams.get('after_id') ?? '0').padStart(12, '0')}`;
    if (route === '/orders/pages') {
      const token = url.searchParams.get('page_token');
      const at = token ? (JSON.parse(Buffer.from(token, 'base64url').toString()) as { ts: string; id: number }) : { ts: '', id: 0 };
      return `${route}|${at.ts}|${String(at.id).padStart(12, '0')}`;
    }
    return `${route}|${url.searchParams.get('updated_since') ?? ''}|${(url.searchParams.get('after_id') ?? '').padStart(12, '0')}`;
  }

  #page(route: string, url: URL, shuffle: boolean): string {
    const limit = Math.max(1, Math.min(1000, Number(url.searchParams.get('limit') ?? 100)));
    const all = [...this.#records.values()];
    let page: Order[];
    let next: string | null | undefined;
    if (route === '/orders/by-id') {
      const after = Number(url.searchParams.get('after_id') ?? 0);
      page = all.filter((r) => r.id > after).sort((a, b) => a.id - b.id).slice(0, limit);
    } else {
      let since = url.searchParams.get('updated_since');
      let afterId = url.searchParams.get('after_id');
      if (route === '/orders/pages') {
        const token = url.searchParams.get('page_token');
        const at = token ? (JSON.parse(Buffer.from(token, 'base64url').toString()) as { ts: string; id: number }) : null;
        since = at?.ts ?? null;
        afterId = at ? String(at.id) : null;
      }
      const sinceMs = since === null ? Number.NEGATIVE_INFINITY : Date.parse(since);
      const after = afterId === null ? null : Number(afterId);
      page = all
        .filter((r) => {
          const ms = Date.parse(r.updated_at);
          return after === null ? ms >= sinceMs : ms > sinceMs || (ms === sinceMs && r.id > after);
        })
        .sort((a, b) => Date.parse(a.updated_at) - Date.parse(b.updated_at) || a.id - b.id)
        .slice(0, limit);
      if (route === '/orders/pages') {
        const last = page.at(-1);
        next = page.length === limit && last ? Buffer.from(JSON.stringify({ ts: last.updated_at, id: last.id })).toString('base64url') : null;
      }
    }
    if (shuffle) {
      page = [...page];
      for (let i = page.length - 1; i > 0; i--) {
        const j = Math.floor(this.#random() * (i + 1));
        [page[i], page[j]] = [page[j] as Order, page[i] as Order];
      }
    }
    return JSON.stringify(next === undefined ? { records: page } : { records: page, next_page_token: next });
  }
}

/** A small seeded PRNG (mulberry32): the same seed gives the same data and faults. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

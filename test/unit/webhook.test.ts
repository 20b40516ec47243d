/**
 * The webhook sender against a real HTTP receiver on the loopback interface (no fetch mock). Backoff,
 * Retry-After waits and request timeouts run on a FakeClock, stepped by `drive()`; HTTP runs in real time.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { Alert } from '../../src/monitor/monitor-events.js';
import { parseRetryAfter, parseWebhookOptions, WebhookSender, type AlertDelivery, type WebhookOptions } from '../../src/monitor/webhook.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** FakeClock monotonic time when the request arrived. */
  readonly at: number;
}

/** What the receiver does with the n-th request (0-based): answer, or leave it hanging. */
type Reply = { status: number; headers?: Record<string, string>; body?: string } | 'hang';

interface Receiver {
  readonly url: string;
  readonly port: number;
  readonly received: Received[];
  /** Most requests in progress at once (deliveries must go one at a time). */
  readonly maxInFlight: () => number;
}

const servers: Server[] = [];
const senders: WebhookSender[] = [];

afterEach(async () => {
  await Promise.all(senders.splice(0).map((s) => s.close()));
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

async function receiver(clock: FakeClock, reply: (n: number, req: Received) => Reply): Promise<Receiver> {
  const received: Received[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const server = createServer((req, res: ServerResponse) => {
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.on('close', () => (inFlight -= 1));
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request: Received = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: clock.monotonic() };
      received.push(request);
      const answer = reply(received.length - 1, request);
      if (answer === 'hang') return;
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(answer.body ?? '');
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hook`, port, received, maxInFlight: () => maxInFlight };
}

interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly obj: Record<string, unknown>;
}

function memoryLog(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const make = (bindings: Record<string, unknown>): Logger => {
    const at = (level: string) => (obj: object, msg?: string) => lines.push({ level, msg: msg ?? '', obj: { ...bindings, ...obj } });
    return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (b) => make({ ...bindings, ...b }) };
  };
  return { log: make({}), lines };
}

function sender(options: WebhookOptions, clock: FakeClock, log: Logger): WebhookSender {
  const s = new WebhookSender(options, { clock, log });
  senders.push(s);
  return s;
}

function alert(subject: string): Alert {
  return { id: `no-owner:${subject}`, rule: 'no-owner', subject, message: `task "${subject}" has no owner`, since: Date.UTC(2026, 0, 1) };
}

function firing(subject: string): AlertDelivery {
  return { status: 'firing', alert: alert(subject), cluster: 'prod' };
}

/** Steps fake time (50 ms at a time, letting real I/O run in between) until `promise` settles. */
async function drive(clock: FakeClock, promise: Promise<unknown>, maxFakeMs = 300_000): Promise<void> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  const start = clock.monotonic();
  while (!done) {
    if (clock.monotonic() - start > maxFakeMs) throw new Error(`did not settle within ${maxFakeMs}ms of fake time`);
    await clock.advance(50);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  await promise;
}

/** Waits in real time (fake time stands still) until `condition` holds. */
async function until(condition: () => boolean, what: string, realMs = 5000): Promise<void> {
  const deadline = Date.now() + realMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const keyOf = (r: Received) => r.headers['x-baton-delivery'];

describe('WebhookSender', () => {
  it('posts the delivery as JSON, signed with the secret, with credentials as Basic auth and never in the log', async () => {
    const clock = new FakeClock();
    const rx = await receiver(clock, () => ({ status: 204 }));
    const { log, lines } = memoryLog();
    const url = rx.url.replace('http://', 'http://hook-user:p4ssw0rd@') + '?token=t0ps3cret';
    const s = sender({ url, secret: 'signing-s3cret', timeout: '1h' }, clock, log);

    s.send(firing('sync'));
    await drive(clock, s.idle());

    expect(rx.received).toHaveLength(1);
    const [req] = rx.received as [Received];
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['x-baton-delivery']).toBe('no-owner:sync:firing');
    expect(req.headers.authorization).toBe(`Basic ${Buffer.from('hook-user:p4ssw0rd').toString('base64')}`);
    const timestamp = req.headers['x-baton-timestamp'] as string;
    expect(timestamp).toMatch(/^\d+$/);
    const expected = createHmac('sha256', 'signing-s3cret').update(`${timestamp}.${req.body}`).digest('hex');
    expect(req.headers['x-baton-signature']).toBe(`sha256=${expected}`);
    // A different secret does not verify.
    expect(createHmac('sha256', 'other').update(`${timestamp}.${req.body}`).digest('hex')).not.toBe(expected);
    expect(JSON.parse(req.body)).toEqual({ status: 'firing', alert: alert('sync'), cluster: 'prod', sentAt: Number(timestamp) });

    const logged = JSON.stringify(lines);
    expect(lines.some((l) => l.msg.includes('delivered'))).toBe(true);
    expect(logged).not.toContain('signing-s3cret');
    expect(logged).not.toContain('p4ssw0rd');
    expect(logged).not.toContain('hook-user');
    expect(logged).not.toContain('t0ps3cret');
    expect(logged).toContain(`http://***@127.0.0.1:${rx.port}/hook?***`);
  });

  it('sends no signature without a secret', async () => {
    const clock = new FakeClock();
    const rx = await receiver(clock, () => ({ status: 200 }));
    const s = sender({ url: rx.url, timeout: '1h' }, clock, memoryLog().log);
    s.send({ status: 'resolved', alert: { ...alert('a'), resolvedAt: Date.UTC(2026, 0, 2) }, cluster: 'c' });
    await drive(clock, s.idle());
    expect(rx.received[0]?.headers['x-baton-signature']).toBeUndefined();
    expect(rx.received[0]?.headers['x-baton-delivery']).toBe('no-owner:a:resolved');
  });

  it('retries 5xx: 500, 500, 200 makes 3 requests with one idempotency key and one delivery', async () => {
    const clock = new FakeClock();
    const rx = await receiver(clock, (n) => ({ status: n < 2 ? 500 : 200, body: n < 2 ? 'database down' : 'ok' }));
    const { log, lines } = memoryLog();
    const s = sender({ url: rx.url, timeout: '1h' }, clock, log);

    s.send(firing('sync'));
    await drive(clock, s.idle());

    expect(rx.received.map(keyOf)).toEqual(['no-owner:sync:firing', 'no-owner:sync:firing', 'no-owner:sync:firing']);
    expect(lines.filter((l) => l.msg === 'webhook: delivered')).toHaveLength(1);
    const retries = lines.filter((l) => l.msg === 'webhook: delivery failed, will retry');
    expect(retries.map((l) => l.obj.reason)).toEqual(['HTTP 500: database down', 'HTTP 500: database down']);
    // Backoff 0.5 s then 1 s, each with jitter down to half.
    const [first, second, third] = rx.received.map((r) => r.at) as [number, number, number];
    expect(second - first).toBeGreaterThanOrEqual(250);
    expect(third - second).toBeGreaterThanOrEqual(500);
  });

  it('does not retry a 400, and logs the rejection', async () => {
    const clock = new FakeClock();
    const rx = await receiver(clock, () => ({ status: 400, body: 'bad payload' }));
    const { log, lines } = memoryLog();
    const s = sender({ url: rx.url, timeout: '1h' }, clock, log);

    s.send(firing('sync'));
    await drive(clock, s.idle());
    await clock.advance(120_000);

    expect(rx.received).toHaveLength(1);
    expect(lines.find((l) => l.level === 'error')).toMatchObject({
      msg: 'webhook: delivery rejected by the receiver, not retried',
      obj: { delivery: 'no-owner:sync:firing', reason: 'HTTP 400: bad payload' },
    });
  });

  it('honours Retry-After (seconds) on a 429', async () => {
    const clock = new FakeClock();
    const rx = await receiver(clock, (n) => (n === 0 ? { status: 429, headers: { 'Retry-After': '7' } } : { status: 200 }));
    const { log, lines } = memoryLog();
    const s = sender({ url: rx.url, timeout: '1h' }, clock, log);

    s.send(firing('sync'));
    await drive(clock, s.idle());

    expect(rx.received).toHaveLength(2);
    const [first, second] = rx.received.map((r) => r.at) as [number, number];
    // The backoff alone would have waited 0.25-0.5 s.
    expect(second - first).toBeGreaterThanOrEqual(7000);
    expect(lines.find((l) => l.msg === 'webhook: delivery failed, will retry')?.obj.retryInMs).toBe(7000);
  });

  it('keeps the order of deliveries, one at a time, a retried one holding back the next', async () => {
    const clock = new FakeClock();
    const rx = await receiver(clock, (n) => ({ status: n === 0 ? 503 : 200 }));
    const s = sender({ url: rx.url, timeout: '1h' }, clock, memoryLog().log);

    s.send(firing('a'));
    s.send(firing('b'));
    s.send({ status: 'resolved', alert: alert('a'), cluster: 'prod' });
    s.send(firing('c'));
    await drive(clock, s.idle());

    expect(rx.received.map(keyOf)).toEqual([
      'no-owner:a:firing',
      'no-owner:a:firing',
      'no-owner:b:firing',
      'no-owner:a:resolved',
      'no-owner:c:firing',
    ]);
    expect(rx.maxInFlight()).toBe(1);
  });

  it('retries a request that times out (on the injected clock)', async () => {
    const clock = new FakeClock();
    const rx = await receiver(clock, (n) => (n === 0 ? 'hang' : { status: 200 }));
    const { log, lines } = memoryLog();
    const s = sender({ url: rx.url, timeout: '2s' }, clock, log);

    s.send(firing('sync'));
    await drive(clock, s.idle());

    expect(rx.received).toHaveLength(2);
    expect(rx.received[1]!.at - rx.received[0]!.at).toBeGreaterThanOrEqual(2000 + 250);
    expect(lines.find((l) => l.msg === 'webhook: delivery failed, will retry')?.obj.reason).toBe('timeout after 2000ms');
    expect(lines.filter((l) => l.msg === 'webhook: delivered')).toHaveLength(1);
  });

  it('retries network errors and gives up after `attempts`', async () => {
    const clock = new FakeClock();
    const rx = await receiver(clock, () => ({ status: 200 }));
    // Nothing listens on the port any more: connection refused.
    const server = servers.pop() as Server;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const { log, lines } = memoryLog();
    const s = sender({ url: rx.url, timeout: '1h', attempts: 3 }, clock, log);

    s.send(firing('sync'));
    await drive(clock, s.idle());

    expect(lines.filter((l) => l.msg === 'webhook: delivery failed, will retry')).toHaveLength(2);
    const gaveUp = lines.find((l) => l.msg === 'webhook: delivery given up');
    expect(gaveUp?.obj).toMatchObject({ delivery: 'no-owner:sync:firing', attempts: 3 });
    expect(String(gaveUp?.obj.reason)).toContain('ECONNREFUSED');
  });

  it('gives up on 5xx after `attempts` requests', async () => {
    const clock = new FakeClock();
    const rx = await receiver(clock, () => ({ status: 502 }));
    const { log, lines } = memoryLog();
    const s = sender({ url: rx.url, timeout: '1h', attempts: 4 }, clock, log);

    s.send(firing('sync'));
    s.send(firing('next'));
    await drive(clock, s.idle());

    expect(rx.received.map(keyOf)).toEqual([...Array(4).fill('no-owner:sync:firing'), ...Array(4).fill('no-owner:next:firing')]);
    expect(lines.filter((l) => l.msg === 'webhook: delivery given up')).toHaveLength(2);
  });

  it('close() during a retry wait resolves without fake time passing, and logs the pending deliveries as dropped', async () => {
    const clock = new FakeClock();
    const rx = await receiver(clock, () => ({ status: 500 }));
    const { log, lines } = memoryLog();
    const s = sender({ url: rx.url, timeout: '1h' }, clock, log);

    s.send(firing('a'));
    s.send(firing('b'));
    await until(() => lines.some((l) => l.msg === 'webhook: delivery failed, will retry'), 'the first failure');
    const start = clock.monotonic();
    await s.close();

    expect(clock.monotonic()).toBe(start);
    expect(clock.pendingTimers).toBe(0);
    expect(rx.received).toHaveLength(1);
    const dropped = lines.filter((l) => l.msg === 'webhook: delivery dropped: sender closed').map((l) => l.obj.delivery);
    expect(dropped.sort()).toEqual(['no-owner:a:firing', 'no-owner:b:firing']);
    await clock.advance(120_000);
    expect(rx.received).toHaveLength(1);
    await s.close(); // twice is harmless
  });

  it('close() aborts an in-flight request', async () => {
    const clock = new FakeClock();
    const rx = await receiver(clock, () => 'hang');
    const { log, lines } = memoryLog();
    const s = sender({ url: rx.url }, clock, log);

    s.send(firing('a'));
    await until(() => rx.received.length === 1, 'the request');
    await s.close();

    expect(clock.pendingTimers).toBe(0);
    expect(lines.filter((l) => l.msg === 'webhook: delivery dropped: sender closed').map((l) => l.obj.delivery)).toEqual(['no-owner:a:firing']);
  });

  it('send() after close() does not throw and logs the drop', async () => {
    const clock = new FakeClock();
    const { log, lines } = memoryLog();
    const s = sender({ url: 'http://127.0.0.1:9/hook' }, clock, log);
    await s.close();
    expect(() => s.send(firing('late'))).not.toThrow();
    await s.idle();
    expect(lines.map((l) => l.obj.delivery)).toEqual(['no-owner:late:firing']);
  });
});

describe('parseWebhookOptions', () => {
  const fails = (value: unknown): ConfigError => {
    try {
      parseWebhookOptions(value, 'monitor: webhook');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return error as ConfigError;
    }
    throw new Error(`accepted ${JSON.stringify(value)}`);
  };

  it('accepts valid options and drops nothing', () => {
    expect(parseWebhookOptions({ url: 'https://alerts.example.com/hook', secret: 'k', timeout: '10s', attempts: 3 }, 'w')).toEqual({
      url: 'https://alerts.example.com/hook',
      secret: 'k',
      timeout: '10s',
      attempts: 3,
    });
    expect(parseWebhookOptions({ url: 'http://localhost:8080/' }, 'w')).toEqual({ url: 'http://localhost:8080/' });
  });

  it('names the field in each error', () => {
    expect(fails({}).message).toBe('monitor: webhook: url must be an http or https URL, got nothing');
    expect(fails({ url: 'ftp://files.example.com/x' }).message).toMatch(/^monitor: webhook: url must be an http or https URL, got .*scheme ftp/);
    expect(fails({ url: 'not a url' }).message).toMatch(/^monitor: webhook: url must be an http or https URL/);
    expect(fails({ url: 'https://x.example/#frag' }).message).toMatch(/^monitor: webhook: url must not have a #fragment/);
    expect(fails({ url: 'https://x.example/', attempts: 0 }).message).toMatch(/^monitor: webhook: attempts must be a positive integer/);
    expect(fails({ url: 'https://x.example/', attempts: 1.5 }).message).toMatch(/attempts must be a positive integer .*got number 1\.5/);
    expect(fails({ url: 'https://x.example/', attempts: '3' }).message).toMatch(/attempts must be a positive integer/);
    expect(fails({ url: 'https://x.example/', timeout: 'soon' }).message).toMatch(/^monitor: webhook: timeout: expected a duration/);
    expect(fails({ url: 'https://x.example/', timeout: 0 }).message).toMatch(/^monitor: webhook: timeout must be more than 0/);
    expect(fails({ url: 'https://x.example/', secret: '' }).message).toMatch(/^monitor: webhook: secret must be a non-empty string/);
    expect(fails({ url: 'https://x.example/', secret: 42 }).message).toMatch(/secret must be a non-empty string, got number/);
    expect(fails({ url: 'https://x.example/', retries: 3 }).message).toMatch(/^monitor: webhook: unknown option "retries"/);
    expect(fails('https://x.example/').message).toMatch(/^monitor: webhook: expected an object/);
    expect(fails(null).message).toMatch(/^monitor: webhook: expected an object/);
  });

  it('never shows the secret or URL credentials in an error', () => {
    expect(fails({ url: 'ftp://u:hunter2@x.example/' }).message).not.toContain('hunter2');
    expect(fails({ url: 'ht!tp://u:hunter2@x' }).message).not.toContain('hunter2');
    expect(fails({ url: 'https://u:hunter2@x.example/', attempts: -1 }).message).not.toContain('hunter2');
    expect(fails({ url: 'https://x.example/', secret: ['hunter2'] }).message).not.toContain('hunter2');
  });

  it('the constructor validates too', () => {
    expect(() => new WebhookSender({ url: 'mailto:ops@example.com' }, { clock: new FakeClock(), log: memoryLog().log })).toThrow(ConfigError);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.UTC(2026, 0, 1);
  it('reads seconds and HTTP dates, caps long waits, ignores junk', () => {
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter(' 12 ', now)).toBe(12_000);
    expect(parseRetryAfter(new Date(now + 30_000).toUTCString(), now)).toBe(30_000);
    expect(parseRetryAfter(new Date(now - 30_000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter('86400', now)).toBe(600_000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });
});

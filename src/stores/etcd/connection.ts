/**
 * Builds the `etcd3` client of one store handle, with fault handling chosen for a lease store:
 *
 * - Every unary call carries a deadline (`timeoutMs`): during an outage a call fails within that time
 *   instead of waiting for the server, and the store turns the failure into StoreUnavailableError.
 * - No retries inside the client (the global policy runs each call once): a Txn whose reply was lost
 *   may have committed, and a blind retry would misreport it (a won unique insert read as lost). The
 *   layers above retry with knowledge of what they asked.
 * - With several endpoints, a host that failed is skipped for a moment so the next calls go to the
 *   others; with one endpoint nothing is skipped, so calls work again as soon as the server answers.
 * - Connections and the watch stream reconnect with a short capped backoff (100 ms doubling to 2 s);
 *   gRPC keepalive pings find a dead TCP connection (a partition) that would otherwise look open forever.
 * - No `Lease` helper objects: their automatic keep-alive would keep a session alive without the session
 *   keeper, and their internal retries raise events nobody listens to. Leases are granted, renewed
 *   (one keep-alive per call, {@link keepAliveOnce}) and revoked with raw RPCs.
 */
import { readFile } from 'node:fs/promises';
import type { Etcd3, IOptions } from 'etcd3';
import { systemClock, type Clock } from '../../core/clock.js';
import { StoreUnavailableError } from '../../core/errors.js';
import type { EtcdUrl } from './url.js';
import { loadDriver } from '../../core/driver.js';

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type Policy = NonNullable<FaultHandling['global']>;
type Backoff = NonNullable<FaultHandling['watchBackoff']>;
type EtcdModule = typeof import('etcd3');

/** How long a failed host of a multi-endpoint cluster is skipped. */
const HOST_DOWN_MS = 1000;
/** Watch stream reconnection: first retry after 100 ms, doubling up to 2 s. */
const WATCH_BACKOFF_FIRST_MS = 50;
const WATCH_BACKOFF_MAX_MS = 2000;
/** gRPC reconnection: first retry after 100 ms, growing up to 2 s. */
const RECONNECT_BACKOFF_FIRST_MS = 100;
const RECONNECT_BACKOFF_MAX_MS = 2000;
/** gRPC keepalive: a ping every 10 s, the connection is dead after 5 s without an answer (etcd allows ≥ 5 s). */
const KEEPALIVE_TIME_MS = 10_000;
const KEEPALIVE_TIMEOUT_MS = 5_000;

export interface Connection {
  readonly client: Etcd3;
  readonly etcd: EtcdModule;
}

/** Loads the driver (lazily: only users of etcd load it) and builds the client. Does not connect yet. */
export async function connect(url: EtcdUrl, clock: Clock): Promise<Connection> {
  const etcd = await loadDriver('etcd3', 'etcd store', () => import('etcd3'));
  const credentials = url.tls ? await readTlsFiles(url) : undefined;
  const multiHost = url.endpoints.length > 1;
  const options: IOptions = {
    hosts: url.endpoints.map((e) => `${url.tls ? 'https' : 'http'}://${e}`),
    ...(credentials ? { credentials } : {}),
    ...(url.auth ? { auth: { username: url.auth.username, password: url.auth.password } } : {}),
    // Streams (watch, keep-alive) get their own deadline where they need one.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: grpcDeadline(url.timeoutMs) }),
    grpcOptions: {
      // Own TCP connections per handle: two handles in one process behave like two nodes, and one
      // handle's reconnection backoff does not hold back another.
      'grpc.use_local_subchannel_pool': 1,
      // gRPC's default reconnect backoff grows to 120 s; after an outage we want to be back in seconds.
      'grpc.initial_reconnect_backoff_ms': RECONNECT_BACKOFF_FIRST_MS,
      'grpc.max_reconnect_backoff_ms': RECONNECT_BACKOFF_MAX_MS,
      'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
      'grpc.keepalive_permit_without_calls': 1,
    },
    faultHandling: {
      global: runOnce(),
      host: () => (multiHost ? skipAfterFailure(clock, etcd.isRecoverableError) : runOnce()),
      watchBackoff: cappedBackoff(WATCH_BACKOFF_FIRST_MS),
    },
  };
  return { client: new etcd.Etcd3(options), etcd };
}

/**
 * One lease keep-alive: opens a keep-alive stream, sends the lease id, reads one answer and ends the
 * stream. Resolves to the TTL etcd answered in seconds: 0 means the lease is gone (expired or revoked).
 * etcd answers a keep-alive of an expired lease only once its revocation is done, so an expired lease is
 * never extended. The stream carries its own deadline, so a dead server makes it fail in `timeoutMs`.
 */
/**
 * A gRPC deadline: an absolute time that grpc-js compares with the real wall clock, so it comes from the
 * system clock, never from the injected one — a node whose clock is skewed (or fake, in tests) would
 * otherwise send calls that expired before they left (found by the chaos runs: a node skewed by −3 s
 * could not open the store, "Deadline exceeded after 0.000s").
 */
function grpcDeadline(timeoutMs: number): number {
  return systemClock.now() + timeoutMs;
}

export async function keepAliveOnce(client: Etcd3, lease: string, timeoutMs: number): Promise<number> {
  const stream = await client.leaseClient.leaseKeepAlive({ deadline: grpcDeadline(timeoutMs) });
  return new Promise<number>((resolve, reject) => {
    let settled = false;
    stream.on('data', (response) => {
      if (settled) return;
      settled = true;
      // Ending our side lets etcd close the stream cleanly (status OK), no cancellation error.
      stream.end();
      resolve(Number(response.TTL));
    });
    stream.on('error', (error) => {
      if (settled) return;
      settled = true;
      reject(error);
    });
    stream.on('end', () => {
      if (settled) return;
      settled = true;
      reject(new Error('lease keep-alive stream ended without an answer'));
    });
    stream.write({ ID: lease });
  });
}

async function readTlsFiles(url: EtcdUrl): Promise<NonNullable<IOptions['credentials']>> {
  const read = async (name: string, file: string | undefined): Promise<Buffer | undefined> => {
    if (file === undefined) return undefined;
    try {
      return await readFile(file);
    } catch (error) {
      throw new StoreUnavailableError(`etcd store ${JSON.stringify(url.shown)}: cannot read ${name} ${JSON.stringify(file)}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  };
  const [rootCertificate, certChain, privateKey] = await Promise.all([
    read('caFile', url.caFile),
    read('certFile', url.certFile),
    read('keyFile', url.keyFile),
  ]);
  return {
    // Without caFile, gRPC verifies the server against the system's root certificates.
    rootCertificate: rootCertificate as Buffer,
    ...(certChain ? { certChain } : {}),
    ...(privateKey ? { privateKey } : {}),
  };
}

const noEvent = () => ({ dispose: () => undefined });

/** A policy that runs the call once and lets its error through. */
function runOnce(): Policy {
  return asPolicy({
    onSuccess: noEvent,
    onFailure: noEvent,
    execute: async (fn, signal) => fn({ signal: signal ?? new AbortController().signal }),
  });
}

/**
 * A host policy for several endpoints: after a network-level failure the host is skipped for
 * HOST_DOWN_MS. A skipped call throws before reaching the host, which makes the client try the next host.
 */
function skipAfterFailure(clock: Clock, isRecoverable: (error: Error) => boolean): Policy {
  let downUntil = -Infinity;
  return asPolicy({
    onSuccess: noEvent,
    onFailure: noEvent,
    execute: async (fn, signal) => {
      if (clock.monotonic() < downUntil) throw new HostSkippedError();
      try {
        return await fn({ signal: signal ?? new AbortController().signal });
      } catch (error) {
        if (error instanceof Error && isRecoverable(error)) downUntil = clock.monotonic() + HOST_DOWN_MS;
        throw error;
      }
    },
  });
}

/** `_altReturn` is a type-only member of cockatiel's IPolicy ("will not actually be defined"). */
function asPolicy(policy: Omit<Policy, '_altReturn'>): Policy {
  return policy as Policy;
}

class HostSkippedError extends Error {
  constructor() {
    super(`host skipped for ${HOST_DOWN_MS}ms after a failure`);
  }
}

function cappedBackoff(ms: number): Backoff {
  return { duration: ms, next: () => cappedBackoff(Math.min(ms * 2, WATCH_BACKOFF_MAX_MS)) };
}

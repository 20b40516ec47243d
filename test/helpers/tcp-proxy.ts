/**
 * A TCP proxy between nodes and a store server, for fault injection: `cut()` destroys every open
 * connection and refuses new ones until `restore()`, like a network partition between this client and the
 * server (the server side sees the connections close, so it is closer to a connection reset).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpProxy {
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #refusing = false;
  port = 0;

  readonly #listenHost: string;

  /** `listenHost`: where the proxy listens (default loopback; the chaos harness uses its own netns veth). */
  constructor(targetHost: string, targetPort: number, listenHost = '127.0.0.1') {
    this.#target = { host: targetHost, port: targetPort };
    this.#listenHost = listenHost;
  }

  async start(): Promise<number> {
    this.#server = createServer((client) => {
      if (this.#refusing) {
        client.destroy();
        return;
      }
      const upstream = connect(this.#target.port, this.#target.host);
      // TCP_NODELAY both ways, as real proxies (HAProxy, ProxySQL) set it: with Nagle on, a reply relayed
      // in two writes waits for the peer's delayed ACK (40 ms on Linux) — every MySQL batch did, which
      // made the MySQL chaos nodes ~50× slower than the same calls made directly.
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => (this.#server as Server).listen(0, this.#listenHost, resolve));
    const address = this.#server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
    return this.port;
  }

  /** Drops every connection and refuses new ones. */
  cut(): void {
    this.#refusing = true;
    for (const s of this.#sockets) s.destroy();
  }

  restore(): void {
    this.#refusing = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}

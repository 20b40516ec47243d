/**
 * A stand-in for someone else's HTTP API that accepts a fencing token as a header, the way a storage
 * service or an internal API can protect itself from a paused-then-woken client: it remembers the
 * greatest `Fencing-Token` it has seen and refuses (409) any write carrying a smaller one.
 *
 *   POST /fence    header Fencing-Token: N        → 204, or 409 if N is stale
 *   PUT  /report   header Fencing-Token: N, body  → 204, or 409 if N is stale
 *   GET  /report                                 → { token, body, accepted, refused }
 */
import { createServer, type Server } from 'node:http';

export interface FencedApi {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

export async function startFencedApi(port = 0): Promise<FencedApi> {
  let greatest = 0n;
  let report = '';
  let accepted = 0;
  let refused = 0;
  const server = createServer((req, res) => {
    const raw = req.headers['fencing-token'];
    let chunks = '';
    req.on('data', (chunk: Buffer) => (chunks += chunk.toString()));
    req.on('end', () => {
      if (req.method === 'GET' && req.url === '/report') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: greatest.toString(), body: report, accepted, refused }));
        return;
      }
      if (typeof raw !== 'string' || !/^\d+$/.test(raw) || !(req.method === 'POST' && req.url === '/fence') && !(req.method === 'PUT' && req.url === '/report')) {
        res.writeHead(400).end('a Fencing-Token header and POST /fence or PUT /report expected');
        return;
      }
      const token = BigInt(raw);
      // The whole protection: never accept a token smaller than one already seen.
      if (token < greatest) {
        refused += 1;
        res.writeHead(409).end(`stale fencing token ${token} (greatest seen ${greatest})`);
        return;
      }
      greatest = token;
      if (req.url === '/report') {
        report = chunks;
        accepted += 1;
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : port}`;
  return { url, server, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

// Run directly: serve until Ctrl-C.
if (import.meta.url === `file://${process.argv[1]}`) {
  const api = await startFencedApi(Number(process.env.PORT ?? 8787));
  console.log(`fenced API on ${api.url}`);
}

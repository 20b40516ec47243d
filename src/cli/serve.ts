/** `baton serve`: a standalone monitor (HTTP API, event stream, /metrics, dashboard, alerts). */
import type { Command } from 'commander';
import { Option } from 'commander';
import { openExistingCluster } from './existing-cluster.js';
import { relayProviders } from './relay.js';

interface ServeOptions {
  store: string;
  cluster: string;
  listen: string;
  token?: string;
  tokenLabel: string;
  insecureNoToken?: boolean;
  poll: string;
  alerts: boolean;
  webhook?: string;
  webhookSecret?: string;
  relay: string[];
  relayAmqp?: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run a monitor: HTTP JSON API, server-sent events, Prometheus /metrics, a live dashboard, and alerts (decided by one monitor of the cluster)')
    .requiredOption('--store <url>', 'store URL, e.g. postgres://user@host/db')
    .option('--cluster <name>', 'cluster name', 'default')
    .option('--listen <host:port>', 'address of the HTTP server; outside loopback a token is required', '127.0.0.1:7070')
    .addOption(new Option('--token <token>', 'bearer token of the API and page (≥ 16 characters); default: generated and printed once').env('BATON_TOKEN'))
    .option('--token-label <label>', 'who write actions with this token are recorded as (the events show it)', 'token')
    .option('--insecure-no-token', 'serve reads without a token (loopback addresses only; write actions stay refused)')
    .option('--poll <duration>', 'how often the status is read from the store', '500ms')
    .option('--no-alerts', 'never decide alerts in this monitor (it still shows those another monitor decides)')
    .addOption(new Option('--webhook <url>', 'POST raised and resolved alerts to this URL').env('BATON_WEBHOOK_URL'))
    .addOption(new Option('--webhook-secret <secret>', 'HMAC-SHA256 key signing webhook requests (X-Baton-Signature)').env('BATON_WEBHOOK_SECRET'))
    .option('--relay <file>', 'also watch this relay topology file: depths, lags and dead letters in status, metrics, page and alerts (repeatable)', (value: string, all: string[]) => [...all, value], [])
    .addOption(new Option('--relay-amqp <url>', 'broker of the watched relays').env('BATON_RELAY_AMQP'))
    .action(async (opts: ServeOptions) => {
      const { startMonitor } = await import('../monitor/monitor.js');
      const store = await openExistingCluster(opts.store, opts.cluster);
      try {
        const monitor = await startMonitor({
          store,
          listen: opts.listen,
          ...(opts.insecureNoToken ? { token: false as const } : opts.token !== undefined ? { token: opts.token } : {}),
          pollEvery: opts.poll,
          tokenLabel: opts.tokenLabel,
          relays: await relayProviders(opts.relay, opts.relayAmqp),
          alerts: opts.alerts ? (opts.webhook ? { webhook: { url: opts.webhook, ...(opts.webhookSecret ? { secret: opts.webhookSecret } : {}) } } : {}) : false,
        });
        // The generated token is shown this once (it is never logged); a given one is not repeated.
        const generated = !opts.insecureNoToken && opts.token === undefined;
        process.stdout.write(
          generated
            ? `baton monitor of cluster "${opts.cluster}" on ${monitor.url}\nopen ${monitor.url}?token=${monitor.token}\napi: Authorization: Bearer ${monitor.token}\n`
            : `baton monitor of cluster "${opts.cluster}" on ${monitor.url} (${monitor.token === null ? 'no token: reads open on loopback' : 'token from --token / BATON_TOKEN'})\n`,
        );
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await monitor.close();
      } finally {
        await store.close();
      }
    });
}

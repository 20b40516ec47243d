/**
 * Peer: the `etcd3` package's Election (lease + campaign). A child campaigns; when elected it says
 * `owner` and "runs" a tick every 250 ms (`run`) while it believes it leads. On SIGTERM it resigns.
 * A campaign error (e.g. its lease expired while paused) makes it say `lost` and campaign again.
 */
import type { ChildGroup } from '../children.js';
import type { Say } from '../util.js';

export interface ElectionChildConfig {
  readonly id: string;
  readonly election: string;
  /** Lease TTL in seconds; undefined = the package default (60 s). */
  readonly ttl?: number;
}

export async function runElectionChild(c: ElectionChildConfig, say: Say): Promise<void> {
  const { Etcd3 } = await import('etcd3');
  const client = new Etcd3({ hosts: '127.0.0.1:2379' });
  const election = c.ttl === undefined ? client.election(c.election) : client.election(c.election, c.ttl);
  let leading = false;
  let campaign: ReturnType<typeof election.campaign> | undefined;
  const ticker = setInterval(() => {
    if (leading) say({ type: 'run' });
  }, 250);
  const start = () => {
    campaign = election.campaign(c.id);
    campaign.on('elected', () => {
      leading = true;
      say({ type: 'owner' });
    });
    campaign.on('error', () => {
      if (leading) say({ type: 'lost', reason: 'campaign error' });
      leading = false;
      setTimeout(start, 500);
    });
  };
  process.once('SIGTERM', () => {
    leading = false;
    clearInterval(ticker);
    void (campaign?.resign() ?? Promise.resolve())
      .catch(() => undefined)
      .finally(() => {
        client.close();
        process.exit(0);
      });
  });
  start();
  say({ type: 'ready' });
}

export function electionFleet(election: string, ttl: number | undefined) {
  return (group: ChildGroup, id: string) => group.spawn(id, { kind: 'etcd-election', election, ...(ttl === undefined ? {} : { ttl }) });
}

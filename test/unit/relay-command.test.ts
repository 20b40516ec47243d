import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { relayMetricsText, runRelayCommand } from '../../src/relay/command.js';
import type { RelayStatus } from '../../src/relay/relay-node.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-relay-command-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const status: RelayStatus = {
  node: 'b1',
  level: 'B',
  state: 'running',
  brokerConnected: true,
  databaseUp: true,
  lastError: null,
  publisher: true,
  applied: 10,
  forwarded: 4,
  published: 4,
  deadLettered: 1,
  lagMs: 12,
  outboxDepth: 0,
  heldDepth: 0,
  parkedDepth: 2,
  queueDepth: null,
  deadLetterDepth: null,
  unroutableDepth: null,
};

describe('baton relay command', () => {
  it('refuses to start without keys, with an unreadable file or an unknown node, before connecting anything', async () => {
    const file = join(dir, 'relay.yaml');
    writeFileSync(file, 'name: t\nlevels: [{ name: A, nodes: [{ id: a1, database: "postgres://u@127.0.0.1:1/x" }] }]\nstatements: { p: { sql: "SELECT 1" } }\n');
    const keys = { BATON_RELAY_KEYS: 'k1=0123456789abcdef0123456789abcdef' };
    await expect(runRelayCommand({ config: file, env: {} })).rejects.toThrow(/BATON_RELAY_KEYS: must be set/);
    await expect(runRelayCommand({ config: join(dir, 'missing.yaml'), env: keys })).rejects.toThrow(ConfigError);
    await expect(runRelayCommand({ config: file, env: keys, nodes: ['zz'] })).rejects.toThrow(/no node "zz"/);
    await expect(runRelayCommand({ config: file, env: { BATON_RELAY_KEYS: 'k1=short' } })).rejects.toThrow(/at least 32 bytes/);
  });

  it('renders statuses as Prometheus text, leaving out what could not be read', () => {
    const text = relayMetricsText([status]);
    expect(text).toContain('# TYPE baton_relay_lag_ms gauge');
    expect(text).toContain('baton_relay_lag_ms{node="b1",level="B"} 12');
    expect(text).toContain('baton_relay_outbox_depth{node="b1",level="B"} 0');
    expect(text).toContain('baton_relay_parked_depth{node="b1",level="B"} 2');
    expect(text).toContain('baton_relay_up{node="b1",level="B"} 1');
    expect(text).toContain('baton_relay_applied_total{node="b1",level="B"} 10');
    expect(text).not.toContain('baton_relay_dead_letter_depth{');
    expect(relayMetricsText([{ ...status, databaseUp: false }])).toContain('baton_relay_up{node="b1",level="B"} 0');
  });
});

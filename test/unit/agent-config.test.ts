/** The agent's config file: every error names the file, the field's path and what was expected. */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { parseYamlText } from '../../src/core/config-file.js';
import { parseAgentConfig } from '../../src/agent/config.js';

const parse = async (yaml: string) => parseAgentConfig(await parseYamlText(yaml, 'baton.yaml'), 'baton.yaml');
const errorOf = async (yaml: string): Promise<string> => {
  try {
    await parse(yaml);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
};

afterEach(() => {
  delete process.env.AGENT_TEST_STORE;
});

describe('agent config', () => {
  it('accepts a full config: shell string and argv commands, scheduler options, monitor and alerts', async () => {
    process.env.AGENT_TEST_STORE = 'postgres://u:secret@db/test';
    const config = await parse(`
store: \${AGENT_TEST_STORE}
cluster: ops
node: { id: web-1, labels: { region: eu } }
ttl: 5s
killGrace: 3s
tasks:
  backup:
    description: nightly dump
    cron: "0 3 * * *"
    timezone: Europe/Paris
    command: ./backup.sh --full
    env: { TARGET: s3, LEVEL: 9 }
    cwd: /srv
    timeout: 1h
    retries: 2
    overlap: skip
    misfire: { catchUp: 3 }
  sync:
    every: 30s
    mode: mutex
    command: [php, artisan, sync]
    killGrace: 20s
monitor: { listen: "127.0.0.1:0", token: "0123456789abcdef0123" }
alerts: { webhook: { url: "https://hooks.example/x" } }
`);
    expect(config.store).toBe('postgres://u:secret@db/test');
    // Kept out of the commands' environment.
    expect(config.secretEnv).toEqual(['AGENT_TEST_STORE']);
    expect(config.cluster).toBe('ops');
    expect(config.node).toEqual({ id: 'web-1', labels: { region: 'eu' } });
    const backup = config.tasks.get('backup')!;
    expect(backup.command).toEqual({ shell: '/bin/sh', script: './backup.sh --full' });
    expect(backup.env).toEqual({ TARGET: 's3', LEVEL: '9' });
    expect(backup.killGraceMs).toBe(3000);
    expect(backup.definition.policy.timeoutMs).toBe(3_600_000);
    expect(backup.definition.policy.misfire).toEqual({ kind: 'catch-up', max: 3 });
    const sync = config.tasks.get('sync')!;
    expect(sync.command).toEqual({ argv: ['php', 'artisan', 'sync'] });
    expect(sync.definition.mode.kind).toBe('mutex');
    expect(sync.killGraceMs).toBe(20_000);
    expect(config.monitor).toEqual({ listen: '127.0.0.1:0', token: '0123456789abcdef0123' });
  });

  it('names the exact field of each error', async () => {
    const message = await errorOf(`
store: sqlite:./x.db
tasks:
  backup:
    every: 1m
    command: ./backup.sh
    timeout: soon
    retries: -1
    overlap: sometimes
    comand: typo
`);
    expect(message).toContain('baton.yaml: tasks.backup.timeout: expected a duration such as "30s"');
    expect(message).toContain('got "soon"');
    expect(message).toMatch(/baton\.yaml: tasks\.backup\.retries: .*>=0/);
    expect(message).toMatch(/baton\.yaml: tasks\.backup\.overlap: .*"skip"\|"queue"\|"allow"/);
    expect(message).toContain('baton.yaml: tasks.backup.comand: unknown field');
  });

  it('rejects a missing command, a missing or double schedule, a bad argv item and a bad task name', async () => {
    expect(await errorOf('store: "memory:"\ntasks:\n  a:\n    every: 1s\n')).toContain('baton.yaml: tasks.a.command:');
    expect(await errorOf('store: "memory:"\ntasks:\n  a:\n    command: "true"\n')).toContain('baton.yaml: tasks.a: expected exactly one of every, cron or at, got none');
    expect(await errorOf('store: "memory:"\ntasks:\n  a:\n    every: 1s\n    cron: "* * * * *"\n    command: "true"\n')).toContain('got every and cron');
    expect(await errorOf('store: "memory:"\ntasks:\n  a:\n    every: 1s\n    command: [ls, 3]\n')).toContain('baton.yaml: tasks.a.command');
    expect(await errorOf('store: "memory:"\ntasks:\n  "bad name":\n    every: 1s\n    command: "true"\n')).toContain('expected a task name');
    expect(await errorOf('store: "memory:"\ntasks: {}\n')).toContain('baton.yaml: tasks: expected at least one task');
  });

  it('passes the scheduler\'s own checks through with the task\'s path', async () => {
    expect(await errorOf('store: "memory:"\ntasks:\n  a:\n    cron: "61 * * * *"\n    command: "true"\n')).toMatch(/^baton\.yaml: tasks\.a: .*cron/);
    expect(await errorOf('store: "memory:"\ntasks:\n  a:\n    every: 1s\n    jitter: 2s\n    command: "true"\n')).toMatch(/^baton\.yaml: tasks\.a: .*jitter/);
    expect(await errorOf('store: "memory:"\ntasks:\n  a:\n    every: 1s\n    dependsOn: b\n    command: "true"\n')).toMatch(/^baton\.yaml: tasks: .*"b"/);
  });

  it('requires the environment variables a secret field references, and names the field', async () => {
    const message = await errorOf('store: ${AGENT_TEST_STORE}\ntasks:\n  a:\n    every: 1s\n    command: "true"\n');
    expect(message).toBe('baton.yaml: store: environment variable AGENT_TEST_STORE is not set (referenced as ${AGENT_TEST_STORE})');
  });

  it('does not interpolate commands: ${HOME} is the shell\'s', async () => {
    const config = await parse('store: "memory:"\ntasks:\n  a:\n    every: 1s\n    command: echo ${HOME}\n');
    expect(config.tasks.get('a')!.command).toEqual({ shell: '/bin/sh', script: 'echo ${HOME}' });
  });

  it('reports YAML syntax errors with the file', async () => {
    await expect(parseYamlText('tasks: [', 'baton.yaml')).rejects.toThrow(/^baton\.yaml: not valid YAML/);
  });
});

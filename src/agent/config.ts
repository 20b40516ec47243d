/**
 * The agent's config file (`baton agent --config baton.yaml`, YAML or JSON): the store, the cluster, this
 * node, the tasks (shell commands on a schedule) and the optional monitor and alerts.
 *
 * Validation happens in two steps, both before anything runs: the zod schema checks every field's type
 * and range (an error names the file, the field's path and what was expected), then each task goes
 * through the scheduler's own `defineTask` (cron syntax, jitter below the interval, dependencies…), whose
 * message is prefixed with the task's path.
 *
 * Secrets: `${NAME}` in `store`, `monitor.token`, `alerts.webhook.url` and `alerts.webhook.secret` is
 * replaced by the environment variable NAME (an unset one is an error naming the field), so the file can
 * be shared and reviewed without credentials. Nothing else is interpolated: a command's `${HOME}` is the
 * shell's business. Resolved secrets are never logged: print the store with `redactUrl`.
 */
import { z } from 'zod';
import { parseWithSchema, parseYamlText, readConfigText } from '../core/config-file.js';
import { describe as describeValue, parseDuration, type Duration } from '../core/duration.js';
import { BatonError, ConfigError } from '../core/errors.js';
import { defineTask, type TaskDefinition, type TaskOptions } from '../scheduler/task.js';
import { validateTaskSet } from '../scheduler/task-set.js';

/** How a task's command is run: an argv (no shell), or a string given to `shell -c`. */
export type AgentCommand = { readonly argv: readonly string[] } | { readonly shell: string; readonly script: string };

/** Scheduler options of an agent task: every mode but `dispatch`. */
export type AgentTaskOptions = TaskOptions & { readonly mode?: Exclude<TaskOptions['mode'], 'dispatch'> };

/** One task of the config, validated. */
export interface AgentTask {
  readonly name: string;
  readonly description: string | undefined;
  readonly command: AgentCommand;
  /** Added to the agent's environment for the command. */
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string | undefined;
  /** Between SIGTERM and SIGKILL of the command's process group when a run is stopped. */
  readonly killGraceMs: number;
  /** The scheduler options (schedule, mode, timeout, retries, overlap, misfire…) for `cluster.task`. */
  readonly options: AgentTaskOptions;
  /** The task's definition as the scheduler sees it (its fingerprint is what other nodes compare). */
  readonly definition: TaskDefinition;
  /** Canonical JSON of everything in the file about this task: equal means unchanged on reload. */
  readonly fingerprint: string;
}

export interface AgentConfig {
  /** The file it came from, for messages. */
  readonly source: string;
  /** The store URL with secrets resolved: never log it (use `redactUrl`). */
  readonly store: string;
  readonly cluster: string;
  readonly node: { readonly id?: string; readonly labels: Readonly<Record<string, string>> };
  readonly ttl: Duration | undefined;
  readonly tasks: ReadonlyMap<string, AgentTask>;
  readonly monitor: { readonly listen: string; readonly token: string | false | undefined } | undefined;
  readonly alerts: { readonly webhook?: { readonly url: string; readonly secret?: string } } | undefined;
  /**
   * The environment variables the secret fields reference: kept out of the commands' environment (a
   * command gets them only when its task's `env` sets them), so a script cannot print the store's password.
   */
  readonly secretEnv: readonly string[];
}

/** Default grace between SIGTERM and SIGKILL: long enough for a script's cleanup trap, short enough for a deploy. */
export const DEFAULT_KILL_GRACE = '10s';

const DURATION_HINT = 'a duration such as "30s", "5m", "1h" or a number of milliseconds';

const duration = z.custom<Duration>((value) => {
  try {
    parseDuration(value, 'duration');
    return typeof value === 'string' || typeof value === 'number';
  } catch {
    return false;
  }
}, { error: (issue) => `expected ${DURATION_HINT}, got ${describeValue(issue.input)}` });

const ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** `${NAME}` → the environment variable NAME; an unset one is an issue at this field. */
const withEnv = z.string().min(1).transform((value, ctx) =>
  value.replace(ENV_REFERENCE, (_whole, name: string) => {
    const resolved = process.env[name];
    if (resolved === undefined || resolved === '') {
      ctx.addIssue({ code: 'custom', message: `environment variable ${name} is not set (referenced as \${${name}})` });
      return '';
    }
    return resolved;
  }),
);

const TASK_NAME = /^[A-Za-z0-9][\w.:-]{0,127}$/;
const CLUSTER_NAME = /^[A-Za-z0-9][\w.-]{0,63}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const taskSchema = z
  .strictObject({
    description: z.string().max(1000).optional(),
    command: z.union([z.string().min(1), z.array(z.string()).min(1)], {
      error: 'expected a shell command (string) or an argv (non-empty list of strings)',
    }),
    shell: z.string().min(1).optional(),
    env: z.record(z.string().regex(ENV_NAME, 'expected an environment variable name'), z.union([z.string(), z.number(), z.boolean()]).transform(String)).optional(),
    cwd: z.string().min(1).optional(),
    killGrace: duration.optional(),
    // Schedule (exactly one of every / cron / at).
    every: duration.optional(),
    cron: z.string().min(1).optional(),
    timezone: z.string().min(1).optional(),
    at: z.string().min(1).optional(),
    // Placement: every mode but dispatch, which needs code on both sides of the queue.
    mode: z.enum(['singleton', 'preferred', 'mutex', 'round-robin', 'broadcast', 'sharded']).optional(),
    prefer: z.union([z.record(z.string(), z.string()), z.array(z.record(z.string(), z.string())).min(1)]).optional(),
    failbackAfter: duration.optional(),
    shards: z.int().min(1).max(1024).optional(),
    // Run options (docs/scheduling.md).
    timeout: duration.optional(),
    retries: z.int().min(0).max(100).optional(),
    retryBackoff: z.union([duration, z.strictObject({ initial: duration, max: duration })]).optional(),
    overlap: z.enum(['skip', 'queue', 'allow']).optional(),
    overlapLimit: z.int().min(1).max(1000).optional(),
    misfire: z.union([z.enum(['run-once', 'skip']), z.strictObject({ catchUp: z.int().min(1).max(1000) })]).optional(),
    misfireGrace: duration.optional(),
    jitter: duration.optional(),
    history: z.int().min(1).max(100_000).optional(),
    concurrency: z.int().min(1).max(1000).optional(),
    concurrencyGroup: z.string().optional(),
    dependsOn: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    dependencyTimeout: duration.optional(),
  })
  .superRefine((task, ctx) => {
    const given = (['every', 'cron', 'at'] as const).filter((key) => task[key] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `expected exactly one of every, cron or at, got ${given.length === 0 ? 'none' : given.join(' and ')}` });
    }
    if (task.shell !== undefined && typeof task.command !== 'string') {
      ctx.addIssue({ code: 'custom', path: ['shell'], message: 'applies only to a command given as a string (an argv runs without a shell)' });
    }
  });

const configSchema = z.strictObject({
  store: withEnv,
  cluster: z.string().regex(CLUSTER_NAME, "expected 1–64 letters, digits, '_', '.' or '-' starting with a letter or digit").default('default'),
  node: z
    .strictObject({
      id: z.string().regex(/^[\w.:@-]{1,128}$/, "expected 1–128 letters, digits, '_', '.', ':', '@' or '-'").optional(),
      labels: z.record(z.string(), z.string()).optional(),
    })
    .optional(),
  ttl: duration.optional(),
  killGrace: duration.optional(),
  tasks: z.record(z.string().regex(TASK_NAME, "expected a task name: 1–128 letters, digits, '_', '.', ':' or '-'"), taskSchema).refine(
    (tasks) => Object.keys(tasks).length > 0,
    'expected at least one task',
  ),
  monitor: z
    .strictObject({
      listen: z.string().default('127.0.0.1:7070'),
      token: withEnv.optional(),
      insecureNoToken: z.boolean().optional(),
    })
    .optional(),
  alerts: z
    .strictObject({
      webhook: z.strictObject({ url: withEnv, secret: withEnv.optional() }).optional(),
    })
    .optional(),
});

type RawConfig = z.infer<typeof configSchema>;
type RawTask = z.infer<typeof taskSchema>;

/** The fields of a task that are not scheduler options. */
const AGENT_FIELDS = new Set(['description', 'command', 'shell', 'env', 'cwd', 'killGrace']);

/**
 * Validates a parsed config (a YAML/JSON document). `source` names the file in messages.
 * @throws ConfigError listing each problem as `source: field.path: what was expected`.
 */
export function parseAgentConfig(value: unknown, source: string): AgentConfig {
  const raw: RawConfig = parseWithSchema(configSchema, value, source);
  const defaultGrace = raw.killGrace ?? DEFAULT_KILL_GRACE;
  const tasks = new Map<string, AgentTask>();
  for (const [name, task] of Object.entries(raw.tasks)) tasks.set(name, toAgentTask(name, task, defaultGrace, source));
  try {
    validateTaskSet(new Map([...tasks].map(([name, task]) => [name, task.definition])));
  } catch (error) {
    throw new ConfigError(`${source}: tasks: ${(error as Error).message}`, { cause: error });
  }
  const monitor = raw.monitor;
  return {
    source,
    store: raw.store,
    cluster: raw.cluster,
    node: { ...(raw.node?.id !== undefined ? { id: raw.node.id } : {}), labels: raw.node?.labels ?? {} },
    ttl: raw.ttl,
    tasks,
    monitor: monitor ? { listen: monitor.listen, token: monitor.insecureNoToken ? false : monitor.token } : undefined,
    secretEnv: referencedEnv(value),
    alerts: raw.alerts?.webhook ? { webhook: { url: raw.alerts.webhook.url, ...(raw.alerts.webhook.secret ? { secret: raw.alerts.webhook.secret } : {}) } } : raw.alerts ? {} : undefined,
  };
}

/** The names `${NAME}` references in the secret fields of a (valid) document. */
function referencedEnv(document: unknown): string[] {
  const doc = document as { store?: unknown; monitor?: { token?: unknown }; alerts?: { webhook?: { url?: unknown; secret?: unknown } } };
  const fields = [doc.store, doc.monitor?.token, doc.alerts?.webhook?.url, doc.alerts?.webhook?.secret];
  return [...new Set(fields.filter((f): f is string => typeof f === 'string').flatMap((f) => [...f.matchAll(ENV_REFERENCE)].map((m) => m[1] as string)))];
}

function toAgentTask(name: string, task: RawTask, defaultGrace: Duration, source: string): AgentTask {
  const options = Object.fromEntries(Object.entries(task).filter(([key, v]) => !AGENT_FIELDS.has(key) && v !== undefined)) as AgentTaskOptions;
  let definition: TaskDefinition;
  try {
    // The scheduler's own checks (cron syntax, jitter below the interval…), with a placeholder handler.
    definition = defineTask(name, options, () => undefined);
  } catch (error) {
    if (!(error instanceof BatonError)) throw error;
    throw new ConfigError(`${source}: tasks.${name}: ${error.message}`, { cause: error });
  }
  const command: AgentCommand =
    typeof task.command === 'string' ? { shell: task.shell ?? '/bin/sh', script: task.command } : { argv: task.command };
  const killGraceMs = parseDuration(task.killGrace ?? defaultGrace, `tasks.${name}.killGrace`);
  const env = task.env ?? {};
  return {
    name,
    description: task.description,
    command,
    env,
    cwd: task.cwd,
    killGraceMs,
    options,
    definition,
    fingerprint: JSON.stringify({ command, env, cwd: task.cwd ?? null, killGraceMs, description: task.description ?? null, declaration: definition.fingerprint }),
  };
}

/** Reads, parses and validates a config file. @throws ConfigError naming the file and the field. */
export async function loadAgentConfig(path: string): Promise<AgentConfig> {
  return parseAgentConfig(await parseYamlText(await readConfigText(path), path), path);
}

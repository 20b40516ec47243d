/**
 * Child processes of the bench (bench/node-process.ts run with tsx): spawned, read as JSON lines, and
 * always killed at the end — `killAllChildren()` runs in run.ts's finally and on process exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** What a child prints, one JSON object per line. `at` is the child's Date.now() (same host, same clock). */
export interface ChildMessage {
  readonly type: string;
  readonly node: string;
  readonly at: number;
  readonly [field: string]: unknown;
}

export interface Child {
  readonly id: string;
  readonly process: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<void>;
  ready: boolean;
  alive: boolean;
  stopped: boolean;
}

const NODE_PROCESS = fileURLToPath(new URL('./node-process.ts', import.meta.url));
const all = new Set<Child>();

/** Kills every child still running (SIGCONT first for a stopped one) and waits at most 3 s for them. */
export async function killAllChildren(): Promise<void> {
  const waits: Promise<void>[] = [];
  for (const child of all) {
    if (child.process.exitCode === null && child.process.signalCode === null) {
      try {
        child.process.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
    waits.push(child.exited);
  }
  await Promise.race([Promise.all(waits), new Promise((resolve) => setTimeout(resolve, 3000))]);
  all.clear();
}

process.once('exit', () => {
  for (const child of all) if (child.process.exitCode === null) child.process.kill('SIGKILL');
});

/** A group of children sharing one message log and waiters. */
export class ChildGroup {
  readonly messages: ChildMessage[] = [];
  readonly children: Child[] = [];
  readonly #listeners = new Set<(m: ChildMessage) => void>();

  /** Starts `bench/node-process.ts` with `config` (JSON) and resolves when it prints `ready`. */
  async spawn(id: string, config: Record<string, unknown>, readyTimeoutMs = 30_000): Promise<Child> {
    const proc = spawn(process.execPath, ['--import', 'tsx', NODE_PROCESS, JSON.stringify({ ...config, id })], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BATON_LOG_LEVEL: 'silent' },
    });
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    const child: Child = { id, process: proc, pid: proc.pid ?? 0, exited, ready: false, alive: true, stopped: false };
    all.add(child);
    void exited.then(() => {
      child.alive = false;
      all.delete(child);
    });
    this.children.push(child);
    let stderr = '';
    proc.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let message: ChildMessage;
      try {
        message = JSON.parse(line) as ChildMessage;
      } catch {
        return;
      }
      if (message.type === 'ready') child.ready = true;
      this.messages.push(message);
      for (const listener of [...this.#listeners]) listener(message);
    });
    try {
      await this.waitFor(`${id} ready`, (m) => m.type === 'ready' && m.node === id, readyTimeoutMs, () => !child.alive);
    } catch (error) {
      proc.kill('SIGKILL');
      throw new Error(`${(error as Error).message}${stderr ? `\n--- stderr of ${id}:\n${stderr}` : ''}`);
    }
    return child;
  }

  /** Resolves with the first message (from now on) passing `test`; rejects after `timeoutMs` or if `abort()` turns true. */
  waitFor(what: string, test: (m: ChildMessage) => boolean, timeoutMs: number, abort?: () => boolean): Promise<ChildMessage> {
    return new Promise((resolve, reject) => {
      const done = (fn: () => void) => {
        clearTimeout(timer);
        clearInterval(poll);
        this.#listeners.delete(listener);
        fn();
      };
      const listener = (m: ChildMessage) => {
        if (test(m)) done(() => resolve(m));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`bench: timed out after ${timeoutMs}ms waiting for ${what}`))), timeoutMs);
      const poll = setInterval(() => {
        if (abort?.()) done(() => reject(new Error(`bench: gave up waiting for ${what} (process exited)`)));
      }, 50);
      this.#listeners.add(listener);
    });
  }

  /** Calls `listener` with every message from now on; returns the unsubscribe function. */
  subscribe(listener: (m: ChildMessage) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  live(): Child[] {
    return this.children.filter((c) => c.alive);
  }

  byId(id: string): Child | undefined {
    return this.children.find((c) => c.id === id);
  }

  signal(child: Child, signal: NodeJS.Signals): void {
    if (child.alive) child.process.kill(signal);
    if (signal === 'SIGSTOP') child.stopped = true;
    if (signal === 'SIGCONT') child.stopped = false;
  }

  /** SIGTERM to every live child (SIGCONT first), then SIGKILL after `graceMs`. */
  async stopAll(graceMs = 5000): Promise<void> {
    const live = this.live();
    for (const c of live) {
      if (c.stopped) this.signal(c, 'SIGCONT');
      this.signal(c, 'SIGTERM');
    }
    const timer = setTimeout(() => {
      for (const c of live) if (c.alive) c.process.kill('SIGKILL');
    }, graceMs);
    await Promise.all(live.map((c) => c.exited));
    clearTimeout(timer);
  }
}

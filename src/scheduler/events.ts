import type { SessionEvents } from '../cluster/session-keeper.js';

export type RunOutcome = 'succeeded' | 'failed' | 'aborted';

/** Why ticks were not run. */
export type MissReason =
  /** No node owned the task when they fell due (every node down, or a failover longer than the interval). */
  | 'no-owner'
  /** They fell due while the previous run was still going (runs of one task never overlap). */
  | 'overlap'
  /** The owner's process was stalled (GC, SIGSTOP, a blocked event loop) past them. */
  | 'stalled';

export interface SchedulerEvents {
  'owner:acquired': { readonly task: string; readonly token: bigint };
  'owner:lost': { readonly task: string; readonly token: bigint; readonly reason: string };
  'owner:released': { readonly task: string; readonly token: bigint; readonly reason: 'shutdown' | 'rebalance' };
  'run:started': { readonly task: string; readonly tick: number; readonly lateMs: number; readonly token: bigint };
  'run:finished': {
    readonly task: string;
    readonly tick: number;
    readonly outcome: RunOutcome;
    readonly durationMs: number;
    readonly error?: Error;
  };
  'tick:missed': { readonly task: string; readonly from: number; readonly to: number; readonly count: number; readonly reason: MissReason };
  /** A background operation failed; baton retries by itself. Listening is optional: nothing throws. */
  error: { readonly where: string; readonly error: Error };
}

/** Every event a cluster emits, by name. */
export type BatonEvents = SessionEvents & SchedulerEvents;
export type Emit = <K extends keyof BatonEvents>(event: K, payload: BatonEvents[K]) => void;

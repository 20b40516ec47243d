/**
 * Which of a node's events reach its log, and at which level: losses and errors as warnings (a recovery
 * too), routine run events at debug, the rest at info. Bigints become strings (pino cannot serialise them).
 */
import type { Logger } from '../core/logger.js';
import type { BatonEvents } from '../scheduler/events.js';

export function logEvent<K extends keyof BatonEvents>(log: Logger, event: K, payload: BatonEvents[K]): void {
  const fields = { event, ...(payload as object) } as Record<string, unknown>;
  for (const [k, v] of Object.entries(fields)) if (typeof v === 'bigint') fields[k] = v.toString();
  switch (event) {
    case 'error':
    case 'session:lost':
    case 'session:renew-failed':
    case 'session:close-failed':
    case 'session:stalled':
      log.warn(fields, String(event));
      break;
    case 'session:opened':
      // A recovery is as worth seeing as the loss before it.
      if ((payload as BatonEvents['session:opened']).replaces) log.warn(fields, 'session re-opened after a loss');
      else log.info(fields, String(event));
      break;
    case 'run:started':
    case 'run:finished':
    case 'session:renewed':
      log.debug(fields, String(event));
      break;
    default:
      log.info(fields, String(event));
  }
}

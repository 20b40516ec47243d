/**
 * The logger baton writes to: pino's interface (`logger.info(obj, msg)`), so a pino instance can be passed
 * as is. Secrets never reach it: store URLs are redacted before they are logged.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/**
 * Default: pino, JSON lines on stderr, level from BATON_LOG_LEVEL (default "info", pino's own: what a
 * handler logs with `ctx.log.info` is seen, and so are hand-overs; "warn" keeps only trouble).
 */
export async function defaultLogger(): Promise<Logger> {
  const { pino } = await import('pino');
  const logger: Logger = pino(
    { name: 'baton', level: process.env.BATON_LOG_LEVEL ?? 'info' },
    pino.destination({ dest: 2, sync: false }),
  );
  return logger;
}

export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};

/**
 * Optional drivers. The server stores' drivers (`pg`, `mysql2`, `ioredis`, `etcd3`,
 * `node-zookeeper-client`) and the relay's broker client (`amqplib`) are optional peer dependencies, and
 * the embedded default's (`better-sqlite3`) an optional dependency: a user installs only what their URLs
 * use. Each is imported when first needed, through {@link loadDriver}, so a missing one fails with one
 * line naming the package to install instead of Node's module-resolution stack.
 */
import { BatonError } from './errors.js';

/** A driver package is not installed. `packageName` is what to `npm install`. */
export class DriverMissingError extends BatonError {
  readonly packageName: string;
  constructor(packageName: string, neededBy: string, options?: { cause?: unknown }) {
    super('DRIVER_MISSING', `${neededBy} needs the package "${packageName}", which is not installed: npm install ${packageName}`, options);
    this.packageName = packageName;
  }
}

/**
 * Runs `load` (an `import()` of `packageName` or one of its subpaths, kept at the call site so the
 * driver's types flow through). When `packageName` itself cannot be found, throws
 * {@link DriverMissingError}; any other failure — including a missing dependency *of* the driver — is
 * rethrown unchanged, as it is not fixed by installing `packageName`.
 *
 * @param neededBy what needs the driver, for the message: `postgres store`, `relay (RabbitMQ)`.
 */
export async function loadDriver<T>(packageName: string, neededBy: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (isPackageMissing(error, packageName)) throw new DriverMissingError(packageName, neededBy, { cause: error });
    throw error;
  }
}

/** Node's ESM loader: `ERR_MODULE_NOT_FOUND`, "Cannot find package 'pg' imported from …". */
function isPackageMissing(error: unknown, packageName: string): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && error.message.includes(`'${packageName}'`);
}

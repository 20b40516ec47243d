import { describe, expect, it } from 'vitest';
import { DriverMissingError, loadDriver } from '../../src/core/driver.js';

// No package of this name is installed here (the repository's own name with a suffix nobody publishes).
const MISSING = 'baton-fleet-test-no-such-driver';

describe('loadDriver', () => {
  it('returns the module when the package is there', async () => {
    const yaml = await loadDriver('yaml', 'test', () => import('yaml'));
    expect(typeof yaml.parse).toBe('function');
  });

  it('turns the package missing into one line naming the package to install', async () => {
    const error = await loadDriver(MISSING, 'postgres store', () => import(MISSING)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DriverMissingError);
    expect(error).toMatchObject({ code: 'DRIVER_MISSING', packageName: MISSING });
    expect((error as Error).message).toBe(`postgres store needs the package "${MISSING}", which is not installed: npm install ${MISSING}`);
  });

  it('passes any other failure through: a missing dependency of the driver is not fixed by installing the driver', async () => {
    const error = await loadDriver('pg', 'postgres store', () => import(MISSING)).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(DriverMissingError);
    const broken = new Error('driver init failed');
    await expect(loadDriver('pg', 'postgres store', () => Promise.reject(broken))).rejects.toBe(broken);
  });
});

/**
 * Reading a topology from a YAML (or JSON) file, for `baton relay --config relay.yaml`. The file holds the
 * topology only; signing keys come from the environment (`BATON_RELAY_KEYS`, see signature.ts), so that
 * the file can be shared and reviewed without leaking a secret.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../../core/errors.js';
import { defineTopology, type Topology } from './topology.js';

/** Parses and validates YAML (a superset of JSON). @throws ConfigError. */
export async function parseTopology(text: string, source = 'topology'): Promise<Topology> {
  const { parse } = await import('yaml');
  let value: unknown;
  try {
    value = parse(text);
  } catch (error) {
    throw new ConfigError(`${source}: not valid YAML: ${(error as Error).message}`, { cause: error });
  }
  return defineTopology(value);
}

/** Reads, parses and validates a topology file. @throws ConfigError (also for a file that cannot be read). */
export async function loadTopologyFile(path: string): Promise<Topology> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`--config: cannot read ${JSON.stringify(path)}: ${(error as Error).message}`, { cause: error });
  }
  return parseTopology(text, path);
}

/**
 * Reading a topology from a YAML (or JSON) file, for `baton relay --config relay.yaml`. The file holds the
 * topology only; signing keys come from the environment (`BATON_RELAY_KEYS`, see signature.ts), so that
 * the file can be shared and reviewed without leaking a secret.
 */
import { parseYamlText, readConfigText } from '../core/config-file.js';
import { defineTopology, type Topology } from './topology.js';

/** Parses and validates YAML (a superset of JSON). @throws ConfigError. */
export async function parseTopology(text: string, source = 'topology'): Promise<Topology> {
  return defineTopology(await parseYamlText(text, source));
}

/** Reads, parses and validates a topology file. @throws ConfigError (also for a file that cannot be read). */
export async function loadTopologyFile(path: string): Promise<Topology> {
  return parseTopology(await readConfigText(path), path);
}

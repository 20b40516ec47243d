/**
 * The store of a command that reads a cluster that already exists (`status`, `serve`, `run`). A mistyped
 * SQLite path or cluster name is an error that says what does exist, instead of a new empty database or
 * an empty cluster, which an operator would read as "everything is down".
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { BatonError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import type { Store } from '../stores/contract.js';
import { openStore, parseStoreUrl } from '../stores/open-store.js';

/** A store shared by many clusters (tests, tenants) is named by its first few, in one readable line. */
const MAX_NAMED = 20;

/**
 * Opens `url` for `cluster`. @throws BatonError `STORE_NOT_FOUND` for an SQLite path with no file (the file
 * is not created), `CLUSTER_NOT_FOUND` naming the clusters the store holds; whatever {@link openStore} throws.
 */
export async function openExistingCluster(url: string, cluster: string): Promise<Store> {
  const shown = JSON.stringify(redactUrl(url));
  if (/^sqlite:/i.test(url)) {
    const parsed = parseStoreUrl(url);
    const file = parsed.kind === 'sqlite' ? resolve(parsed.file) : '';
    if (!existsSync(file)) {
      throw new BatonError('STORE_NOT_FOUND', `store ${shown}: no database at ${file}; check the path (nodes create the file, this command does not)`);
    }
  }
  const store = await openStore(url, { cluster });
  try {
    const clusters = (await store.listClusters()).sort();
    if (clusters.includes(cluster)) return store;
    const named = clusters.slice(0, MAX_NAMED).map((c) => JSON.stringify(c)).join(', ');
    const more = clusters.length > MAX_NAMED ? ` and ${clusters.length - MAX_NAMED} more` : '';
    const held = clusters.length === 0 ? 'it holds no cluster yet' : `it holds ${named}${more}`;
    throw new BatonError('CLUSTER_NOT_FOUND', `cluster ${JSON.stringify(cluster)} not found in store ${shown}: ${held} (choose one with --cluster)`);
  } catch (error) {
    await store.close();
    throw error;
  }
}

/**
 * Relay tables made by the first release (outbox rows without a `changes` column) are brought up to date
 * when a relay or client of this one opens the database, on every dialect, and twice is harmless.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { openRelayDatabase } from '../../src/relay/database.js';
import { createDatabase, dropDatabase, sql, suffix, type Kind, type TestDatabase } from '../helpers/relay-fixture.js';

const FIRST_RELEASE_OUTBOX: Record<Kind, string> = {
  postgres: 'CREATE TABLE relay_outbox (id BIGSERIAL PRIMARY KEY, target TEXT NOT NULL, part INTEGER NOT NULL, body TEXT NOT NULL, created_at_ms BIGINT NOT NULL)',
  mysql: 'CREATE TABLE relay_outbox (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, target VARCHAR(64) NOT NULL, part INT NOT NULL, body LONGTEXT NOT NULL, created_at_ms BIGINT NOT NULL) ENGINE=InnoDB',
  sqlite: 'CREATE TABLE relay_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, part INTEGER NOT NULL, body TEXT NOT NULL, created_at_ms INTEGER NOT NULL)',
};

describe('relay schema upgrade', () => {
  const made: TestDatabase[] = [];
  afterAll(async () => {
    for (const db of made) await dropDatabase(db);
  });

  for (const kind of ['postgres', 'mysql', 'sqlite'] as const) {
    it(`adds relay_outbox.changes on ${kind}, keeping the rows there (1 change each)`, async () => {
      const test = await createDatabase(kind, `relay_schema_${suffix()}`);
      made.push(test);
      await sql(test, FIRST_RELEASE_OUTBOX[kind]);
      await sql(test, "INSERT INTO relay_outbox (target, part, body, created_at_ms) VALUES ('b1', 0, '{}', 1)");
      for (let i = 0; i < 2; i++) {
        const db = await openRelayDatabase(test.url, { poolSize: 1 });
        try {
          await db.ensureSchema();
          const depths = new Map((await db.query(db.sql.depths)).rows.map((r) => [String(r.t), Number(r.n)]));
          expect(depths.get('outbox')).toBe(1);
        } finally {
          await db.close();
        }
      }
      const [row] = await sql<{ changes: unknown }>(test, 'SELECT changes FROM relay_outbox');
      expect(Number(row!.changes)).toBe(1);
    });
  }
});

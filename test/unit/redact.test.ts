import { describe, expect, it } from 'vitest';
import { redactUrl } from '../../src/core/redact.js';

describe('redactUrl', () => {
  it('hides a password and secret-named query values, nothing else', () => {
    expect(redactUrl('postgres://app:s3cret@db:5432/x')).toBe('postgres://app:***@db:5432/x');
    expect(redactUrl('amqp://guest:guest@127.0.0.1:5672')).toBe('amqp://guest:***@127.0.0.1:5672');
    expect(redactUrl('rediss://:s3cret@cache:6380/0')).toBe('rediss://:***@cache:6380/0');
    expect(redactUrl('mysql://root@db/x?password=s3cret&ssl=true')).toBe('mysql://root@db/x?password=***&ssl=true');
  });

  it('shows a URL without a password as given: *** always means a secret was there', () => {
    expect(redactUrl('postgres://app@db/x')).toBe('postgres://app@db/x');
    expect(redactUrl('postgres://app:@db/x')).toBe('postgres://app:@db/x');
    expect(redactUrl('postgres://127.0.0.1:5432/x')).toBe('postgres://127.0.0.1:5432/x');
    expect(redactUrl('sqlite:./baton.db')).toBe('sqlite:./baton.db');
  });
});

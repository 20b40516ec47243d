/**
 * Record validation without a hard dependency on a validation library: a zod schema (v3.24+ or v4) is
 * accepted as it is, and so is any schema implementing Standard Schema v1 (valibot, arktype …) or a
 * zod-style `safeParse`. A record that fails gets a one-line reason (`amount_cents: Expected number`).
 */

/** The part of Standard Schema v1 (https://standardschema.dev) this module uses. */
export interface StandardSchemaLike<T> {
  readonly '~standard': {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => StandardResult<T> | Promise<StandardResult<T>>;
  };
}

type StandardResult<T> =
  | { readonly value: T; readonly issues?: undefined }
  | { readonly issues: readonly { readonly message: string; readonly path?: readonly (PropertyKey | { readonly key: PropertyKey })[] }[] };

/** A zod-style schema: `safeParse(value)` → `{ success, data | error }`. */
export interface SafeParseSchemaLike<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false; error: unknown };
}

/** A schema for the source's records: zod, any Standard Schema v1, or anything with zod's `safeParse`. */
export type RecordSchema<T> = StandardSchemaLike<T> | SafeParseSchemaLike<T>;

export type Validation<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/** Whether `value` can serve as a {@link RecordSchema}. */
export function isRecordSchema(value: unknown): value is RecordSchema<unknown> {
  if (typeof value !== 'object' && typeof value !== 'function') return false;
  if (value === null) return false;
  const standard = (value as { '~standard'?: { validate?: unknown } })['~standard'];
  return typeof standard?.validate === 'function' || typeof (value as { safeParse?: unknown }).safeParse === 'function';
}

/** A function validating one record with `schema`; it never throws (a throwing schema is a rejection). */
export function validatorOf<T>(schema: RecordSchema<T>): (record: unknown) => Promise<Validation<T>> {
  const standard = (schema as Partial<StandardSchemaLike<T>>)['~standard'];
  if (standard && typeof standard.validate === 'function') {
    return async (record) => {
      try {
        const result = await standard.validate(record);
        if (result.issues === undefined) return { ok: true, value: result.value };
        return { ok: false, reason: formatIssues(result.issues) };
      } catch (error) {
        return { ok: false, reason: `schema threw: ${(error as Error).message}` };
      }
    };
  }
  const parser = schema as SafeParseSchemaLike<T>;
  return async (record) => {
    try {
      const result = parser.safeParse(record);
      if (result.success) return { ok: true, value: result.data };
      const issues = (result.error as { issues?: unknown } | null)?.issues;
      return { ok: false, reason: Array.isArray(issues) ? formatIssues(issues) : String((result.error as Error)?.message ?? result.error) };
    } catch (error) {
      return { ok: false, reason: `schema threw: ${(error as Error).message}` };
    }
  };
}

function formatIssues(issues: readonly { message?: unknown; path?: readonly unknown[] }[]): string {
  const parts = issues.slice(0, 10).map((issue) => {
    const path = (issue.path ?? [])
      .map((p) => (typeof p === 'object' && p !== null && 'key' in p ? (p as { key: unknown }).key : p))
      .map(String)
      .join('.');
    return `${path === '' ? '(record)' : path}: ${String(issue.message ?? 'invalid')}`;
  });
  if (issues.length > 10) parts.push(`… ${issues.length - 10} more`);
  return parts.join('; ');
}

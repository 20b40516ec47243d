/**
 * Reading configuration files (YAML, which includes JSON) for the CLI commands that take `--config`:
 * `baton relay` and `baton agent`. Every failure is a {@link ConfigError} that names the file, and for
 * a schema violation the path of the field and what was expected (`baton.yaml: tasks.backup.timeout:
 * expected a duration such as "30s" or 5000, got "soon"`).
 */
import { readFile } from 'node:fs/promises';
import type { ZodError, ZodType } from 'zod';
import { ConfigError } from './errors.js';

/** Reads a config file as text. @throws ConfigError naming the file (and the flag it came from). */
export async function readConfigText(path: string, flag = '--config'): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`${flag}: cannot read ${JSON.stringify(path)}: ${(error as Error).message}`, { cause: error });
  }
}

/** Parses YAML (or JSON) text. @throws ConfigError naming `source` and the line of a syntax error. */
export async function parseYamlText(text: string, source: string): Promise<unknown> {
  const { parse } = await import('yaml');
  try {
    return parse(text) as unknown;
  } catch (error) {
    throw new ConfigError(`${source}: not valid YAML: ${(error as Error).message}`, { cause: error });
  }
}

/** A field path as written in the file: `tasks.backup.command[0]`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else {
      const name = /^[\w-]+$/.test(String(part)) ? String(part) : JSON.stringify(String(part));
      text += text === '' ? name : `.${name}`;
    }
  }
  return text || '(top level)';
}

/** Most issues listed in one error; the rest are counted. */
const MAX_ISSUES = 8;

/** One ConfigError listing a zod error's issues, each as `source: path: message`. */
export function configErrorFromZod(source: string, error: ZodError): ConfigError {
  // An unknown field is named by its own path (where the typo is), not its parent's.
  const flat = error.issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({ path: [...issue.path, key], message: 'unknown field (a typo, or an option of another version?)' }))
      : // A bad key of a record (a task name): say what a key must look like, not "Invalid key in record".
        [{ path: issue.path, message: issue.code === 'invalid_key' ? issue.issues.map((inner) => inner.message).join('; ') : issue.message }],
  );
  const lines = flat.slice(0, MAX_ISSUES).map((issue) => `${source}: ${fieldPath(issue.path)}: ${issue.message}`);
  if (flat.length > MAX_ISSUES) lines.push(`${source}: … and ${flat.length - MAX_ISSUES} more`);
  return new ConfigError(lines.join('\n'), { cause: error });
}

/** Validates `value` against `schema`. @throws ConfigError listing every issue with its field path. */
export function parseWithSchema<T>(schema: ZodType<T>, value: unknown, source: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw configErrorFromZod(source, result.error);
  return result.data;
}

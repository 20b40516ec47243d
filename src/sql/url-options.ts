/**
 * URL query options declared as tables: each option's type, range and default in one line, read and
 * checked by one function. A dialect declares its connection options (TLS, timeouts) and each user of the
 * URL (a store, the HTTP sync, the relay) adds its own; whatever no table declares is refused, naming the
 * known ones, so a typo never silently disables TLS or a safety setting.
 */

/** One option: how its text is read and checked. */
export type OptionSpec =
  | { readonly type: 'integer'; readonly min: number; readonly max: number; readonly default?: number }
  | { readonly type: 'boolean'; readonly default: boolean }
  | { readonly type: 'choice'; readonly choices: readonly string[]; readonly default: string; readonly hints?: Readonly<Record<string, string>> }
  | { readonly type: 'text'; readonly default?: string; readonly pattern?: RegExp; readonly rule?: string };

/** Options by name. */
export type OptionTable = Readonly<Record<string, OptionSpec>>;

/** The values a table reads: an option with a default is always set, one without may be undefined. */
export type OptionValues<T extends OptionTable> = {
  readonly [K in keyof T]: T[K] extends { readonly type: 'integer' }
    ? T[K] extends { readonly default: number }
      ? number
      : number | undefined
    : T[K] extends { readonly type: 'boolean' }
      ? boolean
      : T[K] extends { readonly type: 'choice'; readonly choices: readonly (infer C)[] }
        ? C
        : T[K] extends { readonly default: string }
          ? string
          : string | undefined;
};

/**
 * Reads `params` against `table`. `known` lists every option the URL accepts (this table's and the
 * others read from the same URL), so an option no table declares is refused here.
 * @throws through `fail`, naming the option, the rule and the value.
 */
export function readOptions<T extends OptionTable>(
  params: ReadonlyMap<string, string>,
  table: T,
  known: readonly string[],
  fail: (what: string) => never,
): OptionValues<T> {
  for (const name of params.keys()) {
    if (!known.includes(name)) fail(`unknown option "${name}" (known: ${known.length > 0 ? known.join(', ') : 'none'})`);
  }
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(table)) {
    const text = params.get(name);
    values[name] = text === undefined ? spec.default : readOption(name, spec, text, fail);
  }
  return values as OptionValues<T>;
}

function readOption(name: string, spec: OptionSpec, text: string, fail: (what: string) => never): unknown {
  const got = `got ${JSON.stringify(text)}`;
  switch (spec.type) {
    case 'integer': {
      const value = Number(text);
      if (text.trim() === '' || !Number.isInteger(value) || value < spec.min || value > spec.max) {
        fail(`${name} must be an integer from ${spec.min} to ${spec.max}, ${got}`);
      }
      return value;
    }
    case 'boolean':
      if (text === 'true' || text === '1') return true;
      if (text === 'false' || text === '0') return false;
      return fail(`${name} must be true or false (or 1 or 0), ${got}`);
    case 'choice':
      if (!spec.choices.includes(text)) fail(`${name} must be one of ${spec.choices.join(', ')}, ${got}${spec.hints?.[text] ?? ''}`);
      return text;
    case 'text':
      if (spec.pattern && !spec.pattern.test(text)) fail(`${name} must be ${spec.rule ?? `text matching ${spec.pattern}`}, ${got}`);
      return text;
  }
}

/**
 * Reads a URL's options against the dialect's connection options and its user's: each name is known to
 * one of the two tables, or refused naming all of them.
 */
export function readUrlOptions<C extends OptionTable, O extends OptionTable>(
  params: ReadonlyMap<string, string>,
  connection: C,
  own: O,
  fail: (what: string) => never,
): { readonly connection: OptionValues<C>; readonly options: OptionValues<O> } {
  const known = [...Object.keys(connection), ...Object.keys(own)];
  return { connection: readOptions(params, connection, known, fail), options: readOptions(params, own, known, fail) };
}

/**
 * The monitor's dashboard: static files in `assets/` beside this module (HTML, CSS and JS modules, no
 * framework, no build step; `npm run build` copies them to `dist/monitor/assets`), served at `GET /` and
 * `GET /assets/<name>` under a CSP without `'unsafe-inline'`. What the page does and its test hooks are
 * described in `assets/dashboard.js`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One file of the page, read once. */
export interface DashboardAsset {
  readonly body: Buffer;
  readonly contentType: string;
}

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
};

let assets: ReadonlyMap<string, DashboardAsset> | undefined;

/** The page's file of that name, or undefined when there is none (or the installation lacks them). */
export function dashboardAsset(name: string): DashboardAsset | undefined {
  if (!assets || assets.size === 0) assets = readAssets();
  return assets.get(name);
}

function readAssets(): ReadonlyMap<string, DashboardAsset> {
  const dir = fileURLToPath(new URL('./assets/', import.meta.url));
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    // A build without its assets: the server answers 500 saying so (http-api.ts), and reads again next time.
    return new Map();
  }
  return new Map(
    names
      .filter((name) => TYPES[extname(name)] !== undefined)
      .map((name) => [name, { body: readFileSync(dir + name), contentType: TYPES[extname(name)] as string }]),
  );
}

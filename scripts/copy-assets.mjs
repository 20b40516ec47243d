#!/usr/bin/env node
// Copies the dashboard's static files (src/monitor/assets) beside the compiled monitor (dist/monitor/assets):
// tsc compiles only TypeScript. Run by `npm run build`, so `npm pack` ships them.
import { cpSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const to = join(root, 'dist', 'monitor', 'assets');
rmSync(to, { recursive: true, force: true });
cpSync(join(root, 'src', 'monitor', 'assets'), to, { recursive: true });

import { measureLoad } from '../load.js';
const [nodes = 10, tasks = 1000] = process.argv.slice(2).map(Number);
const url = 'postgres://postgres@127.0.0.1:5432/test?schema=baton_probe';
const t0 = Date.now();
const p = await measureLoad(url, `probe${Date.now()}`, tasks, 15000, nodes);
console.log(JSON.stringify({ nodes, tasks, ...p, wall: Date.now() - t0, cpu: process.cpuUsage() }));
process.exit(0);

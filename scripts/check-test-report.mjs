#!/usr/bin/env node
// Reads vitest's JSON report and fails when a test was skipped or a required backend did not run its
// conformance suite: CI must never report a skipped backend as passed. Prints the closing line
// "tests: N passed, N failed, N skipped".
import { readFileSync } from 'node:fs';

const [file = '.ci-report.json', ...required] = process.argv.slice(2);
const report = JSON.parse(readFileSync(file, 'utf8'));
const results = report.testResults.flatMap((file) => file.assertionResults);
const count = (status) => results.filter((r) => r.status === status).length;
const passed = count('passed');
const failed = count('failed');
const skipped = results.length - passed - failed;
const problems = [];
if (skipped > 0) problems.push(`${skipped} test(s) skipped or pending: CI runs everything`);
for (const backend of required) {
  const suite = `Store conformance: ${backend}`;
  const ran = results.filter((r) => r.ancestorTitles.includes(suite) && r.status === 'passed').length;
  if (ran === 0) problems.push(`backend "${backend}": its conformance suite did not run`);
}
if (report.numFailedTestSuites > 0) problems.push(`${report.numFailedTestSuites} test file(s) failed to run`);
for (const p of problems) console.error(`check-test-report: ${p}`);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(problems.length > 0 || failed > 0 ? 1 : 0);

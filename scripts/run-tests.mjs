// Runs every test file under tests/ (unit, integration, e2e) with node's built-in runner.
// Node 20's runner has no glob support for .ts files, so the list is collected here.
// Before: installs the test peers when missing. During: every temp folder the tests make lands in one
// fresh folder (TMPDIR), removed afterwards unless KILN_KEEP_TEST_TMP=1. After: the failed tests and counts.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { ensureTestPeers } from './test-peers.mjs';
import { formatTestSummary, readTestResults } from './test-summary.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const suites = ['tests/unit', 'tests/integration', 'tests/e2e'];
const only = process.argv.slice(2);

function collect(dir) {
  let found = [];
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return found;
  }
  for (const name of entries.sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found = found.concat(collect(path));
    else if (name.endsWith('.test.ts')) found.push(path);
  }
  return found;
}

/** Runs node's test runner on `files` with `tmp` as every temp folder; resolves to its exit code. */
function runNodeTests(files, tmp, resultsFile) {
  const reporter = join(root, 'scripts', 'test-results-reporter.mjs');
  const args = [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=1',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    `--test-reporter=${reporter}`,
    `--test-reporter-destination=${resultsFile}`,
    ...files,
  ];
  const env = { ...process.env, TMPDIR: tmp, TMP: tmp, TEMP: tmp };
  const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit', env });
  // Ctrl-C reaches the runner through the terminal; this process waits for it to end, then cleans up.
  const forward = (signal) => child.kill(signal);
  process.on('SIGINT', () => {});
  process.on('SIGTERM', forward);
  process.on('SIGHUP', forward);
  return new Promise((done) => {
    child.on('error', (err) => {
      console.error(`could not start the test runner: ${err.message}`);
      done(1);
    });
    child.on('exit', (code, signal) => done(code ?? (signal ? 1 : 0)));
  });
}

const files = suites.flatMap(collect).filter((f) => only.length === 0 || only.some((o) => f.includes(o)));
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
try {
  ensureTestPeers(root);
} catch (err) {
  console.error(`test peers: ${err.message}`);
  process.exit(1);
}
const tmp = mkdtempSync(join(tmpdir(), 'kiln-npm-test-'));
const resultsFile = join(tmp, 'results.jsonl');
const status = await runNodeTests(files, tmp, resultsFile);
const results = readTestResults(resultsFile);
// a run that failed without a failed test on record (a crashed reporter or runner) still counts as failed
if (status !== 0 && !results.some((r) => r.outcome === 'fail')) {
  results.push({ outcome: 'fail', file: undefined, path: ['(the test runner)'], reason: `exited with status ${status}; its output is above` });
}
console.log(`\n${formatTestSummary(results, root)}`);
if (process.env.KILN_KEEP_TEST_TMP === '1') {
  console.log(`Temp folders kept in ${tmp} (KILN_KEEP_TEST_TMP=1).`);
} else {
  try {
    rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
  } catch (err) {
    console.error(`could not remove the tests' temp folder ${tmp}: ${err.message}`);
  }
}
process.exit(status);

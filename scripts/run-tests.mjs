// Runs every test file under tests/ (unit, integration, e2e) with node's built-in runner.
// Node 20's runner has no glob support for .ts files, so the list is collected here.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const suites = ['tests/unit', 'tests/integration', 'tests/e2e'];
const only = process.argv.slice(2);

function collect(dir) {
  let found = [];
  let entries;
  try { entries = readdirSync(dir); } catch { return found; }
  for (const name of entries.sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found = found.concat(collect(path));
    else if (name.endsWith('.test.ts')) found.push(path);
  }
  return found;
}

const files = suites.flatMap(collect).filter((f) => only.length === 0 || only.some((o) => f.includes(o)));
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);

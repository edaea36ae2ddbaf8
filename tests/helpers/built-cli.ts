// The built CLI (`dist/cli.js`), which integration tests run as a user would: built once if missing.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const REPO = join(__dirname, '..', '..');
export const CLI = join(REPO, 'dist', 'cli.js');

/** Runs `npm run build` when dist/cli.js is missing (`npm test` builds first, so it is there). */
export function ensureBuilt(): void {
  if (existsSync(CLI)) return;
  const build = spawnSync('npm', ['run', 'build'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(build.status, 0, `npm run build failed:\n${build.stdout}${build.stderr}`);
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI to completion (never rejects: the exit code is part of the result). */
export function runKiln(...args: string[]): Promise<CliRun> {
  return runKilnAt(CLI, ...args);
}

/** Runs a copy of the built CLI (e.g. the one inside an installed VSIX), as runKiln does. */
export function runKilnAt(cli: string, ...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20, env: { ...process.env, KILN_DEBUG: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

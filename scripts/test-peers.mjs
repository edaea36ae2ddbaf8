// Installs the test peers (tests/peers: node-llama-cpp, prebuilt CPU binary only) when they are
// missing or do not match tests/peers/package-lock.json, so `npm test` works on a fresh clone.
import { existsSync, lstatSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

/**
 * Lists what tests/peers/node_modules lacks compared with the lock: every package npm would install
 * with `--omit=optional` must be present at its locked version. Returns an empty list when current.
 */
export function stalePeerPackages(peersDir) {
  const lock = JSON.parse(readFileSync(join(peersDir, 'package-lock.json'), 'utf8'));
  const stale = [];
  for (const [path, entry] of Object.entries(lock.packages ?? {})) {
    if (path === '' || entry.optional || entry.dev || entry.link) continue;
    const manifest = join(peersDir, path, 'package.json');
    let installed;
    try {
      installed = JSON.parse(readFileSync(manifest, 'utf8')).version;
    } catch {
      installed = undefined;
    }
    if (installed !== entry.version) stale.push(`${path.slice('node_modules/'.length)}@${entry.version}`);
  }
  return stale;
}

/**
 * Makes tests/peers match its lock, running `npm ci` there when it does not. Prints one line when it
 * installs; throws when the install fails. A node_modules that is a link into another checkout is
 * never reinstalled through (that would rewrite the other checkout's install).
 */
export function ensureTestPeers(repoRoot) {
  const peersDir = join(repoRoot, 'tests', 'peers');
  const stale = stalePeerPackages(peersDir);
  if (stale.length === 0) return;
  const modules = join(peersDir, 'node_modules');
  const reason = existsSync(modules) ? `${stale.length} package(s) differ from the lock, e.g. ${stale[0]}` : 'not installed yet';
  if (existsSync(modules) && lstatSync(modules).isSymbolicLink()) {
    throw new Error(`tests/peers/node_modules links to ${realpathSync(modules)}, whose install is stale (${reason}); update it there`);
  }
  console.log(`Installing the test peers (llama.cpp through node-llama-cpp) into tests/peers: ${reason}.`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const args = ['ci', '--no-audit', '--no-fund', '--omit=optional', '--prefix', peersDir];
  const result = spawnSync(npm, args, { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) {
    throw new Error(`\`npm ${args.join(' ')}\` failed (${result.error?.message ?? `exit ${result.status}`})`);
  }
  const still = stalePeerPackages(peersDir);
  if (still.length > 0) throw new Error(`tests/peers still differs from its lock after npm ci: ${still.slice(0, 3).join(', ')}`);
}

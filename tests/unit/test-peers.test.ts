// `npm test` installs tests/peers when its node_modules does not match the lock: what counts as stale
// (missing, another version; optional packages are left out as `--omit=optional` leaves them out).
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stalePeerPackages } from '../../scripts/test-peers.mjs';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-peers-');
after(() => rmSync(root, { recursive: true, force: true }));

function peers(name: string, installed: Record<string, string>): string {
  const dir = join(root, name);
  const lock = {
    lockfileVersion: 3,
    packages: {
      '': { name: 'kiln-test-peers', dependencies: { 'node-llama-cpp': '3.21.1' } },
      'node_modules/node-llama-cpp': { version: '3.21.1' },
      'node_modules/@node-llama-cpp/linux-x64': { version: '3.21.1' },
      'node_modules/node-llama-cpp/node_modules/semver': { version: '7.7.0' },
      'node_modules/@node-llama-cpp/mac-arm64-metal': { version: '3.21.1', optional: true },
    },
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lock));
  for (const [path, version] of Object.entries(installed)) {
    mkdirSync(join(dir, path), { recursive: true });
    writeFileSync(join(dir, path, 'package.json'), JSON.stringify({ version }));
  }
  return dir;
}

describe('stalePeerPackages', () => {
  const complete = {
    'node_modules/node-llama-cpp': '3.21.1',
    'node_modules/@node-llama-cpp/linux-x64': '3.21.1',
    'node_modules/node-llama-cpp/node_modules/semver': '7.7.0',
  };

  it('is empty when every non-optional locked package is installed at its version', () => {
    assert.deepEqual(stalePeerPackages(peers('current', complete)), []);
  });

  it('names every package missing or at another version, nested ones too', () => {
    assert.deepEqual(stalePeerPackages(peers('fresh', {})), ['node-llama-cpp@3.21.1', '@node-llama-cpp/linux-x64@3.21.1', 'node-llama-cpp/node_modules/semver@7.7.0']);
    const old = peers('old', { ...complete, 'node_modules/node-llama-cpp': '3.20.0' });
    assert.deepEqual(stalePeerPackages(old), ['node-llama-cpp@3.21.1']);
  });
});

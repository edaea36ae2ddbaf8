// `kiln finetune --line-spans` and `--max-files`: the share of line-aligned FIM middles reaches the
// dataset (the dry run reports it), the file bound is applied and reported, and a share outside
// [0, 1] is a usage error (exit 2) before anything is read.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { writeOverfitModel, writeOverfitRepo } from '../fixtures/overfit-repo';
import { ensureBuilt, runKiln } from '../helpers/built-cli';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-finetune-flags-');
const repo = join(root, 'repo');
const modelDir = join(root, 'model');

before(() => {
  ensureBuilt();
  writeOverfitRepo(repo, 3);
  writeOverfitModel(modelDir);
});

test('--line-spans reaches the dataset: the dry run names the share', async () => {
  const quarter = await runKiln('finetune', repo, '--model', modelDir, '--cache', join(root, 'cache'), '--dry-run', '--line-spans', '0.25');
  assert.equal(quarter.code, 0, quarter.stderr);
  assert.match(quarter.stdout, /SPM 50% of those, 25% cut at line ends/);
  const byDefault = await runKiln('finetune', repo, '--model', modelDir, '--cache', join(root, 'cache'), '--dry-run');
  assert.match(byDefault.stdout, /50% cut at line ends/);
});

test('--max-files bounds the scan and says what it left out', async () => {
  const r = await runKiln('finetune', repo, '--model', modelDir, '--cache', join(root, 'cache'), '--dry-run', '--max-files', '2');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /the scan stopped at its bounds \(over 2 files\): 1 files left out, from src\/options02\.ts on; --max-files raises the file bound/);
  const all = await runKiln('finetune', repo, '--model', modelDir, '--cache', join(root, 'cache'), '--dry-run');
  assert.doesNotMatch(all.stderr, /stopped at its bounds/);
});

test('--line-spans outside 0–1 is a usage error', async () => {
  for (const bad of ['1.5', '--line-spans=-0.1', 'half', '']) {
    const flag = bad.startsWith('--') ? [bad] : ['--line-spans', bad];
    const r = await runKiln('finetune', repo, '--model', modelDir, '--dry-run', ...flag);
    assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
    assert.match(r.stderr, /--line-spans must be a number from 0 to 1/);
  }
});

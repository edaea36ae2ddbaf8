// `kiln finetune --export-dataset OUT --overwrite` replaces OUT whole, so OUT must never be, hold or
// sit inside the workspace or the model folder — also when a symlink hides it: a linked parent of OUT
// (or a workspace opened through a link) must not let the export move the workspace aside and delete it.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { exportDataset } from '../../server/src/dataset/export-dataset';
import { datasetChoices } from '../../server/src/dataset/training-preview';
import { exportChoices } from '../../server/src/finetune/export-choices';
import { buildFineTuneOptions } from '../../server/src/finetune/fine-tune-options';
import { writeOverfitRepo } from '../fixtures/overfit-repo';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-export-placement-');
const parent = join(root, 'parent');
const repo = join(parent, 'repo');
const model = join(root, 'model');
const cache = join(root, 'cache');
writeTinyCodeModel(model, { seed: 1, maxPositions: 256, config: { vocabSize: 400, intermediateSize: 64 } });
writeOverfitRepo(repo, 3);
const repoFiles = readdirSync(join(repo, 'src')).sort();
symlinkSync(parent, join(root, 'link-to-parent'));
symlinkSync(repo, join(root, 'link-to-repo'));
symlinkSync(root, join(root, 'link-to-root'));

function exportTo(out: string, workspace = repo) {
  const options = buildFineTuneOptions({ workspace, modelDir: model, cacheDir: cache, seqLen: 64, threads: 1 });
  return exportDataset({ ...datasetChoices(options), ...exportChoices(options), out, overwrite: true });
}

describe('export placement with symlinks', () => {
  after(() => rmSync(root, { recursive: true, force: true }));

  for (const [name, out, workspace, why] of [
    ['OUT is the workspace through a linked parent', join(root, 'link-to-parent', 'repo'), repo, /holds the workspace/],
    ['OUT is a folder inside the workspace through a link', join(root, 'link-to-repo', 'export'), repo, /is inside the workspace/],
    ['OUT holds the workspace through a link', join(root, 'link-to-root', 'parent'), repo, /holds the workspace/],
    ['the workspace is opened through a link and OUT is its real path', repo, join(root, 'link-to-repo'), /holds the workspace/],
    ['OUT is the model folder through a link', join(root, 'link-to-root', 'model'), repo, /holds the model folder/],
  ] as const) {
    it(`refuses: ${name}; the workspace and the model are kept`, async () => {
      await assert.rejects(exportTo(out, workspace), why);
      assert.deepEqual(readdirSync(join(repo, 'src')).sort(), repoFiles);
      assert.ok(existsSync(join(model, 'config.json')));
    });
  }

  it('still exports to a folder of its own reached through a link', async () => {
    mkdirSync(join(root, 'exports'));
    symlinkSync(join(root, 'exports'), join(root, 'link-to-exports'));
    const r = await exportTo(join(root, 'link-to-exports', 'one'));
    assert.ok(r.manifest.split.train.examples > 0);
    assert.deepEqual(readdirSync(join(root, 'exports', 'one')).sort(), ['manifest.json', 'train.jsonl', 'validation.jsonl']);
  });
});

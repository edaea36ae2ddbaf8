// kiln/exportDataset through the real server over stdio (what "Fine-tune on This Repository" offers
// with a remote backend): the export it writes is byte for byte the CLI's `--export-dataset`, with
// no planted secret; a non-empty folder is refused unless overwrite is set; bad params are refused
// with a message naming them, and the server keeps serving.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KilnExportDatasetRequest } from '../../server/src/protocol';
import { writeOverfitModel, writeOverfitRepo } from '../fixtures/overfit-repo';
import { ensureBuilt, runKiln } from '../helpers/built-cli';
import { KilnClient } from '../helpers/lsp-client';
import { TEST_SETTINGS } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-export-lsp-');
const workspace = join(root, 'repo');
const modelDir = join(root, 'model');
const cacheDir = join(root, 'cache');
const SECRET = `pw${Date.now().toString(36)}Xk9q`;
let client: KilnClient;

before(async () => {
  ensureBuilt();
  writeOverfitModel(modelDir);
  writeOverfitRepo(workspace, 6);
  writeFileSync(join(workspace, 'src', 'db.py'), `HOST = "localhost"\npassword = "${SECRET}"\n`);
  client = await KilnClient.start({ settings: { ...TEST_SETTINGS, modelPath: modelDir }, initializationOptions: { cacheDir } });
});
after(async () => {
  await client?.dispose();
  rmSync(root, { recursive: true, force: true });
});

const jsonl = (dir: string) => ['train.jsonl', 'validation.jsonl'].map((f) => readFileSync(join(dir, f), 'utf8'));

test('the export equals the CLI export, secrets left out', async () => {
  const out = join(root, 'from-lsp');
  const r = await client.connection.sendRequest(KilnExportDatasetRequest.type, { workspace, out });
  assert.equal(r.out, out);
  assert.equal(r.trainFiles + r.validationFiles, 7);
  assert.ok(r.scrubbedLines >= 1);
  assert.match(r.summary, /recipes\/train_lora\.py"? --data /);
  const cli = await runKiln('finetune', workspace, '--model', modelDir, '--cache', cacheDir, '--threads', '1', '--export-dataset', join(root, 'from-cli'));
  assert.equal(cli.code, 0, cli.stderr);
  assert.deepEqual(jsonl(out), jsonl(join(root, 'from-cli')));
  const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
  assert.equal(manifest.split.train.examples + manifest.split.validation.examples, r.trainExamples + r.validationExamples);
  assert.ok(!jsonl(out).join('').includes(SECRET));
});

test('a non-empty folder is refused unless overwrite is set', async () => {
  const out = join(root, 'occupied');
  mkdirSync(out);
  writeFileSync(join(out, 'notes.txt'), 'mine');
  await assert.rejects(client.connection.sendRequest(KilnExportDatasetRequest.type, { workspace, out }), /is not empty/);
  assert.deepEqual(readdirSync(out), ['notes.txt']);
  await client.connection.sendRequest(KilnExportDatasetRequest.type, { workspace, out, overwrite: true });
  assert.deepEqual(readdirSync(out).sort(), ['manifest.json', 'train.jsonl', 'validation.jsonl']);
});

test('bad params are refused with a message naming them; the server keeps answering', async () => {
  await assert.rejects(client.connection.sendRequest(KilnExportDatasetRequest.type, { workspace, out: 'relative/dir' }), /out must be an absolute folder/);
  await assert.rejects(client.connection.sendRequest(KilnExportDatasetRequest.type, { workspace, out: join(root, 'x'), maxFiles: 0 }), /maxFiles must be a positive integer/);
  await assert.rejects(
    client.connection.sendRequest(KilnExportDatasetRequest.type, { workspace, out: join(root, 'y'), overwrite: 'yes' as unknown as boolean }),
    /overwrite must be true or false/,
  );
  await assert.rejects(
    client.connection.sendRequest(KilnExportDatasetRequest.type, { workspace: join(root, 'missing'), out: join(root, 'z') }),
    /exporting the training data failed/,
  );
  assert.deepEqual(
    readdirSync(root).filter((f) => /^[xyz]($|\.)/.test(f)),
    [],
    'nothing written for a refused request',
  );
  const stats = await client.getStats();
  assert.equal(stats.state, 'ready');
});

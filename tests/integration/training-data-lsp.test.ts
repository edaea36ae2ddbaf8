// kiln/trainingDataPreview through the real server over stdio ("Show What Will Be Trained"): the
// dry-run report comes back and the dump is written into the storage folder the client named,
// with the workspace's code in it and no planted secret; maxFiles is honoured; bad params are refused
// with a message, and the server keeps serving.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { KilnTrainingDataPreviewRequest } from '../../server/src/protocol';
import { writeOverfitModel, writeOverfitRepo } from '../fixtures/overfit-repo';
import { ensureBuilt, runKiln } from '../helpers/built-cli';
import { KilnClient } from '../helpers/lsp-client';
import { TEST_SETTINGS } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-training-data-lsp-');
const workspace = join(root, 'repo');
const modelDir = join(root, 'model');
const storageDir = join(root, 'storage');
const awsKey = `AKIA${randomBytes(7).toString('hex').toUpperCase()}7${randomBytes(1).toString('hex').slice(0, 1).toUpperCase()}`; // holds a digit, as the rule requires
let client: KilnClient;

before(async () => {
  ensureBuilt();
  writeOverfitModel(modelDir);
  writeOverfitRepo(workspace, 4);
  writeFileSync(join(workspace, 'src', 'cloud.ts'), `export const bucket = 'logs';\nconst accessKey = "${awsKey}";\n`);
  client = await KilnClient.start({ settings: { ...TEST_SETTINGS, modelPath: modelDir }, initializationOptions: { cacheDir: join(root, 'cache') } });
});
after(async () => {
  await client?.dispose();
  rmSync(root, { recursive: true, force: true });
});

test('the report comes back and the dump is written under the storage folder, secrets left out', async () => {
  const r = await client.connection.sendRequest(KilnTrainingDataPreviewRequest.type, { workspace, storageDir });
  assert.match(r.report, /^Fine-tune dataset \(dry run\) for /);
  assert.match(r.report, /src\/cloud\.ts {2}\(1 secret line blanked\)/);
  assert.match(r.report, /^ {2}aws-access-key +1$/m);
  assert.equal(dirname(dirname(r.dumpPath)), storageDir);
  assert.equal(r.trainFiles + r.validationFiles, 5);
  const dump = readFileSync(r.dumpPath, 'utf8');
  assert.equal(r.dumpBytes, Buffer.byteLength(dump));
  assert.equal([...dump.matchAll(/^═{8} example /gm)].length, r.examples);
  assert.match(dump, /· src\/cloud\.ts ·/);
  assert.ok(dump.includes('bucket'));
  for (let i = 0; i + 8 <= awsKey.length; i++) assert.ok(!dump.includes(awsKey.slice(i, i + 8)), `fragment of the key in the dump`);
});

test('maxFiles bounds what is read, as kiln.fineTune.maxFiles does for training', async () => {
  const r = await client.connection.sendRequest(KilnTrainingDataPreviewRequest.type, { workspace, storageDir, maxFiles: 2 });
  assert.equal(r.trainFiles + r.validationFiles, 2);
  assert.match(r.report, /limit +\S+ {2}\(over 2 files\)/);
});

test('a workspace of more than one tokenizing batch is tokenized on worker threads, with the same dump as in-thread', async () => {
  const big = join(root, 'big');
  writeOverfitRepo(big, 80); // ~80 files, a few hundred KiB with the padding below
  for (let i = 0; i < 80; i++) writeFileSync(join(big, 'src', `pad${i}.ts`), `export const pad${i} = [\n${'  "lorem ipsum dolor sit amet",\n'.repeat(120)}];\n`);
  const r = await client.connection.sendRequest(KilnTrainingDataPreviewRequest.type, { workspace: big, storageDir });
  assert.equal(r.trainFiles + r.validationFiles, 160);
  const cli = await runKiln('finetune', big, '--model', modelDir, '--dry-run', '--threads', '1', '--dump', join(root, 'big-dump.txt'));
  assert.equal(cli.code, 0, cli.stderr);
  const strip = (text: string) => text.slice(text.indexOf('\n') + 1); // the title names the model path
  assert.equal(strip(readFileSync(r.dumpPath, 'utf8')), strip(readFileSync(join(root, 'big-dump.txt'), 'utf8')));
});

test('bad params are refused with a message naming them; the server keeps answering', async () => {
  await assert.rejects(client.connection.sendRequest(KilnTrainingDataPreviewRequest.type, { workspace, storageDir: 'relative/dir' }), /storageDir must be an absolute folder/);
  await assert.rejects(client.connection.sendRequest(KilnTrainingDataPreviewRequest.type, { workspace, storageDir, maxFiles: 0 }), /maxFiles must be a positive integer/);
  await assert.rejects(
    client.connection.sendRequest(KilnTrainingDataPreviewRequest.type, { workspace: join(root, 'missing'), storageDir }),
    /reading the training data failed: .*ENOENT/,
  );
  assert.ok(!existsSync(join(storageDir, 'relative')));
  const stats = await client.getStats();
  assert.equal(stats.state, 'ready');
});

// A `kiln.adapterPath` naming a folder that does not exist (a deleted fine-tune, a temp folder from
// another session) must not cost the user their completions: the real server loads the base model,
// says which setting names the missing folder, and answers completions as it does without it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { ensureBuilt } from '../helpers/built-cli';
import { KilnClient } from '../helpers/lsp-client';
import { TEST_SETTINGS, writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-missing-adapter-');
const modelDir = join(root, 'model');
const missing = join(root, `gone-${randomBytes(4).toString('hex')}`);
let client: KilnClient;

before(() => {
  ensureBuilt();
  writeTinyCodeModel(modelDir);
});
after(async () => {
  await client?.dispose();
  rmSync(root, { recursive: true, force: true });
});

it('loads the base model, names kiln.adapterPath in its status, and keeps answering completions', async () => {
  client = await KilnClient.start({ settings: { ...TEST_SETTINGS, modelPath: modelDir, adapterPath: missing }, initializationOptions: { cacheDir: join(root, 'cache') } });
  const status = client.statuses.items.at(-1);
  assert.equal(status?.state, 'ready', `${JSON.stringify(status)}\n${client.stderr}`);
  assert.equal(status?.adapter, undefined, 'no adapter is merged');
  assert.match(status?.message ?? '', /kiln\.adapterPath/);
  assert.ok(status?.message?.includes(missing), 'the message names the missing folder');
  const uri = 'file:///work/a.ts';
  const text = 'export function add(a: number, b: number): number {\n  return a';
  await client.open(uri, text);
  const answer = await client.complete(uri, client.document(uri).positionAt(text.length), { explicit: true });
  assert.ok(answer && Array.isArray(answer.items), 'an inline-completion answer');
});

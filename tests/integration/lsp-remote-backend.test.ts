// The real server over stdio with `kiln.backend` set: completions come from the remote server with
// the API key the client passed in the server's environment (sent as a Bearer header, never logged),
// the status says which backend; a failing backend gives one warning however many keystrokes fail,
// the status message clears when it answers again, and switching back to local sends nothing more.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BACKEND_API_KEY_ENV } from '../../server/src/protocol';
import { ensureBuilt } from '../helpers/built-cli';
import { type FakeInferenceServer, scriptedEngine, startFakeInferenceServer } from '../helpers/fake-inference-server';
import { insertTexts, KilnClient } from '../helpers/lsp-client';
import { TEST_SETTINGS, writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';
import { waitUntil } from '../helpers/wait';

const root = tempDir('kiln-lsp-remote-');
const modelDir = join(root, 'model');
const KEY = `k-${process.pid}-${Date.now()}`;
let fake: FakeInferenceServer;
let client: KilnClient;

before(async () => {
  ensureBuilt();
  writeTinyCodeModel(modelDir);
  fake = await startFakeInferenceServer({ engine: scriptedEngine(['total', ' +=', ' 1', '\n', 'never']), modelName: 'served' });
  const saved = process.env[BACKEND_API_KEY_ENV];
  process.env[BACKEND_API_KEY_ENV] = KEY; // as the extension starts the server
  try {
    client = await KilnClient.start({
      settings: { ...TEST_SETTINGS, modelPath: modelDir, completionMode: 'line', backend: { kind: 'llamacpp', url: fake.url } },
      initializationOptions: { cacheDir: join(root, 'cache') },
    });
  } finally {
    if (saved === undefined) delete process.env[BACKEND_API_KEY_ENV];
    else process.env[BACKEND_API_KEY_ENV] = saved;
  }
  await waitUntil(
    'the server to be ready',
    () => client.statuses.items.at(-1)?.state,
    (s) => s === 'ready',
  );
});
after(async () => {
  await client?.dispose();
  await fake?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('a remote backend over LSP', () => {
  it('answers from the remote server, with the key as a Bearer header; the status names the backend', async () => {
    const uri = 'file:///work/a.py';
    await client.open(uri, 'def f(total):\n    \n', 'python');
    const answer = insertTexts(await client.complete(uri, { line: 1, character: 4 }));
    assert.deepEqual(answer, ['total += 1']);
    assert.equal(fake.counts.bodies.at(-1)?.authorization, `Bearer ${KEY}`);
    assert.match(client.statuses.items.at(-1)?.backend ?? '', /^llamacpp http:\/\/127\.0\.0\.1:\d+$/);
    const stats = await client.getStats();
    assert.equal(stats.last?.remote?.backend, 'llamacpp');
    // the line ended at the newline: Kiln closed the stream before llama.cpp's last event, but the
    // timings came with every event (timings_per_token)
    assert.equal(stats.last?.remote?.stoppedEarly, true);
    assert.equal(stats.last?.remote?.server?.promptTokens, 2, "llama.cpp's own prompt count reaches the stats");
    assert.ok((stats.last?.remote?.requestMs ?? 0) > 0);
    assert.ok(!client.logs.items.some((l) => l.includes(KEY)) && !client.stderr.includes(KEY), 'the key is never logged');
  });

  it('a failing backend gives one warning for many failed keystrokes, and the status clears when it answers again', async () => {
    const uri = 'file:///work/b.py';
    await client.open(uri, 'x = \n', 'python');
    const warningsBefore = client.messages.items.length;
    fake.fault = 'http-500';
    try {
      for (let i = 0; i < 4; i++) {
        await client.insert(uri, 4 + i, 'y');
        assert.deepEqual(insertTexts(await client.complete(uri, { line: 0, character: 5 + i })), []);
      }
    } finally {
      fake.fault = 'none';
    }
    const warnings = client.messages.items.slice(warningsBefore);
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(warnings[0]!.message, /remote backend \(llamacpp .*\) answered HTTP 500.*No suggestions until it works again/);
    assert.match(client.statuses.items.at(-1)?.message ?? '', /HTTP 500/);
    await client.insert(uri, 8, ' ');
    assert.deepEqual(insertTexts(await client.complete(uri, { line: 0, character: 9 })), ['total += 1']);
    await waitUntil(
      'the status message to clear',
      () => client.statuses.items.at(-1),
      (s) => s !== undefined && s.message === undefined && s.backend !== undefined,
      5000,
    );
  });

  it('a remote choice that cannot work (no model name for openai) is one warning and no request, not a silent local fallback', async () => {
    const before = client.messages.items.length;
    const requests = fake.counts.requests;
    await client.configure({ backend: { kind: 'openai', url: fake.url, model: '' } });
    const uri = 'file:///work/d.py';
    await client.open(uri, 'a = \n', 'python');
    assert.deepEqual(insertTexts(await client.complete(uri, { line: 0, character: 4 })), []);
    assert.deepEqual(insertTexts(await client.complete(uri, { line: 0, character: 3 })), []);
    const warnings = client.messages.items.slice(before);
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(warnings[0]!.message, /needs "kiln\.backend\.model"/);
    assert.equal(fake.counts.requests, requests);
  });

  it('back to local: the remote server gets no more requests', async () => {
    await client.configure({ backend: { kind: 'local', url: fake.url } });
    const requests = fake.counts.requests;
    const uri = 'file:///work/c.py';
    await client.open(uri, 'def g(a, b):\n    return a\n', 'python');
    await client.complete(uri, { line: 1, character: 12 });
    assert.equal(fake.counts.requests, requests);
    assert.equal((await client.getStats()).backend, undefined);
  });
});

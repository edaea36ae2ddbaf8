// Bad input to the real server over stdio: requests for unknown documents and positions, malformed
// params (positions that are not non-negative integers, a missing uri, a context that is not an
// object, bad kiln/* params), a 5 MB single-line file, binary-looking text, a missing or corrupt
// model at startup, and invalid settings. Each gets a clear answer or message and the server keeps
// serving. (Broken framing and the lifecycle are in lsp-framing.test.ts.)
import assert from 'node:assert/strict';
import { cpSync, rmSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ErrorCodes, MessageType, ResponseError } from 'vscode-languageserver-protocol/node';
import { ensureBuilt } from '../helpers/built-cli';
import { insertTexts, KilnClient } from '../helpers/lsp-client';
import { TEST_SETTINGS, writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const MAX_TOKENS = 16;
const root = tempDir('kiln-bad-');
const modelDir = join(root, 'model');
const cacheDir = join(root, 'cache');
const clients: KilnClient[] = [];

before(() => {
  ensureBuilt();
  writeTinyCodeModel(modelDir, { endless: true }); // every answer is exactly maxTokens of '+'/'-'
});
after(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
  rmSync(root, { recursive: true, force: true });
});

async function startServer(modelPath: string): Promise<KilnClient> {
  const client = await KilnClient.start({ settings: { ...TEST_SETTINGS, modelPath, maxTokens: MAX_TOKENS, completionMode: 'line' }, initializationOptions: { cacheDir } });
  clients.push(client);
  return client;
}

/** A rejection with this JSON-RPC error code whose message matches. */
function responseError(code: number, message: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof ResponseError, `a ResponseError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  };
}

/** textDocument/inlineCompletion with params as given (the typed client would not send bad ones). */
function rawComplete(client: KilnClient, params: unknown): Promise<unknown> {
  return client.connection.sendRequest('textDocument/inlineCompletion', params);
}

/** Resolves to `promise`'s value, or rejects when it takes longer than `ms` (a hang, not a timing). */
function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('bad requests to a working server', () => {
  let client: KilnClient;
  before(async () => {
    client = await startServer(modelDir);
    assert.equal(client.statuses.items.at(-1)?.state, 'ready', client.stderr);
  });

  it('a document that was never opened: an InvalidParams error', async () => {
    await assert.rejects(
      client.complete('file:///work/never-opened.ts', { line: 0, character: 0 }),
      responseError(ErrorCodes.InvalidParams, /no open document file:\/\/\/work\/never-opened\.ts/),
    );
  });

  it('a line past the end: an InvalidParams error; a character past the line end counts as the line end (LSP)', async () => {
    const uri = 'file:///work/short.py';
    await client.open(uri, 'x = 1\ny = ');
    await assert.rejects(
      client.complete(uri, { line: 2, character: 0 }),
      responseError(ErrorCodes.InvalidParams, /position 2:0 is outside file:\/\/\/work\/short\.py \(2 lines\)/),
    );
    const atEnd = insertTexts(await client.complete(uri, { line: 1, character: 4 }));
    assert.equal(atEnd[0]?.length, MAX_TOKENS);
    assert.deepEqual(insertTexts(await client.complete(uri, { line: 1, character: 400 })), atEnd);
  });

  it('positions that are not non-negative integers: InvalidParams naming the field, and no model work', async () => {
    const uri = 'file:///work/positions.py';
    await client.open(uri, 'a = 1\nb = ');
    const before = await client.getStats();
    for (const bad of [0.5, '1', null, -1, 1e300]) {
      for (const field of ['line', 'character'] as const) {
        const position = { line: 1, character: 4, [field]: bad };
        await assert.rejects(
          rawComplete(client, { textDocument: { uri }, position, context: { triggerKind: 1 } }),
          responseError(ErrorCodes.InvalidParams, new RegExp(`^position\\.${field} must be an integer from 0 to 2147483647, got ${escapeRegExp(JSON.stringify(bad))}$`)),
          `${field} ${JSON.stringify(bad)}`,
        );
      }
    }
    assert.equal((await client.getStats()).answers, before.answers, 'the model never ran');
    assert.equal(insertTexts(await client.complete(uri, { line: 1, character: 4 }))[0]?.length, MAX_TOKENS, 'a good request answers after the bad ones');
  });

  it('a missing textDocument or uri, a context that is not an object: InvalidParams; the server keeps serving', async () => {
    const uri = 'file:///work/shape.py';
    await client.open(uri, 'c = ');
    const position = { line: 0, character: 4 };
    const cases: [unknown, RegExp][] = [
      [{ position, context: { triggerKind: 1 } }, /^textDocument must be an object, got nothing$/],
      [{ textDocument: {}, position, context: { triggerKind: 1 } }, /^textDocument\.uri must be a non-empty string, got nothing$/],
      [{ textDocument: { uri }, position, context: 'invoked' }, /^context must be an object, got "invoked"$/],
      [{ textDocument: { uri }, position, context: { triggerKind: 'auto' } }, /^context\.triggerKind must be 1 \(invoked\) or 2 \(automatic\), got "auto"$/],
      [{ textDocument: { uri }, position: [0, 4], context: { triggerKind: 1 } }, /^position must be an object, got \[0,4\]$/],
    ];
    for (const [params, message] of cases) await assert.rejects(rawComplete(client, params), responseError(ErrorCodes.InvalidParams, message));
    assert.equal(insertTexts(await client.complete(uri, position))[0]?.length, MAX_TOKENS);
  });

  it('kiln/validateModel and kiln/fineTune with bad params: InvalidParams naming the field', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['kiln/validateModel', {}, /^path must be a non-empty string, got nothing$/],
      ['kiln/validateModel', { path: 42 }, /^path must be a non-empty string, got 42$/],
      ['kiln/fineTune', { mode: 'lora' }, /^workspace must be a non-empty string, got nothing$/],
      ['kiln/fineTune', { workspace: root, maxSteps: 0.5 }, /^maxSteps must be a positive integer, got 0\.5$/],
      ['kiln/fineTune', { workspace: root, mode: 'all' }, /^mode must be "lora" or "full", got "all"$/],
      ['kiln/fineTune', { workspace: root, learningRate: '1e-3' }, /^learningRate must be a positive number, got "1e-3"$/],
    ];
    for (const [method, params, message] of cases) {
      await assert.rejects(client.connection.sendRequest(method, params), responseError(ErrorCodes.InvalidParams, message), method);
    }
    assert.equal((await client.getStats()).state, 'ready');
    assert.equal(client.hasExited, false);
  });

  it('a 5 MB single-line file: answered (at the end and in the middle of the line), no crash', async () => {
    const uri = 'file:///work/minified.js';
    const unit = 'let x = [1, 2, 3]; ';
    const text = unit.repeat(Math.ceil((5 * 2 ** 20) / unit.length));
    await client.open(uri, text);
    for (const character of [text.length, Math.floor(text.length / 2)]) {
      const answer = await within(20_000, client.complete(uri, { line: 0, character }), `completion at 0:${character}`);
      assert.equal(insertTexts(answer)[0]?.length, MAX_TOKENS);
    }
    assert.equal((await client.getStats()).state, 'ready');
    assert.equal(client.hasExited, false);
  });

  it('binary-looking text (a NUL near the cursor): an empty answer and no model work', async () => {
    const uri = 'file:///work/blob.bin';
    await client.open(uri, 'PK\u0003\u0004\u0000\u0000header\nname = ');
    const before = await client.getStats();
    assert.deepEqual(insertTexts(await client.complete(uri, { line: 1, character: 7 })), []);
    assert.equal((await client.getStats()).answers, before.answers);
  });

  it('an invalid settings value: one warning naming the setting, the previous value kept, no reload', async () => {
    const uri = 'file:///work/settings.py';
    await client.open(uri, 'total = ');
    await client.configure({ maxTokens: 5 });
    const statuses = client.statuses.items.length;
    const shown = client.messages.items.length;
    await client.configure({ maxTokens: -3, executionProvider: 'gpu' });
    const warnings = await Promise.all([
      client.messages.waitFor((m) => m.message.includes('kiln.maxTokens'), 'the maxTokens warning', 5_000, shown),
      client.messages.waitFor((m) => m.message.includes('kiln.executionProvider'), 'the executionProvider warning', 5_000, shown),
    ]);
    assert.deepEqual(
      warnings.map((m) => m.type),
      [MessageType.Warning, MessageType.Warning],
    );
    assert.match(warnings[0].message, /kiln\.maxTokens: must be an integer from 1 to 1024 \(got -3\); keeping 5/);
    assert.match(warnings[1].message, /kiln\.executionProvider: must be one of .*\(got "gpu"\); keeping "cpu"/);
    // Still serving with the previous values: 5 tokens, and the model was not reloaded.
    assert.equal(insertTexts(await client.complete(uri, { line: 0, character: 8 }))[0]?.length, 5);
    assert.equal((await client.getStats()).last?.decodeTokens, 5);
    assert.equal(client.statuses.items.length, statuses, 'no reload');
    assert.equal(client.messages.items.length, shown + 2, 'one message per invalid setting');
  });
});

const BROKEN_MODELS: [string, () => string, RegExp][] = [
  ['a missing model folder', () => join(root, 'no-such-model'), /no-such-model\/config\.json: not found: a model folder needs a Hugging Face config\.json/],
  [
    'a corrupt model (truncated weights)',
    () => {
      const dir = join(root, 'corrupt');
      cpSync(modelDir, dir, { recursive: true });
      truncateSync(join(dir, 'model.safetensors'), 1000);
      return dir;
    },
    /corrupt\/model\.safetensors: truncated or corrupt/,
  ],
];

for (const [label, makeModel, problem] of BROKEN_MODELS) {
  describe(`${label} at startup`, () => {
    let client: KilnClient;
    let path: string;
    before(async () => {
      path = makeModel();
      client = await startServer(path);
    });

    it('reports state error with a message naming the problem, in kiln/status and once in window/showMessage', async () => {
      const status = client.statuses.items.at(-1)!;
      assert.equal(status.state, 'error');
      assert.ok(status.message?.startsWith(`Kiln could not load the model at ${path}: `), status.message);
      assert.match(status.message!, problem);
      const message = await client.messages.waitFor(() => true, 'window/showMessage', 5_000);
      assert.deepEqual(message, { type: MessageType.Error, message: status.message });
    });

    it('keeps serving: kiln/getStats says why, inline completion answers an empty list (not an error per keystroke), a reload reports again without a second message', async () => {
      const status = client.statuses.items.at(-1)!;
      const stats = await client.getStats();
      assert.equal(stats.state, 'error');
      assert.equal(stats.message, status.message);
      const uri = 'file:///work/a.py';
      await client.open(uri, 'x = ');
      assert.deepEqual(await client.complete(uri, { line: 0, character: 4 }), { items: [] });
      assert.deepEqual(await client.complete(uri, { line: 0, character: 4 }, { explicit: true }), { items: [] });
      assert.deepEqual(await client.reloadModel(), status);
      assert.equal(client.messages.items.length, 1, 'the same problem is shown once');
      assert.equal(client.hasExited, false);
    });

    it('recovers when the setting points at a working model', async () => {
      const from = client.statuses.items.length;
      await client.configure({ modelPath: modelDir });
      await client.statuses.waitFor((s) => s.state === 'ready', 'the model to load', 15_000, from);
      const uri = 'file:///work/b.py';
      await client.open(uri, 'y = ');
      assert.equal(insertTexts(await client.complete(uri, { line: 0, character: 4 }))[0]?.length, MAX_TOKENS);
    });
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

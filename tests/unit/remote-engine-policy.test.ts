// Everything above the model is shared with the local path when a remote backend computes: typing
// through a shown suggestion, typing into one still streaming, and the answer cache all answer with
// no request to the server; a speculated request that failed leaves nothing in the cache; and the FIM
// prompt a raw-prompt API gets is the template spelled out.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type CompletionModel, loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { fimPromptText } from '../../server/src/completion/remote-generation';
import { DEFAULT_SETTINGS, type KilnSettings } from '../../server/src/lsp/settings';
import { createTextBackend } from '../../server/src/remote/backend-settings';
import { RemoteError } from '../../server/src/remote/http-stream';
import type { TextBackend } from '../../server/src/remote/text-backend';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { type FakeInferenceServer, scriptedEngine, startFakeInferenceServer } from '../helpers/fake-inference-server';
import { TEST_SETTINGS, writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';
import { waitUntil } from '../helpers/wait';

const PIECES = ['value', ' =', ' 1', ' +', ' 2', '\n'];
let dir: string;
let model: CompletionModel;
let fast: FakeInferenceServer;
let slow: FakeInferenceServer;
const settings: KilnSettings = { ...DEFAULT_SETTINGS, ...TEST_SETTINGS, completionMode: 'line', maxTokens: 8 };

before(async () => {
  dir = tempDir('kiln-remote-policy-');
  writeTinyCodeModel(join(dir, 'model'), { seed: 5 });
  model = await loadCompletionModel(join(dir, 'model'), { fimOrder: 'auto', quantization: 'none' }, { executionProvider: 'cpu', threads: 1 });
  fast = await startFakeInferenceServer({ engine: scriptedEngine(PIECES), modelName: 'm' });
  slow = await startFakeInferenceServer({ engine: scriptedEngine(PIECES), modelName: 'm', pieceDelayMs: 150 });
});
after(async () => {
  await fast?.close();
  await slow?.close();
  await model?.loaded.session.release();
  rmSync(dir, { recursive: true, force: true });
});

const engineFor = (server: FakeInferenceServer) =>
  new CompletionEngine(model, settings, new LatencyStats(), {
    remote: { backend: createTextBackend({ kind: 'openai', url: server.url, model: 'm', fallbackToLocal: false })!, fallbackToLocal: false },
  });

describe('a remote backend under the shared policy', () => {
  test('typing through the shown suggestion and the answer cache send nothing to the server', async () => {
    const engine = engineFor(fast);
    const uri = 'file:///p.py';
    const first = await engine.complete({ uri, text: 'x = ', offset: 4 });
    assert.deepEqual(first.items, ['value = 1 + 2']);
    const requests = fast.counts.requests;
    const typed = await engine.complete({ uri, text: 'x = va', offset: 6 });
    assert.deepEqual([typed.items, typed.timings.source], [['lue = 1 + 2'], 'typing-through']);
    engine.forgetDocument(uri);
    const again = await engine.complete({ uri, text: 'x = ', offset: 4 });
    assert.deepEqual([again.items, again.timings.source], [['value = 1 + 2'], 'answer-cache']);
    assert.equal(fast.counts.requests, requests, 'no request for either');
  });

  test('typing what a still-streaming suggestion begins with waits for it instead of asking again', async () => {
    const engine = engineFor(slow);
    const uri = 'file:///q.py';
    const requests = slow.counts.requests;
    const sent = slow.counts.piecesSent;
    const first = engine.complete({ uri, text: 'y = ', offset: 4 });
    // 'value' and ' =' have streamed (the client reads them in this same process), ' 1' and the newline not yet
    await waitUntil(
      'two pieces sent',
      () => slow.counts.piecesSent - sent,
      (n) => n >= 2,
      10_000,
    );
    const typed = await engine.complete({ uri, text: 'y = v', offset: 5 });
    assert.deepEqual((await first).items, ['value = 1 + 2']);
    assert.deepEqual([typed.items, typed.timings.source], [['alue = 1 + 2'], 'typing-through']);
    assert.equal(slow.counts.requests - requests, 1, 'one request for both keystrokes');
    assert.equal(slow.counts.closedByClient, 0, 'and it was not superseded');
  });
});

/** A backend that answers `text` piece by piece, except that call number `failCall` fails as an HTTP 500 would. */
function switchableBackend(text: string[], failCall: number) {
  const state = { calls: 0, settled: 0 };
  const backend: TextBackend = {
    kind: 'openai',
    label: 'openai test',
    async complete(_request, options) {
      state.calls++;
      try {
        if (state.calls === failCall) throw new RemoteError('answered HTTP 500: down for a moment', 'http', 500);
        let so = '';
        for (const piece of text) {
          so += piece;
          if (options.onText && !options.onText(so)) return { text: so, end: 'stopped', requestMs: 1, pieces: 1 };
        }
        return { text: so, end: 'done', requestMs: 1, pieces: text.length };
      } finally {
        state.settled++;
      }
    },
  };
  return { backend, state };
}

describe('speculation with a remote backend', () => {
  for (const fallbackToLocal of [false, true]) {
    test(`a speculated request that failed (fallback ${fallbackToLocal ? 'on' : 'off'}) is not cached: the position asks the backend once it answers`, async () => {
      const { backend, state } = switchableBackend(['value', ' = 1', '\n'], 2); // the speculated next request fails
      const engine = new CompletionEngine(model, { ...settings, speculate: true }, new LatencyStats(), { remote: { backend, fallbackToLocal } });
      const uri = 'file:///spec.py';
      const first = await engine.complete({ uri, text: 'x = ', offset: 4 });
      assert.deepEqual(first.items, ['value = 1']);
      await waitUntil(
        'the speculated request to settle',
        () => state.settled,
        (n) => n >= 2,
        10_000,
      );
      await new Promise((resolve) => setTimeout(resolve, 20)); // its answer handled
      engine.forgetDocument(uri); // no typing-through from the suggestion shown
      const next = await engine.complete({ uri, text: 'x = value = 1', offset: 13 });
      assert.equal(next.timings.source, 'model', `asked the backend again, not a cached failure: ${JSON.stringify(next.items)}`);
      assert.deepEqual(next.items, ['value = 1'], "the backend's answer");
    });
  }
});

describe('repository context with a remote backend', () => {
  test('a raw-prompt API gets the context block spelled out before the FIM prompt; llama.cpp gets the snippets as input_extra', async () => {
    const snippet = { source: 'imports' as const, path: 'lib.py', startLine: 0, endLine: 1, text: 'def helper_fn(): pass\n', score: 1 };
    const context = { contextFor: () => ({ path: 'p.py', repoName: 'repo', candidates: [snippet] }) };
    const withContext = (kind: 'openai' | 'llamacpp') =>
      new CompletionEngine(model, settings, new LatencyStats(), {
        context,
        remote: { backend: createTextBackend({ kind, url: fast.url, model: 'm', fallbackToLocal: false })!, fallbackToLocal: false },
      });
    const text = 'x = ';
    const openai = withContext('openai');
    await openai.complete({ uri: 'file:///p.py', text, offset: 4 });
    const block = openai.promptFor({ uri: 'file:///p.py', text, offset: 4 }).block;
    assert.ok(block.snippets.length === 1, 'the block holds the snippet');
    const sent = fast.counts.bodies.at(-1)!.body;
    const fim = fimPromptText(model.fim, model.tokenizer, text, '', model.order);
    assert.equal(sent.prompt, model.tokenizer.decode(block.tokens) + fim);
    assert.ok(String(sent.prompt).includes('def helper_fn(): pass'), 'the snippet reached the prompt');
    await withContext('llamacpp').complete({ uri: 'file:///p.py', text, offset: 4 });
    assert.deepEqual(fast.counts.bodies.at(-1)!.body.input_extra, [{ filename: 'lib.py', text: snippet.text }]);
  });
});

describe('fimPromptText', () => {
  test("spells the template's markers in its order, without BOS (servers add their own)", () => {
    const names = new Map([
      [1, '<s>'],
      [2, '<PRE>'],
      [3, '<SUF>'],
      [4, '<MID>'],
    ]);
    const tokenizer = { idToToken: (id: number) => names.get(id) };
    const template = { family: 'codellama', prefixId: 2, suffixId: 3, middleId: 4, stopIds: [], bosId: 1, orders: ['psm', 'spm'] as const };
    assert.equal(fimPromptText(template, tokenizer, 'a(', ')', 'psm'), '<PRE>a(<SUF>)<MID>');
    assert.equal(fimPromptText(template, tokenizer, 'a(', ')', 'spm'), '<PRE><SUF>)<MID>a(');
  });
});

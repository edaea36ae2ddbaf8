// Kiln's three remote backends against llama.cpp answering over HTTP on 127.0.0.1: a fake server
// (tests/helpers/fake-inference-server.ts) in front of node-llama-cpp that takes only the request
// fields each API's documentation lists (tests/helpers/inference-api-schemas.ts cites them) and
// answers in its documented stream format. Checked: the request Kiln sends, field by field; the
// streamed text equals llama.cpp's own greedy continuation of the same prompt; the engine's answer
// through each backend equals Kiln's local answer on the same weights; a typing storm closes every
// superseded request's connection.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type CompletionModel, loadCompletionModel } from '../../server/src/completion/completion-model';
import { runComplete } from '../../server/src/commands/complete';
import { CompletionEngine } from '../../server/src/completion/engine';
import { fimPromptText } from '../../server/src/completion/remote-generation';
import { createStopRules } from '../../server/src/completion/stop-rules';
import { applyTransforms } from '../../server/src/completion/transforms';
import { DEFAULT_SETTINGS, type KilnSettings } from '../../server/src/lsp/settings';
import { exportGguf } from '../../server/src/model/export/gguf';
import { createTextBackend } from '../../server/src/remote/backend-settings';
import type { InfillRequest, RemoteKind } from '../../server/src/remote/text-backend';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { type FakeInferenceServer, startFakeInferenceServer } from '../helpers/fake-inference-server';
import { LlamaGreedy } from '../helpers/llama-greedy';
import { TEST_SETTINGS, writeTinyCodeModel } from '../helpers/tiny-code-model';
import { waitUntil } from '../helpers/wait';

const MODEL_NAME = 'tiny-coder';
const KINDS: RemoteKind[] = ['openai', 'llamacpp', 'ollama'];
const DOC = 'def parse_options(text):\n    value = json.loads(text)\n    return value\n\nclass Config:\n    def __init__(self, path):\n        self.path = path\n';
/** Cursor positions: mid-line, end of a line, an empty line. */
const CURSORS = [DOC.indexOf('json') + 2, DOC.indexOf('(text)') + 6, DOC.indexOf('\n\nclass') + 1, DOC.length];

const root = mkdtempSync(join(tmpdir(), 'kiln-remote-'));
let llama: LlamaGreedy;
let fake: FakeInferenceServer;
let model: CompletionModel;
const settings: KilnSettings = { ...DEFAULT_SETTINGS, ...TEST_SETTINGS, tokenHealing: false, lookupDecoding: false, maxTokens: 12, completionMode: 'line' };

before(async () => {
  // PSM: the order llama.cpp's /infill builds, so all three backends and Kiln see one prompt
  const dir = writeTinyCodeModel(join(root, 'model'), { seed: 7, fimOrders: ['psm'] });
  const gguf = join(root, 'model.gguf');
  await exportGguf(dir, gguf, { dtype: 'f32' });
  llama = await LlamaGreedy.load(gguf);
  fake = await startFakeInferenceServer({ engine: llama, modelName: MODEL_NAME });
  model = await loadCompletionModel(dir, { fimOrder: 'auto', quantization: 'none' }, { executionProvider: 'cpu', threads: 1 });
});

after(async () => {
  await fake?.close();
  await model?.loaded.session.release();
  await llama?.dispose();
  rmSync(root, { recursive: true, force: true });
});

/** llama.cpp's greedy pieces, stopped and kept as Kiln's stop rules say (one piece per token), then transformed. */
async function expectedAnswer(prompt: string, before: string, after: string): Promise<string[]> {
  const lineBefore = before.slice(before.lastIndexOf('\n') + 1);
  const stop = createStopRules({ mode: 'line', lineBefore, textAfter: after, maxTokens: settings.maxTokens, deadline: Infinity });
  let text = '';
  let n = 0;
  let kept: string | undefined;
  for await (const piece of llama.generate(llama.tokenizePrompt(prompt), { maxTokens: settings.maxTokens, signal: new AbortController().signal })) {
    text += piece;
    const decision = stop.check(text, ++n);
    if (decision.stop) {
      kept = decision.text;
      break;
    }
  }
  const out = applyTransforms(kept ?? stop.finish(text).text, { lineBefore, textAfter: after });
  return out ? [out] : [];
}

const backendFor = (kind: RemoteKind, url = fake.url) => createTextBackend({ kind, url, model: MODEL_NAME, fallbackToLocal: false })!;

function requestAt(offset: number, maxTokens = 12): InfillRequest {
  const prefix = DOC.slice(0, offset);
  const suffix = DOC.slice(offset);
  return { prefix, suffix, prompt: fimPromptText(model.fim, model.tokenizer, prefix, suffix, 'psm'), extra: [], maxTokens, timeLimitMs: 5000, indent: 0, temperature: 0, topP: 1 };
}

describe('remote backends against llama.cpp over HTTP', () => {
  test('each backend sends exactly the documented fields, with the values Kiln chose', async () => {
    const req = { ...requestAt(CURSORS[0]!), indent: 4, extra: [{ filename: 'util.py', text: 'import json\n' }] };
    const expected: Record<RemoteKind, Record<string, unknown>> = {
      openai: { model: MODEL_NAME, prompt: req.prompt, max_tokens: 12, temperature: 0, top_p: 1, stream: true },
      llamacpp: {
        input_prefix: req.prefix,
        input_suffix: req.suffix,
        input_extra: [{ filename: 'util.py', text: 'import json\n' }],
        n_predict: 12,
        t_max_predict_ms: 5000,
        n_indent: 4,
        cache_prompt: true,
        timings_per_token: true,
        temperature: 0,
        top_p: 1,
        stream: true,
      },
      ollama: { model: MODEL_NAME, prompt: req.prompt, raw: true, stream: true, options: { num_predict: 12, temperature: 0, top_p: 1 } },
    };
    for (const kind of KINDS) {
      const before = fake.counts.bodies.length;
      await backendFor(kind).complete(req, { signal: new AbortController().signal });
      assert.equal(fake.counts.bodies.length, before + 1, `${kind}: the fake accepted the request (refusals: ${fake.counts.refusals.join('; ')})`);
      assert.deepEqual(fake.counts.bodies.at(-1)!.body, expected[kind], `${kind} request body`);
    }
  });

  for (const kind of KINDS) {
    test(`${kind}: the streamed text is llama.cpp's greedy continuation of the same prompt`, async () => {
      for (const offset of CURSORS) {
        const req = requestAt(offset);
        const reference = await llama.greedyText(req.prompt, req.maxTokens);
        const result = await backendFor(kind).complete(req, { signal: new AbortController().signal });
        assert.equal(result.text, reference, `${kind} at offset ${offset}`);
        assert.equal(result.end, 'done');
        if (kind !== 'openai') assert.ok(result.server?.promptTokens !== undefined && result.server.promptTokens > 0, `${kind} reports its own timings`);
      }
    });
  }

  test('an early stop closes the connection: the server sees the client go', async () => {
    const closed = fake.counts.closedByClient;
    const result = await backendFor('llamacpp').complete(requestAt(CURSORS[0]!, 64), { signal: new AbortController().signal, onText: (t) => t.length < 2 });
    assert.equal(result.end, 'stopped');
    await waitUntil(
      'the server to see the connection closed',
      () => fake.counts.closedByClient,
      (n) => n === closed + 1,
      5000,
    );
  });

  // The engine's answer is llama.cpp's greedy continuation of the prompt Kiln built, cut by Kiln's stop
  // rules as the pieces stream in and post-processed by its transforms, the same policy the local
  // decode applies. (It is not compared with Kiln's local answer: a server tokenizes the prompt text
  // as a whole, while Kiln's prompt tokens are per-line pieces, so BPE merges across a line start differ.)
  for (const kind of KINDS) {
    test(`${kind}: the engine's answer is llama.cpp's greedy continuation under Kiln's stop rules and transforms`, async () => {
      const engine = new CompletionEngine(model, settings, new LatencyStats(), { remote: { backend: backendFor(kind), fallbackToLocal: false } });
      let suggested = 0;
      for (const [i, offset] of CURSORS.entries()) {
        const answer = await engine.complete({ uri: `file:///remote-${kind}-${i}.py`, text: DOC, offset });
        const sent = fake.counts.bodies.at(-1)!.body;
        const prefix = (sent.input_prefix as string | undefined) ?? DOC.slice(0, offset);
        const suffix = (sent.input_suffix as string | undefined) ?? DOC.slice(offset);
        const expected = await expectedAnswer(fimPromptText(model.fim, model.tokenizer, prefix, suffix, 'psm'), DOC.slice(0, offset), DOC.slice(offset));
        assert.deepEqual(answer.items, expected, `${kind} at offset ${offset}`);
        assert.equal(answer.timings.remote?.backend, kind);
        assert.equal(answer.timings.source, 'model');
        if (answer.items[0]) suggested++;
      }
      assert.ok(suggested >= 2, `most cursors got a suggestion (${suggested} of ${CURSORS.length})`);
    });
  }

  test('kiln complete --backend answers what the engine answers through the same backend', async () => {
    const file = join(root, 'doc.py');
    writeFileSync(file, DOC);
    const offset = CURSORS[1]!;
    const line = DOC.slice(0, offset).split('\n').length;
    const col = offset - DOC.lastIndexOf('\n', offset - 1);
    for (const kind of KINDS) {
      const out: string[] = [];
      const args = [
        file,
        '--line',
        String(line),
        '--col',
        String(col),
        '--model',
        join(root, 'model'),
        '--json',
        '--ep',
        'cpu',
        '--threads',
        '1',
        '--max-tokens',
        '12',
        '--mode',
        'line',
      ];
      const code = await runComplete([...args, '--backend', kind, '--backend-url', fake.url, '--backend-model', MODEL_NAME], (t) => out.push(t));
      assert.equal(code, 0);
      const cli = JSON.parse(out.join('')) as { completion: string; backend?: string };
      const engine = new CompletionEngine(model, { ...settings, tokenHealing: true }, new LatencyStats(), { remote: { backend: backendFor(kind), fallbackToLocal: false } });
      const answer = await engine.complete({ uri: `file://${file}`, text: DOC, offset });
      assert.equal(cli.completion, answer.items[0] ?? '', kind);
      assert.match(cli.backend ?? '', new RegExp(`^${kind} `));
    }
    await assert.rejects(
      runComplete([file, '--line', '1', '--col', '1', '--backend', 'openai', '--backend-url', fake.url], () => {}),
      /--backend-model/,
    );
  });

  test('a typing storm: every superseded request is aborted and the server sees its connection closed', async () => {
    const slow = await startFakeInferenceServer({ engine: llama, modelName: MODEL_NAME, pieceDelayMs: 40 });
    try {
      const engine = new CompletionEngine(model, { ...settings, maxTokens: 24 }, new LatencyStats(), {
        remote: { backend: backendFor('openai', slow.url), fallbackToLocal: false },
      });
      const uri = 'file:///storm.py';
      const typed = 'x = pars';
      const answers: Promise<unknown>[] = [];
      for (let n = 1; n <= typed.length; n++) {
        const text = `${DOC}${typed.slice(0, n)}`;
        answers.push(engine.complete({ uri, text, offset: text.length }).catch((err: unknown) => err));
        await new Promise((resolve) => setTimeout(resolve, 60)); // a keystroke every 60 ms, slower than a request
      }
      await Promise.all(answers);
      await waitUntil(
        'every started request to end',
        () => ({ ...slow.counts }),
        (c) => c.completed + c.closedByClient === c.requests,
        5000,
      );
      assert.ok(slow.counts.requests >= 2, `requests reached the server: ${slow.counts.requests}`);
      assert.equal(slow.counts.completed, 1, 'only the newest request ran to its end');
      assert.equal(slow.counts.closedByClient, slow.counts.requests - 1, 'every other request was closed by the client');
    } finally {
      await slow.close();
    }
  });
});

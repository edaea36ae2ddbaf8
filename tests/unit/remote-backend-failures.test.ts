// A remote backend that is down, slow, failing, malformed or asked for a model it does not serve:
// each request fails with one clear message (never a hang, never an unbounded read), repeated failures
// are reported once, the report clears when the server answers again, retries are bounded, and the
// local model answers only when the user configured the fallback.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type CompletionModel, loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { remoteFailureMessage, RemoteHealth } from '../../server/src/lsp/remote-health';
import { DEFAULT_SETTINGS, type KilnSettings } from '../../server/src/lsp/settings';
import { createTextBackend } from '../../server/src/remote/backend-settings';
import { RemoteError } from '../../server/src/remote/http-stream';
import type { InfillRequest, RemoteKind } from '../../server/src/remote/text-backend';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { type FakeFault, type FakeInferenceServer, scriptedEngine, startFakeInferenceServer } from '../helpers/fake-inference-server';
import { TEST_SETTINGS, writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const KINDS: RemoteKind[] = ['openai', 'llamacpp', 'ollama'];
const LIMITS = { headersTimeoutMs: 300, idleTimeoutMs: 300, totalTimeoutMs: 5000, retries: 1, retryDelayMs: 20 };

/** A scripted generation: the same short line whatever the prompt. */
const SCRIPTED = scriptedEngine(['value', ' =', ' 1', '\n', 'more']);

const REQUEST: InfillRequest = {
  prefix: 'x = ',
  suffix: '\n',
  prompt: '<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>',
  extra: [],
  maxTokens: 8,
  timeLimitMs: 1000,
  indent: 0,
  temperature: 0,
  topP: 1,
};

let fake: FakeInferenceServer;
let downUrl: string;
let dir: string;
let model: CompletionModel;
const settings: KilnSettings = { ...DEFAULT_SETTINGS, ...TEST_SETTINGS, maxTokens: 8, completionMode: 'line' };

before(async () => {
  fake = await startFakeInferenceServer({ engine: SCRIPTED, modelName: 'served' });
  // a port that was just free: nothing listens there
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  downUrl = `http://127.0.0.1:${(probe.address() as { port: number }).port}`;
  await new Promise((resolve) => probe.close(resolve));
  dir = tempDir('kiln-remote-fail-');
  writeTinyCodeModel(join(dir, 'model'), { seed: 3 });
  model = await loadCompletionModel(join(dir, 'model'), { fimOrder: 'auto', quantization: 'none' }, { executionProvider: 'cpu', threads: 1 });
});

after(async () => {
  await fake?.close();
  await model?.loaded.session.release();
  rmSync(dir, { recursive: true, force: true });
});

const backend = (kind: RemoteKind, options: { url?: string; model?: string } = {}) =>
  createTextBackend({ kind, url: options.url ?? fake.url, model: options.model ?? 'served', fallbackToLocal: false }, { limits: LIMITS })!;

async function failure(kind: RemoteKind, fault: FakeFault, options: { url?: string; model?: string } = {}): Promise<RemoteError> {
  fake.fault = fault;
  try {
    await backend(kind, options).complete(REQUEST, { signal: new AbortController().signal });
  } catch (err) {
    assert.ok(err instanceof RemoteError, `${kind}/${fault}: a RemoteError, got ${String(err)}`);
    return err;
  } finally {
    fake.fault = 'none';
  }
  assert.fail(`${kind}/${fault}: the request succeeded`);
}

describe('remote backend failures', () => {
  for (const kind of KINDS) {
    test(`${kind}: each failure is one RemoteError with a message that says what happened`, async () => {
      const cases: [FakeFault | 'down' | 'wrong-model', RemoteError['kind'], RegExp][] = [
        ['down', 'unreachable', /unreachable \(ECONNREFUSED\)/],
        ['http-500', 'http', /HTTP 500: the model crashed/],
        ['malformed-json', 'protocol', /malformed JSON/],
        ['hang', 'timeout', /did not answer within 0\.3 s/],
        ['stall', 'timeout', /sent nothing for 0\.3 s/],
        ['huge-line', 'protocol', /sent a line longer than 1048576 bytes/],
        ['endless-lines', 'protocol', /sent more than 4194304 bytes for one completion/],
      ];
      if (kind !== 'llamacpp') cases.push(['wrong-model', 'http', /HTTP 404: .*nosuch/]); // llama-server serves one model, whatever is asked
      for (const [what, errKind, message] of cases) {
        const err =
          what === 'down' ? await failure(kind, 'none', { url: downUrl }) : what === 'wrong-model' ? await failure(kind, 'none', { model: 'nosuch' }) : await failure(kind, what);
        assert.equal(err.kind, errKind, `${kind}/${what}: ${err.message}`);
        assert.match(err.message, message, `${kind}/${what}`);
      }
    });
  }

  test('a 503 is retried once, then reported; a refused request shape is never retried', async () => {
    const before = fake.counts.requests;
    const err = await failure('openai', 'http-503');
    assert.equal(err.status, 503);
    assert.equal(fake.counts.requests - before, 2, 'one try and one bounded retry');
    const refused = fake.counts.requests;
    await failure('openai', 'none', { model: 'nosuch' });
    assert.equal(fake.counts.requests - refused, 1, 'a 404 is not retried');
  });

  test('repeated failures give one report; it clears once the backend answers; no fallback unless configured', async () => {
    const reports: (string | undefined)[] = [];
    const health = new RemoteHealth((m) => reports.push(m));
    const b = backend('llamacpp');
    const engine = new CompletionEngine(model, settings, new LatencyStats(), {
      remote: { backend: b, fallbackToLocal: false, onOutcome: (err) => health.outcome(b.label, false, err) },
    });
    fake.fault = 'http-500';
    try {
      for (let i = 0; i < 5; i++) {
        const answer = await engine.complete({ uri: 'file:///a.py', text: `x${i} = `, offset: 5 });
        assert.deepEqual(answer.items, [], 'no suggestion, and no local one: fallback is off');
      }
    } finally {
      fake.fault = 'none';
    }
    assert.equal(reports.length, 1, `one report for five failures: ${JSON.stringify(reports)}`);
    assert.equal(reports[0], remoteFailureMessage(b.label, false, new RemoteError('answered HTTP 500: the model crashed (injected)', 'http', 500)));
    assert.match(reports[0]!, /kiln\.backend\.fallbackToLocal/);
    const ok = await engine.complete({ uri: 'file:///a.py', text: 'y = ', offset: 4 });
    assert.deepEqual(ok.items, ['value = 1'], 'the scripted server answers again');
    assert.deepEqual(reports, [reports[0], undefined], 'the report cleared');
  });

  test('with kiln.backend.fallbackToLocal the local model answers while the backend is down, and it is not cached', async () => {
    const local = new CompletionEngine(model, settings, new LatencyStats());
    const expected = await local.complete({ uri: 'file:///l.py', text: 'def f(x):\n    return ', offset: 21 });
    const reports: (string | undefined)[] = [];
    const b = backend('openai', { url: downUrl });
    const engine = new CompletionEngine(model, settings, new LatencyStats(), {
      server: local.server,
      remote: { backend: b, fallbackToLocal: true, onOutcome: (err) => reports.push(err === undefined ? undefined : remoteFailureMessage(b.label, true, err)) },
    });
    const answer = await engine.complete({ uri: 'file:///r.py', text: 'def f(x):\n    return ', offset: 21 });
    assert.deepEqual(answer.items, expected.items, 'the local answer');
    assert.equal(answer.timings.remote, undefined);
    engine.forgetDocument('file:///r.py'); // no typing-through from the suggestion shown
    const again = await engine.complete({ uri: 'file:///r.py', text: 'def f(x):\n    return ', offset: 21 });
    assert.equal(again.timings.source, 'model', 'the fallback answer was not cached: the backend is asked again');
    assert.equal(reports.length, 2);
    assert.match(reports[0]!, /unreachable.*The local model answers until it works again/);
  });

  test('kiln.timeLimitMs holds when the server goes quiet: the text so far is kept, or nothing came and that is the failure', async () => {
    const slow = await startFakeInferenceServer({ engine: scriptedEngine(['alpha', ' beta', ' gamma', ' delta', ' epsilon', '\n']), modelName: 'served', pieceDelayMs: 250 });
    try {
      const outcomes: unknown[] = [];
      const b = createTextBackend({ kind: 'llamacpp', url: slow.url, model: '', fallbackToLocal: false })!;
      const engine = new CompletionEngine(model, { ...settings, timeLimitMs: 600 }, new LatencyStats(), {
        remote: { backend: b, fallbackToLocal: false, onOutcome: (e) => outcomes.push(e) },
      });
      const answer = await engine.complete({ uri: 'file:///t.py', text: 'x = ', offset: 4 });
      assert.ok(
        answer.items.length === 1 && 'alpha beta gamma delta epsilon'.startsWith(answer.items[0]!) && answer.items[0]!.length < 30,
        `a prefix: ${JSON.stringify(answer.items)}`,
      );
      assert.equal(answer.timings.remote?.stoppedEarly, true);
      assert.deepEqual(outcomes, [undefined]);
      const closed = slow.counts.closedByClient;
      slow.fault = 'hang';
      const none = await engine.complete({ uri: 'file:///t.py', text: 'z = ', offset: 4 });
      assert.deepEqual(none.items, []);
      assert.match(String((outcomes[1] as Error | undefined)?.message), /sent nothing within 600 ms \("kiln\.timeLimitMs"\)/);
      assert.ok(slow.counts.closedByClient > closed, 'the silent request was closed');
    } finally {
      await slow.close();
    }
  });

  test('an abort (a newer keystroke) is not a failure: nothing is reported', async () => {
    const slow = await startFakeInferenceServer({ engine: SCRIPTED, modelName: 'served', pieceDelayMs: 200 });
    try {
      const outcomes: unknown[] = [];
      const b = createTextBackend({ kind: 'ollama', url: slow.url, model: 'served', fallbackToLocal: false })!;
      const engine = new CompletionEngine(model, settings, new LatencyStats(), { remote: { backend: b, fallbackToLocal: false, onOutcome: (e) => outcomes.push(e) } });
      const first = engine.complete({ uri: 'file:///s.py', text: 'a = ', offset: 4 }).catch((e: unknown) => e);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const second = await engine.complete({ uri: 'file:///s.py', text: 'a = b', offset: 5 });
      await first;
      assert.deepEqual(outcomes, [undefined], 'only the newest request reported, as a success');
      assert.deepEqual(second.items, ['value = 1']);
    } finally {
      await slow.close();
    }
  });
});

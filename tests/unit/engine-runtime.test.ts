// The completion engine over the runtime's inference server: explicit candidates are N slots of the
// one decode loop (one session run per step for all, their tokens in telemetry); requests of several
// documents answer as each alone would while sharing forwards; a model swap lands between steps; a
// reload of the same folder reuses its tokenizer while the tokenizer files are unchanged.
import assert from 'node:assert/strict';
import { rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { parseSettings } from '../../server/src/lsp/settings';
import { InferenceServer } from '../../server/src/runtime/inference-server';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { countRuns } from '../helpers/counting-runner';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-candidates-');
const MAX_TOKENS = 12;
const CANDIDATES = 3;
const settings = { ...parseSettings({ maxTokens: MAX_TOKENS, candidates: CANDIDATES, tokenHealing: false, completionMode: 'line', temperature: 0 }).settings, speculate: false };
const text = 'def main():\n    values = [1, 2, 3]\n    total = ';

after(() => rmSync(root, { recursive: true, force: true }));

describe('explicit candidates', () => {
  it('record the tokens of every candidate and decode them together, one run per step', async () => {
    // endless: the greedy row never stops before MAX_TOKENS, so the batch runs MAX_TOKENS - 1 steps
    const dir = writeTinyCodeModel(join(root, 'model'), { endless: true });
    const model = await loadCompletionModel(dir, { fimOrder: 'auto', quantization: 'none' }, { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') });
    try {
      const counted = countRuns(model.loaded.session);
      const server = new InferenceServer(counted.session, { kvBudgetBytes: 2 ** 24 });
      const engine = new CompletionEngine(model, settings, new LatencyStats(), { server });
      const single = await engine.complete({ uri: 'file:///a.py', text, offset: text.length });
      assert.equal(single.timings.decodeTokens, MAX_TOKENS);
      counted.runs.length = 0;
      const many = await engine.complete({ uri: 'file:///b.py', text, offset: text.length, explicit: true });
      assert.ok(many.timings.decodeTokens > MAX_TOKENS, `candidates' tokens are counted: ${many.timings.decodeTokens}`);
      const steps = counted.runs.slice(1); // after the prompt's prefill
      assert.ok(steps.length <= MAX_TOKENS - 1, `${steps.length} decode runs for ${CANDIDATES} candidates of up to ${MAX_TOKENS} tokens`);
      assert.equal(steps[0], CANDIDATES, 'the first step advances every candidate in one run');
      assert.equal(steps.reduce((a, b) => a + b, 0) + CANDIDATES, many.timings.decodeTokens, "every token but each row's last came from a batched step");
    } finally {
      await model.loaded.session.release();
    }
  });
});

describe('two documents at once', () => {
  it('answer as each alone would, their decode steps sharing forwards', async () => {
    const dir = writeTinyCodeModel(join(root, 'model-docs'), { seed: 3 });
    const model = await loadCompletionModel(dir, { fimOrder: 'auto', quantization: 'none' }, { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') });
    const texts = [text, 'import os\n\ndef read(path):\n    with open(path) as f:\n        return ', 'class Point:\n    def __init__(self, x, y):\n        self.x = '];
    const one = { ...settings, candidates: 1 };
    try {
      const alone: string[][] = [];
      for (const [i, t] of texts.entries())
        alone.push((await new CompletionEngine(model, one, new LatencyStats()).complete({ uri: `file:///alone-${i}.py`, text: t, offset: t.length })).items);
      const counted = countRuns(model.loaded.session);
      const engine = new CompletionEngine(model, one, new LatencyStats(), { server: new InferenceServer(counted.session, { kvBudgetBytes: 2 ** 24 }) });
      const together = await Promise.all(texts.map((t, i) => engine.complete({ uri: `file:///together-${i}.py`, text: t, offset: t.length })));
      assert.deepEqual(
        together.map((a) => a.items),
        alone,
      );
      assert.ok(
        counted.runs.some((b) => b > 1),
        `decode steps of different documents batched: runs of ${JSON.stringify(counted.runs)}`,
      );
    } finally {
      await model.loaded.session.release();
    }
  });
});

describe('a model swap', () => {
  it('ends the request running on the old weights between two steps; the next request uses the new ones', async () => {
    const opts = { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') } as const;
    const endless = await loadCompletionModel(writeTinyCodeModel(join(root, 'swap-old'), { endless: true }), { fimOrder: 'auto', quantization: 'none' }, opts);
    const next = await loadCompletionModel(writeTinyCodeModel(join(root, 'swap-new'), { seed: 5 }), { fimOrder: 'auto', quantization: 'none' }, opts);
    const long = { ...settings, candidates: 1, maxTokens: 400, timeLimitMs: 60_000 };
    try {
      const engine = new CompletionEngine(endless, long, new LatencyStats());
      const running = engine.complete({ uri: 'file:///swap.py', text, offset: text.length });
      await new Promise((r) => setTimeout(r, 50)); // well into its 400 decode steps
      const old = await engine.swapModel(next);
      assert.equal(old, endless.loaded.session);
      await assert.rejects(running, (err: Error) => err.name === 'ModelSwappedError');
      const after = await engine.complete({ uri: 'file:///swap.py', text, offset: text.length });
      const fresh = await new CompletionEngine(next, long, new LatencyStats()).complete({ uri: 'file:///fresh.py', text, offset: text.length });
      assert.deepEqual(after.items, fresh.items);
    } finally {
      await endless.loaded.session.release();
      await next.loaded.session.release();
    }
  });
});

describe('a reload of the same folder', () => {
  it('reuses the tokenizer while its files are unchanged, and reads them again once they change or the folder differs', async () => {
    const opts = { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') } as const;
    const choices = { fimOrder: 'auto', quantization: 'none' } as const;
    const dir = writeTinyCodeModel(join(root, 'reload'));
    const first = await loadCompletionModel(dir, choices, opts);
    const again = await loadCompletionModel(dir, choices, opts, first);
    const other = await loadCompletionModel(writeTinyCodeModel(join(root, 'reload-other')), choices, opts, first);
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(dir, 'tokenizer.json'), later, later); // an edited tokenizer.json
    const edited = await loadCompletionModel(dir, choices, opts, again);
    try {
      assert.equal(again.tokenizer, first.tokenizer);
      assert.equal(again.fim, first.fim);
      assert.notEqual(other.tokenizer, first.tokenizer);
      assert.notEqual(edited.tokenizer, first.tokenizer);
      assert.deepEqual(edited.tokenizer.encode(text), first.tokenizer.encode(text));
    } finally {
      await Promise.all([first, again, other, edited].map((m) => m.loaded.session.release()));
    }
  });
});

describe('calibration', () => {
  it("measures the model's prefill and decode rates in one prefill and one step, pools nothing, and starts again after a swap", async () => {
    const opts = { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') } as const;
    const choices = { fimOrder: 'auto', quantization: 'none' } as const;
    const model = await loadCompletionModel(writeTinyCodeModel(join(root, 'calibrated')), choices, opts);
    const next = await loadCompletionModel(writeTinyCodeModel(join(root, 'calibrated-next'), { seed: 5 }), choices, opts);
    try {
      const counted = countRuns(model.loaded.session);
      const server = new InferenceServer(counted.session, { kvBudgetBytes: 2 ** 24 });
      const engine = new CompletionEngine(model, settings, new LatencyStats(), { server });
      assert.equal(engine.throughput.measured, false);
      assert.equal(engine.throughput.reserveMs(16), 0, 'nothing to keep back before anything ran');
      await engine.calibrate();
      assert.deepEqual(counted.runs, [1, 1], 'one prefill run, one decode step');
      assert.ok(engine.throughput.measured);
      assert.ok(engine.throughput.decodeMs(1) > 0 && engine.throughput.reserveMs(16) === engine.throughput.decodeMs(16), 'the step itself is measured');
      assert.equal(server.cachedPrefix(Array.from({ length: 64 }, (_, i) => i)), 0, 'its tokens are nobody’s prompt');
      await engine.calibrate();
      assert.equal(counted.runs.length, 2, 'measured rates are not measured again');

      await engine.swapModel(next);
      assert.equal(engine.throughput.measured, false, "the old model's rates go with it");
      await engine.calibrate();
      assert.ok(engine.throughput.measured);
    } finally {
      await model.loaded.session.release();
      await next.loaded.session.release();
    }
  });
});

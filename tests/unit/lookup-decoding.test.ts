// Lookup decoding is exact: with drafts that are right, partly right and wrong (an oracle built from
// a plain run), with a token-healing constraint on the first tokens and under every stop rule, the
// greedy output and the KV the slot is left holding equal plain decoding's, in fewer forwards when
// drafts are right. The n-gram drafter finds the longest, most recent match. On the keystroke trace,
// the engine with `lookupDecoding` answers exactly what it answers without.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CompletionModel, loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { decodeRows, type GenerationOptions, type LookupDecoding, newLookupStats, prefillPrompt } from '../../server/src/completion/generation';
import { draftByLookup } from '../../server/src/completion/lookup-draft';
import { createSampler } from '../../server/src/completion/sampler';
import { createStopRules, type StopMode } from '../../server/src/completion/stop-rules';
import { defaultModelPath } from '../../server/src/default-model';
import { parseSettings } from '../../server/src/lsp/settings';
import { InferenceServer } from '../../server/src/runtime/inference-server';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { typingTrace } from '../bench/keystroke-trace';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { maxAbsDiff, tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-lookup-');
after(() => rmSync(root, { recursive: true, force: true }));

describe('draftByLookup', () => {
  const options = { maxNgram: 3, minNgram: 1, maxDraft: 3 };

  it('drafts what followed the longest suffix match, the most recent one first', () => {
    //               0  1  2  3  4  5  6  7  8  9 10 11
    const context = [1, 2, 3, 9, 9, 7, 2, 3, 4, 5, 1, 2, 3];
    // [1,2,3] occurs at 0 (followed by 9 9 7); [2,3] also at 6 (followed by 4 5 1) but is shorter
    assert.deepEqual(draftByLookup(context, options), [9, 9, 7]);
    assert.deepEqual(draftByLookup([5, 2, 3, 8, 1, 2, 3, 6, 0, 3], options), [6, 0, 3], 'the most recent [3] wins when nothing longer matches');
  });

  it('searches other documents when the context has no match, and drafts nothing without one', () => {
    assert.deepEqual(draftByLookup([4, 5, 6], { ...options, sources: [[7, 5, 6, 11, 12, 13, 14]] }), [11, 12, 13]);
    assert.deepEqual(draftByLookup([4, 5, 6], { ...options, sources: [[1, 2]] }), []);
    assert.deepEqual(draftByLookup([8], options), []);
  });

  it('stops a draft at the end of what it matched, and after a token that ends it', () => {
    assert.deepEqual(draftByLookup([1, 2, 1, 2], { ...options, maxDraft: 8 }), [1, 2]);
    assert.deepEqual(draftByLookup([1, 2, 7, 10, 9, 1, 2], { ...options, endsDraft: (id) => id === 10 }), [7, 10]);
  });
});

describe('InferenceServer.verify and truncate', () => {
  it('verify gives each position the logits of stepping through it; a truncated slot steps as if never extended', async () => {
    const model = await loadCompletionModel(
      writeTinyCodeModel(join(root, 'verify'), { seed: 4 }),
      { fimOrder: 'auto', quantization: 'none' },
      { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') },
    );
    try {
      const server = new InferenceServer(model.loaded.session, { kvBudgetBytes: 2 ** 24 });
      const prompt = [5, 17, 200, 9, 31];
      const draft = [44, 7, 120, 3];
      const stepped = (await server.open(prompt)).slot;
      await server.extend(stepped, prompt);
      const steps: Float32Array[] = [];
      for (const t of draft) steps.push((await server.step([stepped], [t]))[0]!);
      const verified = (await server.open(prompt)).slot;
      await server.extend(verified, prompt);
      const rows = await server.verify(verified, draft);
      assert.equal(rows.length, draft.length);
      for (const [i, row] of rows.entries()) assert.ok(maxAbsDiff(row, steps[i]!) <= 1e-5, `position ${i}`);
      assert.deepEqual(verified.tokens, [...prompt, ...draft]);
      server.truncate(verified, prompt.length + 1); // keep the first draft token only
      assert.deepEqual(verified.tokens, [...prompt, draft[0]]);
      const again = (await server.step([verified], [draft[1]!]))[0]!;
      assert.ok(maxAbsDiff(again, steps[1]!) <= 1e-5);
    } finally {
      await model.loaded.session.release();
    }
  });
});

interface Decoded {
  text: string;
  tokens: number[];
  stopReason: string;
  /** What the slot holds afterwards: the prompt and every token decoding fed. */
  held: number[];
}

interface Case {
  mode: StopMode;
  maxTokens: number;
  healing?: string;
  /** The time rule fires at the n-th check (a fake clock ticking once per check). */
  timeAfterChecks?: number;
  /** The plain run's n-th generated token becomes a stop token. */
  stopTokenAt?: number;
}

async function decode(model: CompletionModel, prompt: number[], c: Case, lookup?: LookupDecoding, extraStop?: number): Promise<Decoded> {
  const server = new InferenceServer(model.loaded.session, { kvBudgetBytes: 2 ** 24 });
  const { slot } = await server.open(prompt);
  const pre = await prefillPrompt(server, slot, prompt);
  const stopIds = new Set(model.fim.stopIds);
  if (model.tokenizer.eosId !== undefined) stopIds.add(model.tokenizer.eosId);
  if (extraStop !== undefined) stopIds.add(extraStop);
  const healing = c.healing ? { bytes: new TextEncoder().encode(c.healing), text: c.healing } : undefined;
  const options: GenerationOptions = { maxTokens: c.maxTokens, stopIds, healing, lookup };
  const makeStop = () => {
    let tick = 0;
    const clock = c.timeAfterChecks === undefined ? {} : { deadline: c.timeAfterChecks, now: () => ++tick };
    return createStopRules({ mode: c.mode, lineBefore: '  ', textAfter: '\n}\n', maxTokens: c.maxTokens, deadline: Date.now() + 60_000, ...clock });
  };
  const [row] = await decodeRows(
    { gen: server, tokenizer: model.tokenizer, slots: [slot], logits: pre.logits, samplers: [createSampler({ temperature: 0, topP: 1 })], makeStop },
    options,
  );
  const held = [...slot.tokens];
  server.release(slot, { keep: false });
  return { ...row!, held };
}

type DraftKind = 'right' | 'partly right' | 'wrong';

/** Drafts from the plain run's fed tokens: all of them right, the first half right, or none. */
function oracle(truth: readonly number[], kind: DraftKind, k: number, vocab: number): (context: readonly number[]) => number[] {
  return (context) => {
    assert.deepEqual(context, truth.slice(0, context.length), 'lookup picked a token plain decoding did not');
    const right = truth.slice(context.length, context.length + k) as number[];
    const wrongFrom = kind === 'right' ? k : kind === 'partly right' ? Math.ceil(k / 2) : 0;
    return Array.from({ length: k }, (_, i) => (i < wrongFrom && i < right.length ? right[i]! : ((right[i] ?? 5) + 1 + i) % vocab));
  };
}

describe('lookup decoding equals plain greedy decoding', () => {
  let models: CompletionModel[] = [];
  before(async () => {
    const opts = { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') } as const;
    models = [
      await loadCompletionModel(writeTinyCodeModel(join(root, 'seed-2'), { seed: 2 }), { fimOrder: 'auto', quantization: 'none' }, opts),
      await loadCompletionModel(writeTinyCodeModel(join(root, 'endless'), { endless: true }), { fimOrder: 'auto', quantization: 'none' }, opts),
    ];
  });
  after(async () => {
    for (const m of models) await m.loaded.session.release();
  });

  const cases: Case[] = [
    { mode: 'line', maxTokens: 24 },
    { mode: 'block', maxTokens: 40 },
    { mode: 'line', maxTokens: 5 },
    { mode: 'block', maxTokens: 30, healing: '  re' },
    { mode: 'line', maxTokens: 16, healing: 'x' },
    { mode: 'line', maxTokens: 24, timeAfterChecks: 7 },
    { mode: 'block', maxTokens: 24, healing: '  re', timeAfterChecks: 4 },
    { mode: 'line', maxTokens: 24, stopTokenAt: 6 },
    { mode: 'block', maxTokens: 24, healing: 'x', stopTokenAt: 3 },
  ];
  const texts = ['function add(a, b) {\n  return a + b;\n}\nfunction sub(a, b) {\n  ', 'for (let i = 0; i < n; i++) {\n  total += values[i];\n'];

  it('with drafts right, partly right and wrong, k of 1, 3 and 8, healing and stop rules', async () => {
    const reasons = new Set<string>();
    let savedForwards = 0;
    for (const model of models) {
      for (const text of texts) {
        const prompt = model.tokenizer.encode(text);
        for (const c of cases) {
          const first = c.stopTokenAt === undefined ? undefined : await decode(model, prompt, c);
          const stopToken = first?.held[prompt.length + c.stopTokenAt!];
          const plain = await decode(model, prompt, c, undefined, stopToken);
          reasons.add(plain.stopReason);
          for (const kind of ['right', 'partly right', 'wrong'] as DraftKind[]) {
            for (const k of [1, 3, 8]) {
              const stats = newLookupStats();
              const looked = await decode(model, prompt, c, { draft: oracle(plain.held, kind, k, model.loaded.config.vocabSize), stats }, stopToken);
              const label = `${JSON.stringify(c)} ${kind} k=${k} on ${JSON.stringify(text.slice(0, 20))}`;
              assert.deepEqual(looked, plain, label);
              assert.equal(stats.tokens, plain.held.length - prompt.length, `${label}: every fed token counted`);
              if (kind !== 'wrong' && plain.held.length - prompt.length > 2) assert.ok(stats.accepted > 0, `${label}: right drafts are accepted`);
              if (kind === 'right' && k > 1) savedForwards += stats.tokens - stats.forwards;
            }
          }
        }
      }
    }
    assert.ok(
      ['max-tokens', 'time', 'stop-token'].every((r) => reasons.has(r)),
      `several stop reasons covered: ${[...reasons].join(', ')}`,
    );
    assert.ok(savedForwards > 0, 'right drafts of several tokens take fewer forwards than tokens');
  });
});

describe('the engine with lookupDecoding on the keystroke trace', () => {
  // float32: ORT's int8 MatMulNBits (accuracy_level 4) gives rows of a many-token forward logits up to
  // ~8e-2 away from one-token steps, which can flip a close argmax, as it does between a cold prefill
  // and reused KV; float32 forwards agree to ~1e-5 whatever their length
  it('answers exactly as with it off, on the embedded model in float32', async () => {
    const model = await loadCompletionModel(
      defaultModelPath()!,
      { fimOrder: 'auto', quantization: 'none' },
      { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache-4m') },
    );
    try {
      const base = { ...parseSettings({ maxTokens: 16, completionMode: 'line', candidates: 1, temperature: 0, timeLimitMs: 60_000 }).settings, speculate: false };
      const off = new CompletionEngine(model, { ...base, lookupDecoding: false }, new LatencyStats());
      const on = new CompletionEngine(model, { ...base, lookupDecoding: true }, new LatencyStats());
      const trace = typingTrace();
      const step = Math.ceil(trace.length / 48); // keystrokes spread over the whole function
      for (let i = 0; i < trace.length; i += step) {
        const k = trace[i]!;
        const uri = `file:///trace/${i}.ts`; // a new document each: the model path, no typing-through
        const [a, b] = [await off.complete({ uri, text: k.text, offset: k.offset }), await on.complete({ uri, text: k.text, offset: k.offset })];
        assert.deepEqual(b.items, a.items, `keystroke ${i}`);
        assert.equal(b.timings.decodeTokens, a.timings.decodeTokens, `keystroke ${i}: decode tokens`);
      }
      assert.ok(on.lookupStats.drafted > 0 && on.lookupStats.forwards > 0, `lookup ran: ${JSON.stringify(on.lookupStats)}`);
      assert.equal(off.lookupStats.forwards, 0);
    } finally {
      await model.loaded.session.release();
    }
  });
});

// The inference server: N slots of different lengths decoded together equal N isolated decodes, in
// one session run per step whoever asked; chunked prefill equals one prefill; an aborted task is
// dropped before it runs; a swap happens between steps and fails slots of the old weights.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttentionPath } from '../../server/src/model/graph/decoder';
import { CancelledError, ModelSwappedError } from '../../server/src/runtime/cancellation';
import { InferenceServer } from '../../server/src/runtime/inference-server';
import { checkBatchedDecode } from '../helpers/batched-decode-check';
import { countRuns } from '../helpers/counting-runner';
import { TINY_LLAMA_GQA, TINY_QWEN2 } from '../helpers/tiny-model';
import { loadTinyModel, maxAbsDiff } from '../helpers/tiny-session';

const BUDGET = 64 * 2 ** 20;
const PROMPTS = [
  [5, 17, 200],
  [9, 9, 120, 255, 1, 64, 77],
  [3, 42, 9, 9, 120, 255, 1, 64, 77, 299, 0, 12],
];
const STEPS = [
  [33, 44, 50],
  [60, 7, 8],
  [1, 2, 3],
  [250, 251, 252],
];

for (const attention of ['plain', 'fused'] as AttentionPath[]) {
  for (const [label, config] of [
    ['llama GQA', TINY_LLAMA_GQA],
    ['qwen2', TINY_QWEN2],
  ] as const) {
    describe(`${label}, ${attention} attention`, () => {
      it('batched decode of 3 slots of different lengths equals each decoded alone, one run per step', async () => {
        const { model } = await loadTinyModel(config, { attention });
        const counted = countRuns(model.session);
        const server = new InferenceServer(counted.session, { kvBudgetBytes: BUDGET });
        const slots = [];
        for (const p of PROMPTS) {
          const { slot } = await server.open(p);
          await server.extend(slot, p);
          slots.push(slot);
        }
        await checkBatchedDecode({ server, counted, reference: model.session, slots, prompts: PROMPTS, steps: STEPS });
        for (const [b, prompt] of PROMPTS.entries()) assert.deepEqual(slots[b]!.tokens, [...prompt, ...STEPS.map((s) => s[b]!)]);
        await model.session.release();
      });
    });
  }
}

describe('the task queue', () => {
  it('steps asked for by different callers in the same turn run as one forward', async () => {
    const { model } = await loadTinyModel(TINY_QWEN2);
    const counted = countRuns(model.session);
    const server = new InferenceServer(counted.session, { kvBudgetBytes: BUDGET });
    const a = (await server.open(PROMPTS[0]!)).slot;
    const b = (await server.open(PROMPTS[1]!)).slot;
    await Promise.all([server.extend(a, PROMPTS[0]!), server.extend(b, PROMPTS[1]!)]);
    counted.runs.length = 0;
    const [ra, rb] = await Promise.all([server.step([a], [10]), server.step([b], [11])]);
    assert.deepEqual(counted.runs, [2]);
    const alone = model.session.newState();
    await model.session.prefill(alone, PROMPTS[1]!);
    assert.ok(maxAbsDiff(await model.session.decode(alone, 11), rb![0]!) <= 1e-5);
    assert.equal(ra![0]!.length, TINY_QWEN2.vocabSize);
    await model.session.release();
  });

  it('prefills in chunks, with the same logits as one prefill', async () => {
    const { model } = await loadTinyModel(TINY_LLAMA_GQA);
    const counted = countRuns(model.session);
    const server = new InferenceServer(counted.session, { kvBudgetBytes: BUDGET, prefillChunk: 4 });
    const prompt = PROMPTS[2]!.concat([7, 7]); // 14 tokens: chunks of 4, 4, 4, 2
    const { slot } = await server.open(prompt);
    const chunked = await server.extend(slot, prompt);
    assert.deepEqual(counted.runs, [1, 1, 1, 1]);
    const whole = await model.session.prefill(model.session.newState(), prompt);
    assert.ok(maxAbsDiff(chunked, whole) <= 1e-5);
    await model.session.release();
  });

  it('drops a task whose signal aborts while it waits, without running it', async () => {
    const { model } = await loadTinyModel(TINY_QWEN2);
    const counted = countRuns(model.session);
    const server = new InferenceServer(counted.session, { kvBudgetBytes: BUDGET });
    const first = (await server.open(PROMPTS[2]!)).slot;
    const second = (await server.open(PROMPTS[1]!)).slot;
    const abort = new AbortController();
    const running = server.extend(first, PROMPTS[2]!);
    const queued = server.extend(second, PROMPTS[1]!, { signal: abort.signal });
    abort.abort(new CancelledError());
    await assert.rejects(queued, CancelledError);
    await running;
    assert.deepEqual(counted.runs, [1], 'only the first prefill ran');
    await model.session.release();
  });

  it('never runs a task of a released slot (its state may already be pooled)', async () => {
    const { model } = await loadTinyModel(TINY_QWEN2);
    const counted = countRuns(model.session);
    const server = new InferenceServer(counted.session, { kvBudgetBytes: BUDGET });
    const { slot } = await server.open(PROMPTS[1]!);
    const queued = server.extend(slot, PROMPTS[1]!);
    server.release(slot);
    await assert.rejects(queued, CancelledError);
    assert.deepEqual(counted.runs, []);
    await model.session.release();
  });

  it('runs background work only while no foreground task waits', async () => {
    const { model } = await loadTinyModel(TINY_QWEN2);
    const server = new InferenceServer(model.session, { kvBudgetBytes: BUDGET });
    const bg = (await server.open(PROMPTS[1]!)).slot;
    const fg = (await server.open(PROMPTS[2]!)).slot;
    const order: string[] = [];
    const background = server.extend(bg, PROMPTS[1]!, { priority: 'background' }).then(() => order.push('background'));
    const foreground = server.extend(fg, PROMPTS[2]!).then(() => order.push('foreground'));
    await Promise.all([background, foreground]);
    assert.deepEqual(order, ['foreground', 'background']);
    await model.session.release();
  });

  it('swaps weights between steps: old slots fail, the prefix cache is emptied, new slots use the new weights', async () => {
    const a = await loadTinyModel(TINY_QWEN2, { seed: 1 });
    const b = await loadTinyModel(TINY_QWEN2, { seed: 2 });
    const server = new InferenceServer(a.model.session, { kvBudgetBytes: BUDGET });
    const { slot } = await server.open(PROMPTS[2]!);
    await server.extend(slot, PROMPTS[2]!);
    const kept = (await server.open(PROMPTS[1]!)).slot;
    await server.extend(kept, PROMPTS[1]!);
    server.release(kept); // pooled with the old weights' KV
    const old = await server.swap(b.model.session);
    assert.equal(old, a.model.session);
    await assert.rejects(server.step([slot], [5]), ModelSwappedError);
    const reopened = await server.open(PROMPTS[1]!);
    assert.equal(reopened.reused, 0, 'no KV of the old weights is reused');
    const logits = await server.extend(reopened.slot, PROMPTS[1]!);
    const expected = await b.model.session.prefill(b.model.session.newState(), PROMPTS[1]!);
    assert.ok(maxAbsDiff(logits, expected) <= 1e-6);
    await a.model.session.release();
    await b.model.session.release();
  });

  it('two swaps applied at one step boundary each hand back their own predecessor (none leaked, none released twice)', async () => {
    const [a, b, c] = await Promise.all([1, 2, 3].map((seed) => loadTinyModel(TINY_QWEN2, { seed })));
    const server = new InferenceServer(a!.model.session, { kvBudgetBytes: BUDGET, prefillChunk: 2 });
    const { slot } = await server.open(PROMPTS[2]!);
    const busy = server.extend(slot, PROMPTS[2]!); // several chunks: the swaps wait for a boundary
    const [first, second] = await Promise.all([server.swap(b!.model.session), server.swap(c!.model.session)]);
    assert.equal(first, a!.model.session);
    assert.equal(second, b!.model.session);
    await assert.rejects(busy, ModelSwappedError);
    for (const m of [a, b, c]) await m!.model.session.release();
  });

  it('an open queued before a swap is refused instead of running its old-model tokens on the new weights', async () => {
    const a = await loadTinyModel(TINY_QWEN2, { seed: 1 });
    const b = await loadTinyModel(TINY_QWEN2, { seed: 2 });
    const server = new InferenceServer(a.model.session, { kvBudgetBytes: BUDGET, prefillChunk: 2 });
    const { slot } = await server.open(PROMPTS[2]!);
    const busy = server.extend(slot, PROMPTS[2]!).catch(() => undefined); // its slot is of the old weights too
    const opened = server.open(PROMPTS[1]!);
    const swapped = server.swap(b.model.session);
    await assert.rejects(opened, ModelSwappedError);
    await swapped;
    await busy;
    await a.model.session.release();
    await b.model.session.release();
  });

  it('a step refused for one slot leaves none of its slots busy, and is a rejection, not a throw', async () => {
    const { model } = await loadTinyModel(TINY_QWEN2);
    const server = new InferenceServer(model.session, { kvBudgetBytes: BUDGET });
    const a = (await server.open(PROMPTS[0]!)).slot;
    await server.extend(a, PROMPTS[0]!);
    const b = (await server.open(PROMPTS[1]!)).slot;
    server.release(b);
    let refused: Promise<unknown> | undefined;
    assert.doesNotThrow(() => (refused = server.step([a, b], [1, 2])));
    await assert.rejects(refused!, /is not open/);
    assert.doesNotThrow(() => server.truncate(a, PROMPTS[0]!.length), 'slot a is not left busy');
    assert.equal((await server.step([a], [7])).length, 1);
    await model.session.release();
  });

  it('a fork waits for its slot: it is refused while a prefill of that slot is queued, and copies all of it after', async () => {
    const { model } = await loadTinyModel(TINY_QWEN2);
    const server = new InferenceServer(model.session, { kvBudgetBytes: BUDGET, prefillChunk: 2 });
    const { slot } = await server.open(PROMPTS[2]!);
    const prefill = server.extend(slot, PROMPTS[2]!);
    await assert.rejects(server.fork(slot), /already has a task queued/);
    await prefill;
    const copy = await server.fork(slot);
    assert.deepEqual(copy.tokens, slot.tokens);
    await model.session.release();
  });

  it('the batched-decode buffer goes with its slots: after they are released no KV is held outside the pool', async () => {
    const { model } = await loadTinyModel(TINY_QWEN2);
    const server = new InferenceServer(model.session, { kvBudgetBytes: 0 });
    const slots = [];
    for (const p of PROMPTS) {
      const { slot } = await server.open(p);
      await server.extend(slot, p);
      slots.push(slot);
    }
    await server.step(slots, [1, 2, 3]);
    const held = (await server.memory()).kvBytes;
    for (const slot of slots) server.release(slot, { keep: false });
    await server.whenIdle();
    const after = (await server.memory()).kvBytes;
    assert.ok(after < held, `${after} < ${held}`);
    assert.equal(after, (await model.session.memory()).kvBytes, 'nothing beyond what the session itself reports');
    await model.session.release();
  });
});

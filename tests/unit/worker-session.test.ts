// A session hosted in a worker thread answers exactly as one in this thread (prefill, decode, batched
// slots), moves the KV past there and back instead of copying it, leaves this thread free while a
// forward runs, and fails with a clear error (never a crash) on a file ORT refuses or after release.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { InferenceServer } from '../../server/src/runtime/inference-server';
import { chooseSessionThread, type LoadedModel, loadModel, WORKER_SESSION_MIN_WEIGHT_BYTES } from '../../server/src/runtime/load-model';
import { createSessionInWorker } from '../../server/src/runtime/worker-session';
import { checkBatchedDecode } from '../helpers/batched-decode-check';
import { countRuns } from '../helpers/counting-runner';
import { makeTinyWeights, TINY_QWEN2, writeTinyCheckpoint } from '../helpers/tiny-model';
import { maxAbsDiff, tempDir } from '../helpers/tiny-session';

const PROMPTS = [
  [5, 17, 200],
  [9, 9, 120, 255, 1, 64, 77],
  [3, 42, 9, 9, 120, 255, 1, 64, 77, 299, 0, 12],
];
const STEPS = [
  [33, 44, 50],
  [60, 7, 8],
  [1, 2, 3],
];

function tinyCheckpoint(config = TINY_QWEN2): { modelDir: string; cacheDir: string } {
  const root = tempDir();
  const modelDir = join(root, 'model');
  writeTinyCheckpoint(modelDir, makeTinyWeights(config, 7));
  return { modelDir, cacheDir: join(root, 'cache') };
}

function load(dir: { modelDir: string; cacheDir: string }, sessionThread: 'main' | 'worker'): Promise<LoadedModel> {
  return loadModel(dir.modelDir, { executionProvider: 'cpu', threads: 1, cacheDir: dir.cacheDir, sessionThread });
}

describe('a session in a worker thread', () => {
  it('gives the logits of a session in this thread: prefill, decode, and 3 slots decoded in one run per step', async () => {
    const dir = tinyCheckpoint();
    const here = await load(dir, 'main');
    const there = await load(dir, 'worker');
    assert.equal(there.sessionThread, 'worker');
    assert.equal(there.session.provider, 'cpu');
    const counted = countRuns(there.session);
    const server = new InferenceServer(counted.session, { kvBudgetBytes: 64 * 2 ** 20 });
    const slots = [];
    for (const p of PROMPTS) {
      const { slot } = await server.open(p);
      const logits = await server.extend(slot, p);
      const alone = here.session.newState();
      assert.ok(maxAbsDiff(await here.session.prefill(alone, p), logits) <= 1e-6, 'prefill logits');
      slots.push(slot);
    }
    await checkBatchedDecode({ server, counted, reference: here.session, slots, prompts: PROMPTS, steps: STEPS });
    await here.session.release();
    await there.session.release();
  });

  it('moves the past to the worker and back (the arrays the state held before a step are detached after it, the contents kept)', async () => {
    const dir = tinyCheckpoint();
    const here = await load(dir, 'main');
    const there = await load(dir, 'worker');
    const mine = here.session.newState();
    const theirs = there.session.newState();
    await here.session.prefill(mine, PROMPTS[2]!);
    await there.session.prefill(theirs, PROMPTS[2]!);
    const before = theirs.past(0);
    const [key, value] = [before.key, before.value];
    assert.ok(key.byteLength > 0);
    const logits = await there.session.decode(theirs, 42);
    assert.equal(key.byteLength, 0, 'the keys were moved, not copied');
    assert.equal(value.byteLength, 0, 'the values were moved, not copied');
    assert.notEqual(theirs.past(0).key, key, 'the state reads the arrays that came back');
    assert.ok(maxAbsDiff(await here.session.decode(mine, 42), logits) <= 1e-6);
    for (let l = 0; l < here.config.numLayers; l++) {
      assert.ok(maxAbsDiff(mine.positions(l).key, theirs.positions(l).key) <= 1e-6, `layer ${l} keys`);
      assert.ok(maxAbsDiff(mine.positions(l).value, theirs.positions(l).value) <= 1e-6, `layer ${l} values`);
    }
    await here.session.release();
    await there.session.release();
  });

  it('leaves this thread free while a forward runs (timers fire during it; in this thread they cannot)', async () => {
    const dir = tinyCheckpoint({ ...TINY_QWEN2, hiddenSize: 256, intermediateSize: 1024, numLayers: 4, numHeads: 4, numKvHeads: 2, headDim: 64, maxPositions: 4096 });
    const prompt = Array.from({ length: 400 }, (_, i) => (i * 37) % 300);
    /** Timer ticks seen while one prefill of `prompt` runs, and how long it ran. */
    const ticksDuring = async (model: LoadedModel) => {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const t0 = performance.now();
      await model.session.prefill(model.session.newState(), prompt);
      const ms = performance.now() - t0;
      clearInterval(timer);
      return { ticks, ms };
    };
    const here = await load(dir, 'main');
    const there = await load(dir, 'worker');
    const blocked = await ticksDuring(here);
    const free = await ticksDuring(there);
    assert.ok(blocked.ms >= 20, `the forward must be long enough to tell (${blocked.ms.toFixed(1)} ms)`);
    assert.ok(blocked.ticks <= 2, `in this thread a forward blocks timers (${blocked.ticks} ticks in ${blocked.ms.toFixed(1)} ms)`);
    assert.ok(free.ticks >= Math.min(10, free.ms / 4), `${free.ticks} ticks in ${free.ms.toFixed(1)} ms`);
    await here.session.release();
    await there.session.release();
  });

  it('rejects with ORT’s reason when the file is not a model, and refuses runs after release', async () => {
    const bad = join(tempDir(), 'model.onnx');
    writeFileSync(bad, 'not a protobuf at all');
    await assert.rejects(createSessionInWorker(bad, { executionProvider: 'cpu', threads: 1 }), /no execution provider could load the model: cpu: .+/);
    const loaded = await load(tinyCheckpoint(), 'worker');
    await loaded.session.release();
    await assert.rejects(loaded.session.prefill(loaded.session.newState(), [1, 2, 3]), /inference worker ended .*reload the model/);
  });
});

describe('kiln.sessionThread auto', () => {
  it('puts graphs of 64 MiB of weights or more in a worker and smaller ones on the main thread; a named choice always wins', () => {
    assert.equal(chooseSessionThread('auto', WORKER_SESSION_MIN_WEIGHT_BYTES), 'worker');
    assert.equal(chooseSessionThread('auto', WORKER_SESSION_MIN_WEIGHT_BYTES - 1), 'main');
    assert.equal(chooseSessionThread('worker', 1), 'worker');
    assert.equal(chooseSessionThread('main', 2 ** 40), 'main');
  });
});

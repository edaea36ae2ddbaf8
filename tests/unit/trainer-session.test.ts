// The trainer's validation loss (a forward-only graph) equals the loss its training step reports for
// the same parameters and batch, full-parameter, LoRA and QLoRA, with and without gradient accumulation;
// a validation cut short by its caller reads the first batches only.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { DEFAULT_ADAMW } from '../../server/src/model/graph/adamw';
import type { TrainingMode } from '../../server/src/model/graph/training-graph';
import { type Batch, TrainerSession } from '../../server/src/training/trainer-session';
import { TINY_LLAMA, makeTinyWeights, writeTinyCheckpoint } from '../helpers/tiny-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-trainer-');
after(() => rmSync(root, { recursive: true, force: true }));
const modelDir = join(root, 'model');
writeTinyCheckpoint(modelDir, makeTinyWeights(TINY_LLAMA, 3));

function batch(seed: number): Batch {
  const row = (k: number) => Int32Array.from({ length: 9 }, (_, i) => (seed * 31 + k * 7 + i * 13) % TINY_LLAMA.vocabSize);
  const inputIds = [row(0), row(1)];
  const labels = inputIds.map((r, b) => Int32Array.from(r, (_, i) => (i === 8 || (b === 1 && i < 2) ? -100 : r[i + 1]!)));
  return { inputIds, labels };
}

const MODES: [string, TrainingMode][] = [
  ['full', { kind: 'full' }],
  ['LoRA', { kind: 'lora', rank: 2, alpha: 4, targets: ['q_proj', 'v_proj'] }],
  ['QLoRA on an int8 base, top layer only', { kind: 'lora', rank: 2, alpha: 4, targets: ['q_proj', 'v_proj', 'down_proj'], layers: 1, baseBits: 8 }],
];

for (const [label, mode] of MODES) {
  for (const accumulation of [1, 2]) {
    it(`${label}, accumulation ${accumulation}: validation loss equals the step's loss for the same parameters`, async () => {
      const trainer = await TrainerSession.create({ modelDir, mode, hyper: DEFAULT_ADAMW, accumulation, threads: 1, cacheDir: join(root, 'cache'), seed: 5 });
      try {
        const batches = accumulation === 1 ? [batch(1)] : [batch(1), batch(2)];
        const before = await trainer.loss(batches);
        const step = await trainer.trainStep(batches, 1e-2);
        // the step's loss is the mean over micro-batches; loss() weights by target count: equal here (same counts)
        assert.ok(Math.abs(before - step.loss) <= 1e-5, `loss() ${before} vs step ${step.loss}`);
        const after = await trainer.loss(batches);
        assert.ok(after < before, `one step lowers the loss on its own batch: ${before} -> ${after}`);
      } finally {
        await trainer.release();
      }
    });
  }
}

it('a validation stopped early reads the first batches only: their loss, as loss() gives it over them', async () => {
  const trainer = await TrainerSession.create({ modelDir, mode: MODES[1]![1], hyper: DEFAULT_ADAMW, accumulation: 1, threads: 1, cacheDir: join(root, 'cache'), seed: 5 });
  try {
    const batches = [batch(1), batch(2), batch(3)];
    const seen: number[] = [];
    const two = await trainer.lossWhile(batches, (done) => {
      seen.push(done);
      return done < 2;
    });
    assert.deepEqual(seen, [1, 2], 'asked after every batch, and no further once told to stop');
    assert.equal(two.used, 2);
    assert.equal(two.loss, await trainer.loss(batches.slice(0, 2)));
    assert.notEqual(two.loss, await trainer.loss(batches), 'the third batch is left out');
    assert.deepEqual(await trainer.lossWhile(batches, () => false).then((r) => r.used), 1, 'at least one batch');
  } finally {
    await trainer.release();
  }
});

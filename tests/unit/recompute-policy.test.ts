// When the fine-tune recomputes its layers: `auto` turns it on where the kept activations pass the
// floor and the step would take more than a quarter of the machine's memory (a real-size model at
// 1 × 512 on an 8 GB laptop), and leaves it off where they are small (a tiny model; a real-size model
// at a few tokens) or memory is plenty (the same step on 64 GB); on/off are obeyed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_LORA } from '../../server/src/finetune/fine-tune-options';
import type { ModelConfig } from '../../server/src/model/config';
import { recomputesLayers } from '../../server/src/training/recompute-policy';
import { trainingStateBytes } from '../../server/src/training/state-bytes';
import { QWEN25_05B } from '../helpers/real-size-train-probe';
import { TINY_QWEN2 } from '../helpers/tiny-model';

const lora = { ...DEFAULT_LORA, alpha: 16 };

describe('per-layer recomputation policy', () => {
  const GB = 2 ** 30;
  it('auto: on for the 0.5B shape at 1 × 512 with 8 GB, off with 64 GB, at 1 × 32 and for a tiny model', () => {
    assert.equal(recomputesLayers('auto', QWEN25_05B as ModelConfig, { mode: lora, batch: 1, seq: 512 }, 8 * GB), true);
    assert.equal(recomputesLayers('auto', QWEN25_05B as ModelConfig, { mode: lora, batch: 1, seq: 512 }, 64 * GB), false);
    assert.equal(recomputesLayers('auto', QWEN25_05B as ModelConfig, { mode: lora, batch: 1, seq: 32 }, 2 * GB), false);
    assert.equal(recomputesLayers('auto', TINY_QWEN2, { mode: { kind: 'full' }, batch: 8, seq: 256 }, 1 * GB), false);
  });

  it('on and off are obeyed whatever the sizes', () => {
    assert.equal(recomputesLayers('on', TINY_QWEN2, { mode: lora, batch: 1, seq: 8 }), true);
    assert.equal(recomputesLayers('off', QWEN25_05B as ModelConfig, { mode: lora, batch: 4, seq: 1024 }), false);
  });

  it('the analytic activations recomputed are one layer and the inputs of all: far less than keeping every layer', () => {
    const spec = { mode: lora, batch: 1, seq: 512 };
    const kept = trainingStateBytes(QWEN25_05B as ModelConfig, spec).activations;
    const recomputed = trainingStateBytes(QWEN25_05B as ModelConfig, { ...spec, recomputeLayers: true }).activations;
    const c = QWEN25_05B as ModelConfig;
    assert.equal(recomputed, kept / c.numLayers + c.numLayers * 2 * 512 * c.hiddenSize * 4);
  });
});

// The probe's lazily generated weights written as a Hugging Face checkpoint (what the real-size
// bench's PyTorch row reads): the checkpoint opens with the same config, holds exactly the probe's
// values, and an N-layer slice is the first N layers of a deeper model. A small shape of the same
// family (GQA, QKV biases, tied head) stands in for the 0.5B one.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { expectedTensors, openCheckpoint } from '../../server/src/model/checkpoint';
import type { ModelConfig } from '../../server/src/model/config';
import { writeProbeCheckpoint } from '../helpers/real-size-checkpoint';
import { lazyWeights, PROBE_WEIGHT_SEED, QWEN25_05B } from '../helpers/real-size-train-probe';
import { tempDir } from '../helpers/tiny-session';

const SMALL: ModelConfig = { ...QWEN25_05B, hiddenSize: 64, numLayers: 3, numHeads: 4, numKvHeads: 2, headDim: 16, intermediateSize: 96, vocabSize: 300, maxPositions: 256 };
const root = tempDir('kiln-probe-checkpoint-');
after(() => rmSync(root, { recursive: true, force: true }));

describe('the probe checkpoint', () => {
  it('opens with its config and holds the probe weights, tensor for tensor', () => {
    const dir = join(root, 'full');
    writeProbeCheckpoint(dir, SMALL);
    const ckpt = openCheckpoint(dir);
    try {
      assert.deepEqual(ckpt.config, { ...SMALL, bosTokenId: undefined, eosTokenId: undefined });
      const probe = lazyWeights(SMALL, PROBE_WEIGHT_SEED);
      for (const t of expectedTensors(SMALL)) assert.deepEqual(ckpt.weights.readFloat32(t.name), probe.readFloat32(t.name), t.name);
    } finally {
      ckpt.weights.close();
    }
  });

  it('a 2-layer slice holds the same tensors as the first 2 layers of the 3-layer model', () => {
    const slice = { ...SMALL, numLayers: 2 };
    writeProbeCheckpoint(join(root, 'slice'), slice);
    const [s, f] = [openCheckpoint(join(root, 'slice')), openCheckpoint(join(root, 'full'))];
    try {
      assert.equal(s.config.numLayers, 2);
      const names = expectedTensors(slice).map((t) => t.name);
      assert.ok(names.includes('model.layers.1.self_attn.q_proj.bias') && names.includes('model.embed_tokens.weight'));
      for (const name of names) assert.deepEqual(s.weights.readFloat32(name), f.weights.readFloat32(name), name);
    } finally {
      s.weights.close();
      f.weights.close();
    }
  });
});

// The real-size bench's PyTorch row against Kiln's step, at a small shape of the same family (GQA,
// QKV biases, tied head): the probe's weights written as a checkpoint, the probe's batch with loss
// on the last quarter of each row (the peer's head gathers those rows), the LoRA A/B values the
// probe wrote. Losses and gradient norms of three steps agree (both fp32), with the peer's head over
// those rows (the bench's row) or every row (training.bench.ts's), so the bench's PyTorch row trains
// the same step it is timed against.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ModelConfig } from '../../server/src/model/config';
import { PROBE_LR, prepare, probeLoraMode, QWEN25_05B } from '../helpers/real-size-train-probe';
import { tempDir } from '../helpers/tiny-session';
import { PYTHON, requireTorch } from '../helpers/torch-python';
import { TorchRow, writeTorchInputs } from '../bench/real-size-torch-row';

const SMALL: ModelConfig = { ...QWEN25_05B, hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, intermediateSize: 96, vocabSize: 300, maxPositions: 256 };
const root = tempDir('kiln-torch-peer-');
after(() => rmSync(root, { recursive: true, force: true }));

describe('the PyTorch peer of the real-size bench', () => {
  it('trains the same LoRA step as Kiln, its head over the loss rows or every row: 3 steps of loss and gradient norm agree', { timeout: 120_000 }, async (t) => {
    requireTorch();
    const shape = { batch: 2, seq: 24, lossPositions: 'quarter' as const };
    const loraInit = join(root, 'lora-init.safetensors');
    const options = { layers: SMALL.numLayers, shape: SMALL, seq: shape.seq, batch: shape.batch, threads: 1, loraInitOut: loraInit, lossPositions: shape.lossPositions };
    const kiln = await prepare(options);
    try {
      for (let i = 0; i < 3; i++) await kiln.step();
    } finally {
      await kiln.release();
    }
    const k = kiln.result();
    const inputs = writeTorchInputs(root, SMALL, shape);
    const lora = probeLoraMode(options);
    assert.notEqual(k.losses[2], k.losses[0], 'the steps change the loss');
    for (const headRows of ['loss', 'all'] as const) {
      const spec = { python: PYTHON, config: SMALL, ...shape, threads: 1, lr: PROBE_LR, loraInit, rank: lora.rank, alpha: lora.alpha, targets: lora.targets, headRows };
      const torch = TorchRow.start(spec, inputs);
      try {
        await torch.ready;
        const r = await torch.steps(3);
        for (let i = 0; i < 3; i++) {
          const what = `head over ${headRows} rows, step ${i + 1}`;
          assert.ok(Math.abs(k.losses[i]! - r.losses[i]!) < 1e-5, `${what} loss: kiln ${k.losses[i]} torch ${r.losses[i]}`);
          assert.ok(Math.abs(k.gradNorms[i]! - r.gradNorms[i]!) < 1e-4 * k.gradNorms[i]!, `${what} grad norm: kiln ${k.gradNorms[i]} torch ${r.gradNorms[i]}`);
        }
        const worst = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i]!))).toExponential(1);
        t.diagnostic(`head over ${headRows} rows: max |Δloss| ${worst(k.losses, r.losses)}, max |Δgrad norm| ${worst(k.gradNorms, r.gradNorms)}`);
      } finally {
        torch.stop();
      }
    }
  });
});

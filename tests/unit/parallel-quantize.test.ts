// The graph build's two-thread quantization (model/graph/parallel-quantize.ts): the codes, scales and
// zero points a helper thread fills in for half of a weight's rows, reading the checkpoint itself,
// equal those of quantizePerChannelRows / quantizeBlockwiseRows on this thread byte for byte — stacked tensors (fused q|k|v), a
// sharded checkpoint, splits on and off a word boundary — and a helper that cannot do its part (the
// weights file replaced after the build looked at it) is reported and its rows are coded here.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openCheckpoint } from '../../server/src/model/checkpoint';
import { stackedRowReader } from '../../server/src/model/graph/decoder-parts';
import { ParallelQuantizer } from '../../server/src/model/graph/parallel-quantize';
import { quantizeBlockwiseRows, quantizePerChannelRows, tiledRowReader } from '../../server/src/model/quantize';
import { makeTinyWeights, TINY_QWEN2, writeTinyCheckpoint } from '../helpers/tiny-model';

// a vocabulary of 390 rows: the head's split lands at row 192 and the helper's last tile is 6 rows (not a
// multiple of 4); rows of 136 values: 4¼ blocks of 32, the last one padded, an odd count of 4-bit zero points
const CONFIG = { ...TINY_QWEN2, vocabSize: 390, hiddenSize: 136, intermediateSize: 160, numHeads: 4, numKvHeads: 2, headDim: 34 };

describe('two-thread quantization of a graph build', () => {
  const root = mkdtempSync(join(tmpdir(), 'kiln-parallel-quantize-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  // split at row round(n / 2 / 64) · 64; the transpose's 32-bit writes need n a multiple of 4
  const cases = [
    { what: 'the tied head (390 rows: byte writes, a last tile of 6)', names: ['model.embed_tokens.weight'], rows: [CONFIG.vocabSize], k: CONFIG.hiddenSize },
    {
      what: 'q|k|v stacked from three tensors',
      names: ['model.layers.1.self_attn.q_proj.weight', 'model.layers.1.self_attn.k_proj.weight', 'model.layers.1.self_attn.v_proj.weight'],
      rows: [136, 68, 68],
      k: CONFIG.hiddenSize,
    },
    { what: 'gate (160 rows: 32-bit writes)', names: ['model.layers.0.mlp.gate_proj.weight'], rows: [CONFIG.intermediateSize], k: CONFIG.hiddenSize },
  ];

  for (const shards of [1, 3]) {
    it(`equals one thread's codes and scales byte for byte (${shards} shard${shards > 1 ? 's' : ''})`, () => {
      const dir = join(root, `model-${shards}`);
      writeTinyCheckpoint(dir, makeTinyWeights(CONFIG, 3), { dtype: 'F16', shards });
      const checkpoint = openCheckpoint(dir);
      const files = checkpoint.weights.files.map((f) => f.path);
      const quantizer = new ParallelQuantizer(dir, files, { minSplitValues: 0, log: (m) => assert.fail(m) });
      try {
        for (const c of cases) {
          const n = c.rows.reduce((a, b) => a + b, 0);
          const reader = () => tiledRowReader(stackedRowReader(checkpoint.weights, c.names, c.rows, c.k)!, c.k);
          const expected = quantizePerChannelRows(reader(), { n, k: c.k });
          const got = quantizer.perChannel({ names: c.names, rows: c.rows }, n, c.k, reader());
          assert.ok(got.codes.buffer instanceof SharedArrayBuffer, `${c.what}: the helper's buffers are shared`);
          assert.deepEqual(Array.from(got.codes), Array.from(expected.codes), c.what);
          assert.deepEqual(Array.from(got.scales), Array.from(expected.scales), c.what);
          for (const bits of [4, 8] as const) {
            const blockExpected = quantizeBlockwiseRows(reader(), { n, k: c.k, bits });
            const blockGot = quantizer.blockwise({ names: c.names, rows: c.rows }, { n, k: c.k, bits }, reader());
            assert.ok(blockGot.data.buffer instanceof SharedArrayBuffer, `${c.what} int${bits} blocks: shared`);
            for (const part of ['data', 'scales', 'zeroPoints'] as const)
              assert.deepEqual(Array.from(blockGot[part]), Array.from(blockExpected[part]), `${c.what} int${bits} blocks: ${part}`);
          }
        }
      } finally {
        quantizer.close();
        checkpoint.weights.close();
      }
    });
  }

  it('a helper that cannot do its part is reported, and its rows are coded on this thread', () => {
    const dir = join(root, 'replaced');
    writeTinyCheckpoint(dir, makeTinyWeights(CONFIG, 4));
    const checkpoint = openCheckpoint(dir);
    const file = checkpoint.weights.files[0]!.path;
    const messages: string[] = [];
    const quantizer = new ParallelQuantizer(dir, [file], { minSplitValues: 0, log: (m) => messages.push(m) });
    utimesSync(file, new Date(0), new Date(0)); // the file is no longer the one the build saw
    try {
      const reader = () => tiledRowReader(stackedRowReader(checkpoint.weights, ['model.embed_tokens.weight'], [CONFIG.vocabSize], CONFIG.hiddenSize)!, CONFIG.hiddenSize);
      const expected = quantizePerChannelRows(reader(), { n: CONFIG.vocabSize, k: CONFIG.hiddenSize });
      const got = quantizer.perChannel({ names: ['model.embed_tokens.weight'], rows: [CONFIG.vocabSize] }, CONFIG.vocabSize, CONFIG.hiddenSize, reader());
      assert.deepEqual(Array.from(got.codes), Array.from(expected.codes));
      assert.deepEqual(Array.from(got.scales), Array.from(expected.scales));
      assert.equal(messages.length, 1);
      assert.match(messages[0]!, /second thread failed \(the weights files of .* changed during the build\); quantizing on this one/);
      // later weights stay on this thread: no second report
      quantizer.perChannel({ names: ['model.embed_tokens.weight'], rows: [CONFIG.vocabSize] }, CONFIG.vocabSize, CONFIG.hiddenSize, reader());
      assert.equal(messages.length, 1);
    } finally {
      quantizer.close();
      checkpoint.weights.close();
    }
  });
});

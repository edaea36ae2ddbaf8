// The ONNX decoder against an independent plain-loop forward pass, and the KV-cache identities:
// prefill-then-decode == one prefill, sliced prefix + new tokens == one prefill, batched == isolated.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ModelConfig } from '../../server/src/model/config';
import type { AttentionPath } from '../../server/src/model/graph/decoder';
import { halfBitsToFloat, floatToHalfBits } from '../../server/src/model/half';
import { referenceForward } from '../helpers/reference-forward';
import { TINY_LLAMA, TINY_LLAMA_GQA, TINY_QWEN2, type TinyWeights } from '../helpers/tiny-model';
import { loadTinyModel, maxAbsDiff } from '../helpers/tiny-session';

const CASES: [string, ModelConfig][] = [
  ['llama (MHA)', TINY_LLAMA],
  ['llama with GQA and linear RoPE scaling', TINY_LLAMA_GQA],
  ['qwen2 (QKV bias, tied embeddings, 1 KV head)', TINY_QWEN2],
];
const PATHS: AttentionPath[] = ['plain', 'fused'];
const TOKENS = [5, 17, 200, 3, 42, 9, 9, 120, 255, 1, 64, 77, 299, 0];

function flatten(rows: ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(rows.length * rows[0]!.length);
  for (const [i, r] of rows.entries()) out.set(Array.from(r), i * r.length);
  return out;
}

function roundedToHalf(w: TinyWeights): TinyWeights {
  const tensors = new Map([...w.tensors].map(([n, t]) => [n, n.endsWith('norm.weight') || n.endsWith('.bias') ? t : t.map((v) => halfBitsToFloat(floatToHalfBits(v)))]));
  return { config: w.config, tensors };
}

for (const [label, config] of CASES) {
  for (const attention of PATHS) {
    describe(`${label}, ${attention} attention`, () => {
      it('fp32 logits match the reference forward pass to 1e-4', async () => {
        const { weights, model } = await loadTinyModel(config, { attention });
        const state = model.session.newState();
        const { logits } = await model.session.forward(state, [TOKENS], 'all');
        const diff = maxAbsDiff(logits, flatten(referenceForward(weights, TOKENS)));
        assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
        await model.session.release();
      });

      it('prefill then decode equals one full prefill', async () => {
        const { model } = await loadTinyModel(config, { attention });
        const s = model.session;
        const full = (await s.forward(s.newState(), [TOKENS], 'all')).logits;
        const V = config.vocabSize;
        const state = s.newState(1, 2); // tiny capacity so the buffers must grow mid-sequence
        const split = 5;
        const first = await s.prefill(state, TOKENS.slice(0, split));
        assert.ok(maxAbsDiff(first, full.subarray((split - 1) * V, split * V)) <= 1e-5);
        for (let t = split; t < TOKENS.length; t++) {
          const step = await s.decode(state, TOKENS[t]!);
          const diff = maxAbsDiff(step, full.subarray(t * V, (t + 1) * V));
          assert.ok(diff <= 1e-5, `position ${t}: ${diff}`);
        }
        assert.deepEqual(state.tokens(), TOKENS);
        await s.release();
      });

      it('a sliced prefix plus new tokens equals a full prefill; chunked prefill too', async () => {
        const { model } = await loadTinyModel(config, { attention });
        const s = model.session;
        const V = config.vocabSize;
        const full = (await s.forward(s.newState(), [TOKENS], 'all')).logits;
        const long = s.newState();
        await s.prefill(long, [...TOKENS.slice(0, 6), 11, 12, 13]); // diverges after 6 tokens
        const reused = s.track(long.slice(6));
        const rest = (await s.forward(reused, [TOKENS.slice(6)], 'all')).logits; // chunked: P=6, S=8
        assert.ok(maxAbsDiff(rest, full.subarray(6 * V)) <= 1e-5);
        long.truncate(6);
        const again = await s.prefill(long, TOKENS.slice(6));
        assert.ok(maxAbsDiff(again, full.subarray((TOKENS.length - 1) * V)) <= 1e-5);
        await s.release();
      });

      it('two sequences decoded as a batch equal each decoded alone', async () => {
        const { model } = await loadTinyModel(config, { attention });
        const s = model.session;
        const prompt = TOKENS.slice(0, 7);
        const shared = s.newState();
        await s.prefill(shared, prompt);
        const batch = s.track(shared.broadcast(2));
        const next = [[33], [44]];
        const batched = (await s.forward(batch, next, 'last')).logits; // [2,1,V]
        const batched2 = (await s.forward(batch, [[50], [60]], 'last')).logits;
        for (const b of [0, 1]) {
          const alone = s.newState();
          await s.prefill(alone, prompt);
          const one = await s.decode(alone, next[b]![0]!);
          const two = await s.decode(alone, b === 0 ? 50 : 60);
          const V = config.vocabSize;
          assert.ok(maxAbsDiff(one, batched.subarray(b * V, (b + 1) * V)) <= 1e-5);
          assert.ok(maxAbsDiff(two, batched2.subarray(b * V, (b + 1) * V)) <= 1e-5);
        }
        await s.release();
      });
    });
  }
}

describe('fp16 weights', () => {
  for (const attention of PATHS) {
    it(`${attention}: logits match the reference on fp16-rounded weights`, async () => {
      const { weights, model } = await loadTinyModel(TINY_QWEN2, { attention, weightType: 'float16' });
      const { logits } = await model.session.forward(model.session.newState(), [TOKENS], 'all');
      const reference = flatten(referenceForward(roundedToHalf(weights), TOKENS));
      // activations are rounded to fp16 before each MatMul, so the bound is fp16's, not fp32's
      const diff = maxAbsDiff(logits, reference);
      assert.ok(diff <= 2e-2, `max abs diff ${diff}`);
      const fp32 = await loadTinyModel(TINY_QWEN2, { attention, weightType: 'float32' });
      const ratio = model.session.weightBytes / fp32.model.session.weightBytes;
      assert.ok(ratio < 0.6, `fp16 weights take ${ratio} of the fp32 bytes`);
      await model.session.release();
      await fp32.model.session.release();
    });
  }
});

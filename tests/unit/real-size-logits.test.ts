// A real-size shape through Kiln's real loading path: the first 2 of Qwen2.5-Coder-0.5B's 24 layers
// with its full 151,936-token vocabulary (d 896, 14 heads, 2 KV heads, MLP 4864, q/k/v biases, tied
// head, rope_theta 1e6), seeded random BF16 weights made here, against the independent plain-loop
// reference forward. Covers what tiny shapes cannot: a 136M-value embedding/head, head_dim 64 with
// GQA 7:1, and K = 4864 in the quantized down projection.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { expectedTensors } from '../../server/src/model/checkpoint';
import { toHfConfigJson } from '../../server/src/model/config';
import { floatToHalfBits, halfBitsToFloat } from '../../server/src/model/half';
import { type QuantBits, roundTripQuantized } from '../../server/src/model/quantize';
import { writeSafetensors } from '../../server/src/model/safetensors';
import { QWEN25_CODER_05B, realSizeWeights, toBfloat16Bits } from '../bench/real-size-model';
import { referenceForward } from '../helpers/reference-forward';
import type { TinyWeights } from '../helpers/tiny-model';
import { loadOnCpu, maxAbsDiff, tempDir } from '../helpers/tiny-session';

const CONFIG = { ...QWEN25_CODER_05B, numLayers: 2, maxPositions: 64 };
/** Ids across the vocabulary, the FIM markers included. */
const TOKENS = [151_659, 1688, 15_229, 151_661, 90_000, 151_660];

const root = tempDir('kiln-real-size-');
after(() => rmSync(root, { recursive: true, force: true }));

const weights = realSizeWeights(CONFIG, 11);
const modelDir = join(root, 'model');
mkdirSync(modelDir);
writeFileSync(join(modelDir, 'config.json'), JSON.stringify(toHfConfigJson(CONFIG)));
// the values are bfloat16-exact (made that way), so the BF16 file holds exactly `weights`
writeSafetensors(
  join(modelDir, 'model.safetensors'),
  expectedTensors(CONFIG).map((t) => ({ name: t.name, shape: t.shape, dtype: 'BF16', data: toBfloat16Bits(weights.tensors.get(t.name)!) })),
);

/** Reference logits, flattened [T·V]. */
function reference(w: TinyWeights): Float64Array {
  const rows = referenceForward(w, TOKENS);
  const out = new Float64Array(rows.length * CONFIG.vocabSize);
  for (const [t, r] of rows.entries()) out.set(r, t * CONFIG.vocabSize);
  return out;
}

const fp32Reference = reference(weights);

/** What the quantized graph computes with: Linear layers and the (untied) head dequantized, the embedding float16. */
function asQuantized(bits: QuantBits): TinyWeights {
  const tensors = new Map<string, Float32Array>();
  for (const t of expectedTensors(CONFIG)) {
    const values = weights.tensors.get(t.name)!;
    if (t.name === 'model.embed_tokens.weight') {
      tensors.set(
        t.name,
        values.map((v) => halfBitsToFloat(floatToHalfBits(v))),
      );
      tensors.set('lm_head.weight', roundTripQuantized(values, { n: t.shape[0]!, k: t.shape[1]!, bits }));
    } else if (t.name.endsWith('_proj.weight')) {
      tensors.set(t.name, roundTripQuantized(values, { n: t.shape[0]!, k: t.shape[1]!, bits }));
    } else tensors.set(t.name, values);
  }
  return { config: { ...CONFIG, tieWordEmbeddings: false }, tensors };
}

async function kilnLogits(quantization?: QuantBits): Promise<Float32Array> {
  const model = await loadOnCpu(modelDir, { quantization, cacheDir: join(root, `cache-${quantization ?? 32}`) });
  try {
    assert.equal(model.config.vocabSize, 151_936);
    return (await model.session.forward(model.session.newState(), [TOKENS], 'all')).logits; // [T·V]
  } finally {
    await model.session.release();
  }
}

function range(xs: ArrayLike<number>): number {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < xs.length; i++) {
    lo = Math.min(lo, xs[i]!);
    hi = Math.max(hi, xs[i]!);
  }
  return hi - lo;
}

describe('real-size shape (Qwen2.5-Coder-0.5B, 2 layers, full vocabulary)', () => {
  it('fp32 logits match the reference forward within 1e-4', async () => {
    const diff = maxAbsDiff(await kilnLogits(), fp32Reference);
    assert.ok(diff <= 1e-4, `max |Kiln − reference| = ${diff}`);
  });

  // int8 only at this size (the int4 path differs in its bits alone and is checked on tiny shapes): each
  // quantized row costs a quantization of the 136M-value head in Kiln and one in the reference
  for (const bits of [8] as const) {
    it(`int${bits} logits stay within their bounds of the reference on the dequantized weights`, async () => {
      const logits = await kilnLogits(bits);
      const toQuantized = maxAbsDiff(logits, reference(asQuantized(bits)));
      const toFloat = maxAbsDiff(logits, fp32Reference);
      // the activations are quantized too (int8 per row): a few hundredths of the logit range
      assert.ok(Math.max(toQuantized, toFloat) <= 0.03 * range(logits), `vs dequantized ${toQuantized}, vs fp32 ${toFloat}, range ${range(logits)}`);
      assert.ok(toQuantized < toFloat, `the codes are what is computed with: ${toQuantized} vs the fp32 reference ${toFloat}`);
    });
  }
});

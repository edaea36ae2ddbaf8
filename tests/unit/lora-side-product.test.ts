// LoRA as side products on the base graph (model/graph/lora-side-product.ts, adapter-graph.ts): an
// adapter graph computes the merged model's logits on an fp32 base, follows the quantized base
// within its bound (exactly, on int4's dequantized weights), works on the fused projections, and
// writes only its own bytes beside the base graph, whose files stay untouched.
import assert from 'node:assert/strict';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { expectedTensors } from '../../server/src/model/checkpoint';
import { exportMerged } from '../../server/src/model/export/merge';
import { saveLoraAdapter } from '../../server/src/model/export/peft';
import { LORA_TARGETS } from '../../server/src/model/graph/training-graph';
import { halfBitsToFloat, floatToHalfBits } from '../../server/src/model/half';
import { dequantizeBlockwise, type QuantBits, quantizeBlockwise } from '../../server/src/model/quantize';
import type { AttentionPath } from '../../server/src/model/graph/decoder';
import { InferenceServer } from '../../server/src/runtime/inference-server';
import { ModelSwappedError } from '../../server/src/runtime/cancellation';
import { loadModel } from '../../server/src/runtime/load-model';
import { randomNormal, seededRandom } from '../helpers/random';
import { referenceForward } from '../helpers/reference-forward';
import { makeTinyWeights, TINY_QWEN2, type TinyWeights, writeTinyCheckpoint } from '../helpers/tiny-model';
import { forwardRows, maxAbsDiff, tempDir } from '../helpers/tiny-session';

// Qwen2-like: q/k/v biases, a tied head, one KV head; hidden 64, so int4/int8 blocks of 32 fit
const CONFIG = TINY_QWEN2;
const TOKENS = [5, 17, 200, 3, 42, 9, 120, 255, 1, 64];
const RANK = 4;
const ALPHA = 8;
const root = tempDir('kiln-lora-side-');
after(() => rmSync(root, { recursive: true, force: true }));

const base = makeTinyWeights(CONFIG, 31);
const baseDir = join(root, 'base');
writeTinyCheckpoint(baseDir, base);

/** Random A [r,in] and B [out,r] on every target projection (B non-zero, so the adapter matters). */
const loraTensors = new Map<string, Float32Array>();
const loraShapes = new Map<string, number[]>();
{
  const rand = seededRandom(77);
  for (const t of expectedTensors(CONFIG)) {
    const m = /^(.*\.([a-z]+_proj))\.weight$/.exec(t.name);
    if (!m) continue;
    const [out, inDim] = t.shape as [number, number];
    loraTensors.set(`${m[1]}.lora_A.weight`, randomNormal(rand, RANK * inDim, 0.1));
    loraShapes.set(`${m[1]}.lora_A.weight`, [RANK, inDim]);
    loraTensors.set(`${m[1]}.lora_B.weight`, randomNormal(rand, out * RANK, 0.1));
    loraShapes.set(`${m[1]}.lora_B.weight`, [out, RANK]);
  }
}
const adapterDir = join(root, 'adapter');
saveLoraAdapter(adapterDir, { baseModel: baseDir, mode: { rank: RANK, alpha: ALPHA, targets: [...LORA_TARGETS] }, tensors: loraTensors, shapes: loraShapes });

/** The test's own merge in plain loops, on whatever base weights it is given: W + (α/r)·B·A. */
function mergeHere(weights: TinyWeights): TinyWeights {
  const tensors = new Map(weights.tensors);
  for (const [name, A] of loraTensors) {
    if (!name.endsWith('.lora_A.weight')) continue;
    const module = name.slice(0, -'.lora_A.weight'.length);
    const B = loraTensors.get(`${module}.lora_B.weight`)!;
    const W = weights.tensors.get(`${module}.weight`)!;
    const inDim = A.length / RANK;
    const merged = new Float32Array(W.length);
    for (let o = 0; o < W.length / inDim; o++) {
      for (let i = 0; i < inDim; i++) {
        let s = 0;
        for (let k = 0; k < RANK; k++) s += B[o * RANK + k]! * A[k * inDim + i]!;
        merged[o * inDim + i] = W[o * inDim + i]! + (ALPHA / RANK) * s;
      }
    }
    tensors.set(`${module}.weight`, merged);
  }
  return { config: weights.config, tensors };
}

/** The weights a quantized graph computes with: Linear layers (and the tied head) dequantized, the embedding fp16-rounded. */
function asQuantized(w: TinyWeights, bits: QuantBits): TinyWeights {
  const tensors = new Map(w.tensors);
  for (const [name, t] of w.tensors) {
    if (!/_proj\.weight$/.test(name)) continue;
    const k = name.endsWith('down_proj.weight') ? CONFIG.intermediateSize : name.endsWith('o_proj.weight') ? CONFIG.numHeads * CONFIG.headDim : CONFIG.hiddenSize;
    tensors.set(name, dequantizeBlockwise(quantizeBlockwise(t, { n: t.length / k, k, bits })));
  }
  return { config: w.config, tensors };
}

const flat = (rows: ArrayLike<number>[]) => Float64Array.from(rows.flatMap((r) => Array.from(r)));

interface RunOptions {
  cacheDir: string;
  adapter?: boolean;
  quantization?: QuantBits;
  attention?: AttentionPath;
  dir?: string;
}

async function run(o: RunOptions): Promise<{ logits: Float64Array; cacheHit: boolean; modelPath: string; graphDir: string; weightBytes: number }> {
  const model = await loadModel(o.dir ?? baseDir, {
    executionProvider: 'cpu',
    threads: 1,
    cacheDir: o.cacheDir,
    adapterDir: o.adapter ? adapterDir : undefined,
    quantization: o.quantization,
    attention: o.attention,
  });
  try {
    return { logits: flat(await forwardRows(model, TOKENS)), cacheHit: model.cacheHit, modelPath: '', graphDir: model.graphDir, weightBytes: model.session.weightBytes };
  } finally {
    await model.session.release();
  }
}

describe('LoRA side products on the base graph', () => {
  const cacheDir = join(root, 'cache');

  it('fp32 base + adapter equals the merged-weights checkpoint (≤ 1e-4), on both attention paths', async () => {
    const mergedDir = join(root, 'merged');
    exportMerged(baseDir, adapterDir, mergedDir);
    const reference = flat(referenceForward(mergeHere(base), TOKENS));
    for (const attention of ['plain', 'fused'] as const) {
      const adapted = await run({ cacheDir, adapter: true, attention });
      const merged = await run({ cacheDir: join(root, 'cache-merged'), dir: mergedDir, attention });
      const toMerged = maxAbsDiff(adapted.logits, merged.logits);
      assert.ok(toMerged <= 1e-4, `${attention}: side products vs merged checkpoint ${toMerged}`);
      assert.ok(maxAbsDiff(adapted.logits, reference) <= 1e-4, `${attention}: vs the reference forward on merged weights`);
      const plainBase = await run({ cacheDir, attention });
      assert.ok(maxAbsDiff(adapted.logits, plainBase.logits) > 1e-2, `${attention}: the adapter changes the logits`);
    }
  });

  it('int4 base + adapter equals the reference on the dequantized base merged with the adapter, within int8 activation rounding', async () => {
    // int4 MatMulNBits runs at accuracy level 4 (int8 activations per block of 32, graph/quantized-matmul.ts):
    // against the dequantized codes merged with the adapter only that rounding remains, far below int4's own error
    const adapted = await run({ cacheDir, adapter: true, quantization: 4 });
    const quantizedBase = asQuantized(base, 4);
    const embedRounded = new Map(quantizedBase.tensors);
    embedRounded.set(
      'model.embed_tokens.weight',
      quantizedBase.tensors.get('model.embed_tokens.weight')!.map((v) => halfBitsToFloat(floatToHalfBits(v))),
    );
    // the tied head is quantized as a Linear layer of its own, from the fp32 embedding
    const head = dequantizeBlockwise(quantizeBlockwise(base.tensors.get('model.embed_tokens.weight')!, { n: CONFIG.vocabSize, k: CONFIG.hiddenSize, bits: 4 }));
    const withHead: TinyWeights = { config: { ...CONFIG, tieWordEmbeddings: false }, tensors: new Map([...embedRounded, ['lm_head.weight', head]]) };
    const reference = flat(referenceForward(mergeHere(withHead), TOKENS));
    const diff = maxAbsDiff(adapted.logits, reference);
    const fp32Adapted = flat(referenceForward(mergeHere(base), TOKENS));
    const int4Error = maxAbsDiff(adapted.logits, fp32Adapted);
    console.log(`int4 + adapter: ${diff} from the dequantized merged reference, ${int4Error} from fp32`);
    assert.ok(diff < int4Error / 4, `int4 + adapter vs the dequantized merged reference: ${diff}, vs fp32 ${int4Error}: the int4 codes are in use`);
  });

  it('int8 base + adapter stays within the int8 bound of fp32 + adapter, and the adapter is applied', async () => {
    const int8Adapted = await run({ cacheDir, adapter: true, quantization: 8 });
    const int8Base = await run({ cacheDir, quantization: 8 });
    const fp32Adapted = await run({ cacheDir, adapter: true });
    const range = Math.max(...fp32Adapted.logits) - Math.min(...fp32Adapted.logits);
    const toFp32 = maxAbsDiff(int8Adapted.logits, fp32Adapted.logits);
    // the bound of tests/unit/quantized-decoder.test.ts: int8 weights and int8 activations per block
    assert.ok(toFp32 <= 0.03 * range, `int8 + adapter vs fp32 + adapter ${toFp32}, logit range ${range}`);
    const adapterEffect = maxAbsDiff(int8Adapted.logits, int8Base.logits);
    assert.ok(adapterEffect > 5 * toFp32, `the adapter's effect on int8 (${adapterEffect}) is well above the int8 error (${toFp32})`);
  });

  it('an adapter writes only its own bytes beside the base graph: not another copy of the weights', async () => {
    const cache = join(root, 'cache-bytes');
    for (const quantization of [undefined, 8] as const) {
      const first = await run({ cacheDir: cache, quantization });
      const before = new Map(readdirSync(first.graphDir).map((f) => [f, statSync(join(first.graphDir, f))]));
      const adapted = await run({ cacheDir: cache, adapter: true, quantization });
      assert.equal(adapted.graphDir, first.graphDir, 'the adapter graph sits in its base graph folder');
      assert.equal(adapted.cacheHit, false);
      assert.equal(readdirSync(join(cache, 'graphs')).length, 1 + (quantization ? 1 : 0), 'no new cache folder');
      const files = readdirSync(adapted.graphDir);
      for (const [f, st] of before) {
        const now = statSync(join(adapted.graphDir, f));
        assert.equal(now.ino, st.ino, `${f} is the same file`);
        if (f !== 'kiln-build.json') assert.equal(now.mtimeMs, st.mtimeMs, `${f} was not rewritten`);
      }
      const added = files.filter((f) => !before.has(f));
      assert.equal(added.length, 3, `model, factors and record: ${added}`);
      const written = added.reduce((a, f) => a + statSync(join(adapted.graphDir, f)).size, 0);
      const loraBytes = [...loraTensors.values()].reduce((a, t) => a + t.byteLength, 0);
      const factors = statSync(join(adapted.graphDir, added.find((f) => f.endsWith('.onnx.data'))!)).size;
      assert.ok(factors >= loraBytes && factors <= loraBytes + 64 * loraTensors.size, `factors file ${factors} B for ${loraBytes} B of LoRA`);
      const baseModel = statSync(join(adapted.graphDir, 'model.onnx')).size;
      const baseData = statSync(join(adapted.graphDir, 'model.onnx.data')).size;
      // the rest is the graph's nodes: about the base model.onnx (no weights) plus the side-product nodes
      assert.ok(written - factors < 2 * baseModel, `adapter model file ${written - factors} B vs the base's ${baseModel} B`);
      assert.ok(written < baseData / 2, `an adapter wrote ${written} B beside ${baseData} B of base weights`);
      assert.equal(adapted.weightBytes, first.weightBytes + loraBytes, 'weight bytes: the base plus the factors');
      assert.equal((await run({ cacheDir: cache, adapter: true, quantization })).cacheHit, true, 'the adapter graph is cached');
    }
  });

  it('the inference server swaps an int8 base for int8 + adapter between steps; batched decode equals the adapter model alone', async () => {
    const cache = join(root, 'cache-swap');
    const load = (adapter: boolean) => loadModel(baseDir, { executionProvider: 'cpu', threads: 1, cacheDir: cache, quantization: 8, adapterDir: adapter ? adapterDir : undefined });
    const base = await load(false);
    const adapted = await load(true);
    const server = new InferenceServer(base.session, { kvBudgetBytes: 16 * 2 ** 20 });
    const before = (await server.open(TOKENS)).slot;
    await server.extend(before, TOKENS);
    assert.equal(await server.swap(adapted.session), base.session);
    await assert.rejects(server.step([before], [7]), ModelSwappedError);
    const prompts = [TOKENS, TOKENS.slice(0, 4)];
    const slots = [];
    for (const p of prompts) {
      const { slot, reused } = await server.open(p);
      assert.equal(reused, 0, 'no KV of the base weights is reused');
      await server.extend(slot, p);
      slots.push(slot);
    }
    const steps = [
      [11, 12],
      [13, 14],
    ];
    const batched = [];
    for (const tokens of steps) batched.push(await server.step(slots, tokens));
    for (const [b, p] of prompts.entries()) {
      const alone = adapted.session.newState();
      await adapted.session.prefill(alone, p);
      const baseAlone = base.session.newState();
      await base.session.prefill(baseAlone, p);
      for (const [t, tokens] of steps.entries()) {
        const expected = await adapted.session.decode(alone, tokens[b]!);
        const baseLogits = await base.session.decode(baseAlone, tokens[b]!);
        assert.ok(maxAbsDiff(batched[t]![b]!, expected) <= 1e-4, `slot ${b} step ${t}`);
        assert.ok(maxAbsDiff(batched[t]![b]!, baseLogits) > 1e-2, `slot ${b} step ${t}: the adapter is in use`);
      }
    }
    await base.session.release();
    await adapted.session.release();
  });
});

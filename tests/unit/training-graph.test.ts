// Whole training graphs (full and LoRA) against finite differences, the training loss against the
// inference graph's logits, and the in-graph AdamW against a plain TypeScript AdamW.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../../server/src/model/config';
import type { AdamWHyper } from '../../server/src/model/graph/adamw';
import { buildGradientGraph, buildOptimizerGraph, type TrainableParam, TrainIO, type TrainingMode } from '../../server/src/model/graph/training-graph';
import { checkDirectionalGradients, sessionFor } from '../helpers/grad-check';
import { randomNormal, seededRandom } from '../helpers/random';
import { logSoftmax, referenceForward } from '../helpers/reference-forward';
import { makeTinyWeights, TINY_LLAMA_GQA, TINY_QWEN2 } from '../helpers/tiny-model';

const TOKENS = [
  [5, 17, 200, 3, 42, 9, 120, 7],
  [1, 2, 3, 4, 5, 6, 7, 8],
];

function batchFeeds(params: TrainableParam[], override: (p: TrainableParam) => Float32Array | undefined = () => undefined): Record<string, ort.Tensor> {
  const B = TOKENS.length;
  const S = TOKENS[0]!.length;
  const labels = TOKENS.map((row) => [...row.slice(1), -100]);
  labels[1]![2] = -100; // an ignored position inside the sequence
  const feeds: Record<string, ort.Tensor> = {
    [TrainIO.inputIds]: new ort.Tensor('int64', BigInt64Array.from(TOKENS.flat(), BigInt), [B, S]),
    [TrainIO.labels]: new ort.Tensor('int64', BigInt64Array.from(labels.flat(), BigInt), [B, S]),
  };
  for (const p of params) feeds[p.name] = new ort.Tensor('float32', Float32Array.from(override(p) ?? p.init()), p.shape);
  return feeds;
}

function weightSource(config: ModelConfig, seed: number) {
  const w = makeTinyWeights(config, seed, 0.2);
  return { w, source: { readFloat32: (n: string) => Float32Array.from(w.tensors.get(n)!) } };
}

for (const [label, config] of [
  ['llama GQA', TINY_LLAMA_GQA],
  ['qwen2 tied + bias', TINY_QWEN2],
] as const) {
  describe(`training graph, ${label}`, () => {
    it('full-parameter gradients match finite differences', async () => {
      const { source } = weightSource(config, 4);
      const { graph, params } = buildGradientGraph(config, source, { kind: 'full' });
      const session = await sessionFor(graph);
      const pick = params.filter((p) =>
        /embed_tokens|layers\.0\.(self_attn\.(q|k)_proj|mlp\.down_proj|input_layernorm)|layers\.1\.self_attn\.v_proj\.bias|^model\.norm|lm_head/.test(p.name),
      );
      const r = await checkDirectionalGradients(
        session,
        batchFeeds(params),
        pick.map((p) => p.name),
        { loss: TrainIO.loss, grad: TrainIO.grad },
      );
      assert.ok(r.checked >= 10);
      assert.ok(r.maxRelError <= 1e-3, `${r.maxRelError}: ${r.worst}`);
    });

    it('LoRA gradients match finite differences', async () => {
      const { source } = weightSource(config, 4);
      const mode: TrainingMode = { kind: 'lora', rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'] };
      const { graph, params } = buildGradientGraph(config, source, mode);
      assert.equal(params.length, 2 * 4 * config.numLayers);
      const session = await sessionFor(graph);
      // B starts at zero (so dL/dA = 0); random B makes every gradient informative
      const rand = seededRandom(21);
      const feeds = batchFeeds(params, (p) => (p.name.includes('lora_B') ? randomNormal(rand, p.shape[0]! * p.shape[1]!, 0.3) : undefined));
      const r = await checkDirectionalGradients(
        session,
        feeds,
        params.map((p) => p.name),
        { loss: TrainIO.loss, grad: TrainIO.grad },
      );
      assert.ok(r.maxRelError <= 1e-3, `${r.maxRelError}: ${r.worst}`);
    });

    it('the training loss equals the cross-entropy of the independent reference logits', async () => {
      const { w, source } = weightSource(config, 6);
      const { graph, params } = buildGradientGraph(config, source, { kind: 'full' });
      const session = await sessionFor(graph);
      const feeds = batchFeeds(params);
      const loss = ((await session.run(feeds, [TrainIO.loss]))[TrainIO.loss]!.data as Float32Array)[0]!;
      const labels = Array.from(feeds[TrainIO.labels]!.data as BigInt64Array, Number);
      let total = 0;
      let count = 0;
      for (const [b, row] of TOKENS.entries()) {
        for (const [t, logits] of referenceForward(w, row).entries()) {
          const y = labels[b * row.length + t]!;
          if (y < 0) continue;
          total -= logSoftmax(logits)[y]!;
          count++;
        }
      }
      assert.ok(Math.abs(loss - total / count) <= 1e-4, `graph ${loss} vs reference ${total / count}`);
    });
  });
}

/** torch.optim.AdamW's update with clip_grad_norm_, in plain loops. */
function referenceAdamW(params: Float32Array[], grads: Float32Array[], m: Float64Array[], v: Float64Array[], lr: number, step: number, h: AdamWHyper, decay: boolean[]): void {
  const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));
  const clip = Math.min(1, h.maxGradNorm / (norm + 1e-6));
  params.forEach((p, k) => {
    for (let i = 0; i < p.length; i++) {
      const g = grads[k]![i]! * clip;
      m[k]![i] = h.beta1 * m[k]![i]! + (1 - h.beta1) * g;
      v[k]![i] = h.beta2 * v[k]![i]! + (1 - h.beta2) * g * g;
      const mHat = m[k]![i]! / (1 - h.beta1 ** step);
      const vHat = v[k]![i]! / (1 - h.beta2 ** step);
      let x = p[i]!;
      if (decay[k]) x *= 1 - lr * h.weightDecay;
      p[i] = x - (lr * mHat) / (Math.sqrt(vHat) + h.eps);
    }
  });
}

describe('in-graph AdamW', () => {
  it('matches a plain TypeScript AdamW with clipping to 1e-6 over several steps', async () => {
    const hyper: AdamWHyper = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 0.5 };
    const shapes = [[3, 4], [5]];
    const params = shapes.map((shape, i) => ({ name: `p${i}`, shape, hfName: `p${i}`, transposed: false, decay: shape.length === 2, init: () => new Float32Array(0) }));
    const session = await sessionFor(buildOptimizerGraph(params, hyper));
    const rand = seededRandom(3);
    const values = shapes.map((s) =>
      randomNormal(
        rand,
        s.reduce((a, b) => a * b, 1),
        1,
      ),
    );
    const refValues = values.map((x) => Float32Array.from(x));
    let m: Float32Array[] = shapes.map((s) => new Float32Array(s.reduce((a, b) => a * b, 1)));
    let v: Float32Array[] = m.map((x) => Float32Array.from(x));
    const refM = m.map((x) => new Float64Array(x.length));
    const refV = m.map((x) => new Float64Array(x.length));
    let current: Float32Array[] = values;
    for (let step = 1; step <= 4; step++) {
      const grads = shapes.map((s) =>
        randomNormal(
          rand,
          s.reduce((a, b) => a * b, 1),
          2,
        ),
      );
      const feeds: Record<string, ort.Tensor> = {
        [TrainIO.lr]: new ort.Tensor('float32', Float32Array.of(1e-2), []),
        [TrainIO.step]: new ort.Tensor('float32', Float32Array.of(step), []),
      };
      params.forEach((p, k) => {
        feeds[p.name] = new ort.Tensor('float32', current[k]!, p.shape);
        feeds[TrainIO.grad(p.name)] = new ort.Tensor('float32', grads[k]!, p.shape);
        feeds[TrainIO.m(p.name)] = new ort.Tensor('float32', m[k]!, p.shape);
        feeds[TrainIO.v(p.name)] = new ort.Tensor('float32', v[k]!, p.shape);
      });
      const out = await session.run(feeds);
      current = params.map((p) => out[TrainIO.updated(p.name)]!.data as Float32Array);
      m = params.map((p) => out[TrainIO.updatedM(p.name)]!.data as Float32Array);
      v = params.map((p) => out[TrainIO.updatedV(p.name)]!.data as Float32Array);
      referenceAdamW(
        refValues,
        grads,
        refM,
        refV,
        1e-2,
        step,
        hyper,
        params.map((p) => p.decay),
      );
      for (const [k, updated] of current.entries()) {
        for (const [i, x] of updated.entries()) assert.ok(Math.abs(x - refValues[k]![i]!) <= 1e-6, `step ${step} p${k}[${i}]: ${x} vs ${refValues[k]![i]}`);
      }
    }
  });
});

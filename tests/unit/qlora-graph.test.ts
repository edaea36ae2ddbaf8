// QLoRA: LoRA training on a frozen base stored as int8/int4 blocks (the inference quantizer's
// layout), multiplied by MatMulNBits. Its gradients against finite differences of its own forward
// (the quantized matmul's rule alone, then whole graphs), and its loss and gradients against the
// fp32-base LoRA graph on the dequantized weights, computed exactly.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../../server/src/model/config';
import { quantizedMatMul } from '../../server/src/model/graph/quantized-matmul';
import { buildGradientGraph, TrainIO, type TrainingMode } from '../../server/src/model/graph/training-graph';
import { dequantizeBlockwise, type QuantBits, quantizeBlockwise } from '../../server/src/model/quantize';
import { checkDirectionalGradients, checkGradients, opGraph, sessionFor } from '../helpers/grad-check';
import { randomNormal, seededRandom } from '../helpers/random';
import { makeTinyWeights, TINY_LLAMA_GQA, TINY_QWEN2 } from '../helpers/tiny-model';

const OPSETS = { '': 23, 'com.microsoft': 1 };

describe('quantized matmul backward (dx = dy · dequantized W)', () => {
  for (const bits of [8, 4] as QuantBits[]) {
    for (const k of [64, 96]) {
      it(`int${bits}, K ${k} (${k / 32} blocks): gradients match finite differences`, async () => {
        const n = 12;
        const w = randomNormal(seededRandom(k + bits), n * k, 0.2);
        const { graph } = opGraph([{ name: 'x', shape: [2, 3, k] }], (dg, [x]) =>
          quantizedMatMul(dg, x!, { graphName: 'proj', bits, n, k, rows: (into) => into.set(w), accuracyLevel: 0 }),
        );
        const session = await sessionFor(graph, OPSETS);
        const feeds = { x: new ort.Tensor('float32', randomNormal(seededRandom(3), 2 * 3 * k, 1), [2, 3, k]) };
        const r = await checkGradients(session, feeds, ['x'], { loss: 'loss', grad: (p) => `grad.${p}` }, { perParam: 12 });
        assert.ok(r.maxRelError <= 1e-3, `${r.maxRelError}: ${r.worst}`);
      });
    }
  }
});

const TOKENS = [
  [5, 17, 200, 3, 42, 9, 120, 7],
  [1, 2, 3, 4, 5, 6, 7, 8],
];

function feedsFor(params: ReturnType<typeof buildGradientGraph>['params']): Record<string, ort.Tensor> {
  const labels = TOKENS.map((row) => [...row.slice(1), -100]);
  const rand = seededRandom(21);
  const feeds: Record<string, ort.Tensor> = {
    [TrainIO.inputIds]: new ort.Tensor('int64', BigInt64Array.from(TOKENS.flat(), BigInt), [2, 8]),
    [TrainIO.labels]: new ort.Tensor('int64', BigInt64Array.from(labels.flat(), BigInt), [2, 8]),
  };
  for (const p of params) {
    const size = p.shape.reduce((a, b) => a * b, 1);
    feeds[p.name] = new ort.Tensor('float32', p.name.includes('lora_B') ? randomNormal(rand, size, 0.3) : Float32Array.from(p.init()), p.shape);
  }
  return feeds;
}

const PROJECTION = /\.(q|k|v|o|gate|up|down)_proj\.weight$/;

for (const [label, config] of [
  ['llama GQA', TINY_LLAMA_GQA],
  ['qwen2 tied + bias', TINY_QWEN2],
] as [string, ModelConfig][]) {
  for (const bits of [8, 4] as QuantBits[]) {
    describe(`QLoRA training graph, int${bits} base, ${label}`, () => {
      const w = makeTinyWeights(config, 4, 0.2);
      const source = { readFloat32: (n: string) => Float32Array.from(w.tensors.get(n)!) };
      const targets = ['q_proj', 'v_proj', 'o_proj', 'down_proj'] as const;
      const qlora: TrainingMode = { kind: 'lora', rank: 4, alpha: 8, targets, baseBits: bits };

      it('LoRA gradients match finite differences of its own forward', async () => {
        const { graph, params } = buildGradientGraph(config, source, qlora);
        const session = await sessionFor(graph, OPSETS);
        const r = await checkDirectionalGradients(
          session,
          feedsFor(params),
          params.map((p) => p.name),
          { loss: TrainIO.loss, grad: TrainIO.grad },
        );
        assert.ok(r.maxRelError <= 1e-3, `${r.maxRelError}: ${r.worst}`);
      });

      it('loss and gradients equal the fp32-base LoRA graph on the dequantized weights', async () => {
        // the weights the codes stand for, per HF tensor: fusing projections side by side keeps each row's blocks
        const dequantized = {
          readFloat32(name: string) {
            const x = Float32Array.from(w.tensors.get(name)!);
            if (!PROJECTION.test(name)) return x;
            const [n, k] = expectedShape(w, name);
            return dequantizeBlockwise(quantizeBlockwise(x, { n, k, bits }));
          },
        };
        const q = buildGradientGraph(config, source, qlora);
        const f = buildGradientGraph(config, dequantized, { ...qlora, baseBits: undefined });
        const feeds = feedsFor(q.params);
        const [a, b] = [await (await sessionFor(q.graph, OPSETS)).run(feeds), await (await sessionFor(f.graph, OPSETS)).run(feeds)];
        const lossQ = (a[TrainIO.loss]!.data as Float32Array)[0]!;
        const lossF = (b[TrainIO.loss]!.data as Float32Array)[0]!;
        assert.ok(Math.abs(lossQ - lossF) <= 1e-4, `quantized-base loss ${lossQ} vs fp32 on dequantized weights ${lossF}`);
        const plain = buildGradientGraph(config, source, { ...qlora, baseBits: undefined });
        const lossPlain = ((await (await sessionFor(plain.graph, OPSETS)).run(feeds))[TrainIO.loss]!.data as Float32Array)[0]!;
        assert.notEqual(lossQ, lossPlain, 'the quantized base differs from the fp32 one (the check can fail)');
        for (const p of q.params) {
          const ga = a[TrainIO.grad(p.name)]!.data as Float32Array;
          const gb = b[TrainIO.grad(p.name)]!.data as Float32Array;
          const scale = Math.max(1e-6, ...Array.from(gb, Math.abs));
          const worst = ga.reduce((m, x, i) => Math.max(m, Math.abs(x - gb[i]!) / scale), 0);
          assert.ok(worst <= 1e-3, `${p.name}: ${worst}`);
        }
      });
    });
  }
}

function expectedShape(w: ReturnType<typeof makeTinyWeights>, name: string): [number, number] {
  const c = w.config;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const m = /\.(q|k|v|o|gate|up|down)_proj/.exec(name)![1]!;
  const shapes: Record<string, [number, number]> = {
    q: [q, c.hiddenSize],
    k: [kv, c.hiddenSize],
    v: [kv, c.hiddenSize],
    o: [c.hiddenSize, q],
    gate: [c.intermediateSize, c.hiddenSize],
    up: [c.intermediateSize, c.hiddenSize],
    down: [c.hiddenSize, c.intermediateSize],
  };
  return shapes[m]!;
}

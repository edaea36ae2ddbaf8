// Per-layer recomputation (DiffGraph.recomputed): the training graph with each layer's activations
// recomputed in the backward gives the loss and every gradient of the graph that keeps them, for
// full training, LoRA and LoRA on an int8 base; and its backward reads, of each layer's forward,
// only what flows into the layer (so ORT frees the rest after the forward), where the plain graph
// reads dozens of values a layer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildGradientGraph, type TrainableParam, TrainIO, type TrainingMode } from '../../server/src/model/graph/training-graph';
import { sessionFor } from '../helpers/grad-check';
import { randomNormal, seededRandom } from '../helpers/random';
import { makeTinyWeights, TINY_QWEN2 } from '../helpers/tiny-model';

const config = TINY_QWEN2;
const w = makeTinyWeights(config, 5, 0.2);
const source = { readFloat32: (n: string) => Float32Array.from(w.tensors.get(n)!) };

function feedsFor(params: TrainableParam[]): Record<string, ort.Tensor> {
  const rand = seededRandom(8);
  const tokens = Array.from({ length: 2 * 12 }, () => Math.floor(rand() * config.vocabSize));
  const labels = tokens.map((_, i) => (i % 12 === 11 || i === 5 ? -100 : tokens[i + 1]!));
  const feeds: Record<string, ort.Tensor> = {
    [TrainIO.inputIds]: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [2, 12]),
    [TrainIO.labels]: new ort.Tensor('int64', BigInt64Array.from(labels, BigInt), [2, 12]),
  };
  // LoRA's B starts at zero; random values make every gradient informative
  for (const p of params)
    feeds[p.name] = new ort.Tensor('float32', p.name.includes('lora_B') ? randomNormal(rand, p.shape[0]! * p.shape[1]!, 0.3) : Float32Array.from(p.init()), p.shape);
  return feeds;
}

/** Of the values made inside a layer's forward, how many distinct ones the backward reads. */
function layerValuesReadByBackward(graph: ReturnType<typeof buildGradientGraph>['graph']): number {
  const offsets = new Map(graph.initializers.map((x) => [x.name, [0, 0] as [number, number]]));
  const nodes = graph.toModelProto('none', offsets, { '': 23, 'com.microsoft': 1 }).graph!.node!;
  const inLayers = new Set(nodes.filter((n) => /^\/model\/layers\.\d+\//.test(n.name!)).flatMap((n) => n.output!));
  return new Set(nodes.filter((n) => n.name!.startsWith('/backward')).flatMap((n) => n.input!.filter((i) => inLayers.has(i)))).size;
}

const modes: [string, TrainingMode][] = [
  ['full', { kind: 'full' }],
  ['LoRA', { kind: 'lora', rank: 4, alpha: 8, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }],
  ['LoRA on an int8 base', { kind: 'lora', rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'down_proj'], baseBits: 8 }],
];

describe('per-layer recomputation in the training graph', () => {
  for (const [label, mode] of modes) {
    it(`${label}: the same loss and gradients as keeping the activations`, async () => {
      const kept = buildGradientGraph(config, source, mode);
      const recomputed = buildGradientGraph(config, source, mode, { recomputeLayers: true });
      const feeds = feedsFor(kept.params);
      const names = [TrainIO.loss, ...kept.params.map((p) => TrainIO.grad(p.name))];
      const a = await (await sessionFor(kept.graph)).run(feeds, names);
      const b = await (await sessionFor(recomputed.graph)).run(feeds, names);
      for (const name of names) {
        const x = a[name]!.data as Float32Array;
        const y = b[name]!.data as Float32Array;
        const scale = Math.max(1e-6, ...Array.from(x, Math.abs));
        const worst = Math.max(...Array.from(x, (v, i) => Math.abs(v - y[i]!)));
        assert.ok(worst <= 1e-5 * scale, `${name}: ${worst} of ${scale}`);
      }
    });

    it(`${label}: the backward reads only what flows into each layer`, () => {
      const plain = layerValuesReadByBackward(buildGradientGraph(config, source, mode).graph);
      const recomputed = layerValuesReadByBackward(buildGradientGraph(config, source, mode, { recomputeLayers: true }).graph);
      // a layer hands on its residual sum and its MLP's output; the last layer's are read outside any layer
      assert.ok(recomputed <= 2 * config.numLayers, `${recomputed} values of the layers' forwards read by the backward`);
      assert.ok(plain >= 10 * config.numLayers, `the plain graph keeps many: ${plain}`);
    });
  }
});

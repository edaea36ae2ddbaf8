// The chunked LM head + cross-entropy: its gradients against finite differences of its own forward
// (hidden and head, with ignored positions and chunks left empty), and whole training graphs built
// with it against the same graphs materialising logits for every position (the reference path).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../../server/src/model/config';
import { chunkedLmHeadLoss, lossChunkCount } from '../../server/src/model/graph/loss-head';
import { buildGradientGraph, TrainIO, type TrainingMode } from '../../server/src/model/graph/training-graph';
import { checkGradients, opGraph, sessionFor } from '../helpers/grad-check';
import { randomNormal, seededRandom } from '../helpers/random';
import { makeTinyWeights, TINY_LLAMA_GQA, TINY_QWEN2 } from '../helpers/tiny-model';

const B = 2;
const S = 5;
const D = 6;
const V = 11;

/** The op alone: loss of hidden [B,S,d]·head [V,d]ᵀ against fixed labels, in `chunks` chunks. */
function opCase(labels: number[], chunks: number) {
  return opGraph(
    [
      { name: 'hidden', shape: [B, S, D] },
      { name: 'head', shape: [V, D] },
    ],
    (dg, [hidden, head]) => {
      const y = dg.value(dg.g.int64(labels, [B, S]), [B, S], 'int64');
      const loss = chunkedLmHeadLoss(dg, { hidden: hidden!, head: head!, labels: y, chunks });
      return dg.emit({ op: 'Unsqueeze', inputs: [loss], outShapes: [[1]], rule: ([gr]) => [dg.value(dg.g.op('Squeeze', [gr!.name]), [])], extraInputs: [dg.g.int64([0])] })[0]!;
    },
  ).graph;
}

const feeds = () => {
  const rand = seededRandom(5);
  return {
    hidden: new ort.Tensor('float32', randomNormal(rand, B * S * D, 1), [B, S, D]),
    head: new ort.Tensor('float32', randomNormal(rand, V * D, 0.5), [V, D]),
  };
};

describe('chunked LM head cross-entropy', () => {
  const cases: [string, number[], number][] = [
    ['7 loss positions in 3 chunks, 3 ignored', [3, -100, 0, 10, 4, 7, 7, -100, 1, -100], 3],
    ['2 loss positions in 4 chunks (two chunks empty)', [-100, -100, 5, -100, -100, -100, -100, 2, -100, -100], 4],
    ['every position in one chunk', [1, 2, 3, 4, 5, 6, 7, 8, 9, 0], 1],
  ];
  for (const [what, labels, chunks] of cases) {
    it(`${what}: gradients of hidden and head match finite differences`, async () => {
      const session = await sessionFor(opCase(labels, chunks));
      const f = feeds();
      const r = await checkGradients(session, f, ['hidden', 'head'], { loss: 'loss', grad: (p) => `grad.${p}` }, { perParam: 8 });
      assert.ok(r.checked >= 10 && r.maxRelError <= 1e-3, `${r.maxRelError}: ${r.worst}`);
      const gradHidden = (await session.run(f))['grad.hidden']!.data as Float32Array;
      labels.forEach((y, i) => {
        if (y < 0)
          assert.ok(
            gradHidden.subarray(i * D, (i + 1) * D).every((x) => x === 0),
            `ignored position ${i} gets no gradient`,
          );
      });
    });
  }

  it('no loss position at all: loss 0 and zero gradients, not NaN', async () => {
    const session = await sessionFor(opCase(Array(B * S).fill(-100), 3));
    const out = await session.run(feeds());
    assert.equal((out.loss!.data as Float32Array)[0], 0);
    assert.ok((out['grad.hidden']!.data as Float32Array).every((x) => x === 0));
    assert.ok((out['grad.head']!.data as Float32Array).every((x) => x === 0));
  });

  it("splits Qwen2.5's vocabulary into a few chunks and a tiny one into one", () => {
    assert.equal(lossChunkCount(151_936), 5);
    assert.equal(lossChunkCount(256), 1);
  });
});

const TOKENS = [
  [5, 17, 200, 3, 42, 9, 120, 7],
  [1, 2, 3, 4, 5, 6, 7, 8],
];

function batchFeeds(params: ReturnType<typeof buildGradientGraph>['params'], rand: () => number): Record<string, ort.Tensor> {
  const labels = TOKENS.map((row) => [...row.slice(1), -100]);
  labels[1]![2] = -100;
  labels[0]![0] = -100;
  const feeds: Record<string, ort.Tensor> = {
    [TrainIO.inputIds]: new ort.Tensor('int64', BigInt64Array.from(TOKENS.flat(), BigInt), [2, 8]),
    [TrainIO.labels]: new ort.Tensor('int64', BigInt64Array.from(labels.flat(), BigInt), [2, 8]),
  };
  for (const p of params) {
    const size = p.shape.reduce((a, b) => a * b, 1);
    // LoRA's B starts at zero; random values make every gradient informative
    feeds[p.name] = new ort.Tensor('float32', p.name.includes('lora_B') ? randomNormal(rand, size, 0.3) : Float32Array.from(p.init()), p.shape);
  }
  return feeds;
}

for (const [label, config] of [
  ['llama GQA, untied head', TINY_LLAMA_GQA],
  ['qwen2, tied head', TINY_QWEN2],
] as [string, ModelConfig][]) {
  describe(`training graph with the chunked head equals the whole-logits reference, ${label}`, () => {
    const w = makeTinyWeights(config, 4, 0.2);
    const source = { readFloat32: (n: string) => Float32Array.from(w.tensors.get(n)!) };
    const modes: [string, TrainingMode][] = [
      ['LoRA', { kind: 'lora', rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'down_proj'] }],
      ['full-parameter', { kind: 'full' }],
    ];
    for (const [name, mode] of modes) {
      it(`${name}: the same loss and gradients (3 chunks vs logits for every position)`, async () => {
        const chunked = buildGradientGraph(config, source, mode, { lossChunks: 3 });
        const whole = buildGradientGraph(config, source, mode, { lossChunks: 0 });
        const f = batchFeeds(chunked.params, seededRandom(21));
        const [a, b] = await Promise.all([(await sessionFor(chunked.graph)).run(f), (await sessionFor(whole.graph)).run(f)]);
        const lossA = (a[TrainIO.loss]!.data as Float32Array)[0]!;
        const lossB = (b[TrainIO.loss]!.data as Float32Array)[0]!;
        assert.ok(Math.abs(lossA - lossB) <= 1e-5, `loss ${lossA} vs ${lossB}`);
        let worst = 0;
        for (const p of chunked.params) {
          const ga = a[TrainIO.grad(p.name)]!.data as Float32Array;
          const gb = b[TrainIO.grad(p.name)]!.data as Float32Array;
          const scale = Math.max(1e-3, ...Array.from(gb, Math.abs));
          for (let i = 0; i < ga.length; i++) worst = Math.max(worst, Math.abs(ga[i]! - gb[i]!) / scale);
        }
        assert.ok(worst <= 1e-4, `largest gradient difference ${worst} (relative to each tensor's largest entry)`);
      });
    }
  });
}

/** Node names and inputs of a built graph (its ModelProto, weights left unwritten). */
function nodesOf(graph: ReturnType<typeof buildGradientGraph>['graph']): { name: string; input: string[] }[] {
  const offsets = new Map(graph.initializers.map((w) => [w.name, [0, 0] as [number, number]]));
  return graph.toModelProto('none', offsets, { '': 23 }).graph!.node!.map((n) => ({ name: n.name!, input: n.input! }));
}

describe('LoRA on the top layers only', () => {
  const config = TINY_QWEN2;
  const w = makeTinyWeights(config, 4, 0.2);
  const source = { readFloat32: (n: string) => Float32Array.from(w.tensors.get(n)!) };
  const targets = ['q_proj', 'v_proj', 'down_proj'] as const;
  const top: TrainingMode = { kind: 'lora', rank: 4, alpha: 8, targets, layers: 1 };
  const all: TrainingMode = { kind: 'lora', rank: 4, alpha: 8, targets };

  it('adapts the top layer alone, and no backward node reads anything of the layers below', () => {
    const built = buildGradientGraph(config, source, top);
    assert.deepEqual([...new Set(built.params.map((p) => /layers\.(\d+)\./.exec(p.name)![1]))], [String(config.numLayers - 1)]);
    const below = (n: { name: string; input: string[] }) => n.name.startsWith('/backward') && n.input.some((i) => /layers[._]0[./]/.test(i));
    assert.equal(nodesOf(built.graph).filter(below).length, 0, 'backward work in layer 0');
    assert.ok(nodesOf(buildGradientGraph(config, source, all).graph).some(below), 'with every layer adapted, the backward does reach layer 0');
  });

  it("the top layer's gradients equal those of the every-layer graph whose lower LoRA is still zero", async () => {
    const a = buildGradientGraph(config, source, top);
    const b = buildGradientGraph(config, source, all);
    const rand = seededRandom(3);
    const topFeeds = batchFeeds(a.params, rand);
    const allFeeds = batchFeeds(b.params, rand);
    // the lower layers' LoRA at its initial values (B = 0): the same forward as the top-only graph
    for (const p of b.params) allFeeds[p.name] = topFeeds[p.name] ?? new ort.Tensor('float32', Float32Array.from(p.init()), p.shape);
    const [ra, rb] = [await (await sessionFor(a.graph)).run(topFeeds), await (await sessionFor(b.graph)).run(allFeeds)];
    assert.ok(Math.abs((ra[TrainIO.loss]!.data as Float32Array)[0]! - (rb[TrainIO.loss]!.data as Float32Array)[0]!) <= 1e-6);
    for (const p of a.params) {
      const ga = ra[TrainIO.grad(p.name)]!.data as Float32Array;
      const gb = rb[TrainIO.grad(p.name)]!.data as Float32Array;
      const scale = Math.max(1e-6, ...Array.from(gb, Math.abs));
      assert.ok(
        ga.every((x, i) => Math.abs(x - gb[i]!) <= 1e-5 * scale),
        p.name,
      );
    }
  });
});

// Every backward rule against central finite differences of its own forward (fp32).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import type { DiffGraph, Value } from '../../server/src/model/graph/diff-graph';
import { add, div, mul, neg, reciprocal, sigmoid, silu, sqrt, sub } from '../../server/src/model/graph/ops-elementwise';
import { crossEntropy, embedding, matmul, meanLastAxis, softmaxLastAxis } from '../../server/src/model/graph/ops-nn';
import { concat, reshape, split, transpose, unsqueeze } from '../../server/src/model/graph/ops-shape';
import { checkGradients, opGraph, sessionFor } from '../helpers/grad-check';
import { randomNormal, seededRandom } from '../helpers/random';

interface Case {
  name: string;
  inputs: { name: string; shape: number[]; positive?: boolean }[];
  build: (dg: DiffGraph, xs: Value[]) => Value;
}

const CASES: Case[] = [
  {
    name: 'Add with broadcasting',
    inputs: [
      { name: 'a', shape: [2, 3, 4] },
      { name: 'b', shape: [4] },
    ],
    build: (dg, [a, b]) => add(dg, a!, b!),
  },
  {
    name: 'Sub with broadcasting',
    inputs: [
      { name: 'a', shape: [2, 1, 4] },
      { name: 'b', shape: [2, 3, 4] },
    ],
    build: (dg, [a, b]) => sub(dg, a!, b!),
  },
  {
    name: 'Mul with broadcasting',
    inputs: [
      { name: 'a', shape: [2, 3, 4] },
      { name: 'b', shape: [2, 3, 1] },
    ],
    build: (dg, [a, b]) => mul(dg, a!, b!),
  },
  {
    name: 'Div',
    inputs: [
      { name: 'a', shape: [3, 4] },
      { name: 'b', shape: [3, 4], positive: true },
    ],
    build: (dg, [a, b]) => div(dg, a!, b!),
  },
  { name: 'Neg, Reciprocal, Sqrt', inputs: [{ name: 'x', shape: [5], positive: true }], build: (dg, [x]) => neg(dg, reciprocal(dg, sqrt(dg, x!))) },
  { name: 'Sigmoid and SiLU', inputs: [{ name: 'x', shape: [2, 5] }], build: (dg, [x]) => add(dg, sigmoid(dg, x!), silu(dg, x!)) },
  {
    name: 'MatMul with a 2-D weight',
    inputs: [
      { name: 'x', shape: [2, 3, 4] },
      { name: 'w', shape: [4, 5] },
    ],
    build: (dg, [x, w]) => matmul(dg, x!, w!),
  },
  {
    name: 'batched MatMul with broadcasting',
    inputs: [
      { name: 'a', shape: [2, 3, 2, 4] },
      { name: 'b', shape: [2, 1, 4, 5] },
    ],
    build: (dg, [a, b]) => matmul(dg, a!, b!),
  },
  { name: 'ReduceMean over the last axis', inputs: [{ name: 'x', shape: [2, 6] }], build: (dg, [x]) => meanLastAxis(dg, mul(dg, x!, x!)) },
  { name: 'Softmax over the last axis', inputs: [{ name: 'x', shape: [3, 7] }], build: (dg, [x]) => softmaxLastAxis(dg, x!) },
  { name: 'Reshape and Transpose', inputs: [{ name: 'x', shape: [2, 3, 4] }], build: (dg, [x]) => transpose(dg, reshape(dg, x!, [0, 0, 2, 2]), [0, 2, 3, 1]) },
  {
    name: 'Split, Concat (rotate_half) and Unsqueeze',
    inputs: [{ name: 'x', shape: [2, 6] }],
    build: (dg, [x]) => {
      const [x1, x2] = split(dg, x!, [3, 3], -1) as [Value, Value];
      return unsqueeze(dg, concat(dg, [neg(dg, x2), x1], -1), [1]);
    },
  },
  { name: 'Split with an unused output', inputs: [{ name: 'x', shape: [2, 6] }], build: (dg, [x]) => split(dg, x!, [2, 4], -1)[1]! },
];

describe('backward rules match central finite differences', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const { graph } = opGraph(c.inputs, c.build);
      const session = await sessionFor(graph);
      const rand = seededRandom(11);
      const feeds: Record<string, ort.Tensor> = {};
      for (const i of c.inputs) {
        const n = i.shape.reduce((a, b) => a * b, 1);
        const data = randomNormal(rand, n, 1).map((v) => (i.positive ? 0.5 + Math.abs(v) : v));
        feeds[i.name] = new ort.Tensor('float32', data, i.shape);
      }
      const r = await checkGradients(
        session,
        feeds,
        c.inputs.map((i) => i.name),
        { loss: 'loss', grad: (p) => `grad.${p}` },
      );
      assert.ok(r.checked > 0);
      assert.ok(r.maxRelError <= 1e-3, `${r.maxRelError}: ${r.worst}`);
    });
  }

  it('embedding Gather scatters gradients back, duplicates added', async () => {
    const { graph } = opGraph([{ name: 'table', shape: [6, 3] }], (dg, [t]) => {
      const ids = dg.value(dg.g.int64([1, 4, 1, 0], [2, 2]), [2, 2], 'int64');
      return embedding(dg, t!, ids);
    });
    const session = await sessionFor(graph);
    const feeds = { table: new ort.Tensor('float32', randomNormal(seededRandom(5), 18, 1), [6, 3]) };
    const r = await checkGradients(session, feeds, ['table'], { loss: 'loss', grad: (p) => `grad.${p}` }, { perParam: 9 });
    assert.ok(r.maxRelError <= 1e-3, `${r.maxRelError}: ${r.worst}`);
    const grad = (await session.run(feeds))['grad.table']!.data as Float32Array;
    assert.deepEqual(Array.from(grad.subarray(6, 9)), [0, 0, 0], 'row 2 is never looked up');
  });

  it('fused softmax cross-entropy, with ignored labels', async () => {
    const { graph } = opGraph([{ name: 'logits', shape: [4, 5] }], (dg, [x]) => {
      const labels = dg.value(dg.g.int64([2, -100, 0, 4], [4]), [4], 'int64');
      const loss = crossEntropy(dg, x!, labels);
      return dg.emit({ op: 'Unsqueeze', inputs: [loss], outShapes: [[1]], rule: ([gr]) => [dg.value(dg.g.op('Squeeze', [gr!.name]), [])], extraInputs: [dg.g.int64([0])] })[0]!;
    });
    const session = await sessionFor(graph);
    const feeds = { logits: new ort.Tensor('float32', randomNormal(seededRandom(9), 20, 1), [4, 5]) };
    const r = await checkGradients(session, feeds, ['logits'], { loss: 'loss', grad: (p) => `grad.${p}` }, { perParam: 10 });
    assert.ok(r.maxRelError <= 1e-3, `${r.maxRelError}: ${r.worst}`);
    const grad = (await session.run(feeds))['grad.logits']!.data as Float32Array;
    assert.ok(
      grad.subarray(5, 10).every((v) => v === 0),
      'an ignored row gets no gradient',
    );
  });
});

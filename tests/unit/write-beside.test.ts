// A graph written beside another shares the other's weights only where the bytes are the same: a
// weight of the same name with other values (or another size) goes into its own data file, and both
// graphs run in ORT with the values they were built with.
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../server/src/model/graph/onnx-graph';
import { writeModelBeside } from '../../server/src/model/graph/write-beside';
import { writeModel } from '../../server/src/model/graph/write-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-write-beside-');
after(() => rmSync(root, { recursive: true, force: true }));

const W = Float32Array.from({ length: 4 * 3 }, (_, i) => i / 7 - 0.5); // [4,3]
const BIAS = Float32Array.of(1, 2, 3);
const OTHER_BIAS = Float32Array.of(-1, 0.5, 4);
const SCALE = Float32Array.of(2, 2, 2, 2); // named like nothing in the first graph

/** y [1,3] = x [1,4] @ w + bias (· scale on x first, when given). */
function graph(bias: Float32Array, scale?: Float32Array): GraphBuilder {
  const g = new GraphBuilder('g');
  const x = g.input('x', 'float32', [1, 4]);
  const scaled = scale ? g.op('Mul', [x, g.weight('scale', 'float32', [4], () => scale)]) : x;
  const y = g.op('Add', [g.op('MatMul', [scaled, g.weight('w', 'float32', [4, 3], () => W)]), g.weight('bias', 'float32', [3], () => bias)]);
  g.output(y, 'y', 'float32', [1, 3]);
  return g;
}

function expected(x: Float32Array, bias: Float32Array, scale?: Float32Array): number[] {
  return [0, 1, 2].map((j) => bias[j]! + [0, 1, 2, 3].reduce((a, i) => a + x[i]! * (scale?.[i] ?? 1) * W[i * 3 + j]!, 0));
}

async function run(path: string, x: Float32Array): Promise<number[]> {
  const session = await ort.InferenceSession.create(path);
  try {
    const out = await session.run({ x: new ort.Tensor('float32', x, [1, 4]) });
    return Array.from(out.y!.data as Float32Array);
  } finally {
    await session.release();
  }
}

const close = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]!) <= 1e-5);

it('shares the equal weight, writes the differing and the new ones, and both graphs compute their own values', async () => {
  const first = writeModel(graph(BIAS), join(root, 'm'), { '': 17 });
  const beside = writeModelBeside(graph(OTHER_BIAS, SCALE), first.dir, 'second', { '': 17 });
  assert.equal(beside.sharedBytes, W.byteLength, 'only w is shared');
  assert.equal(beside.ownBytes, OTHER_BIAS.byteLength + SCALE.byteLength, 'the other bias (same name, other values) and the new weight are its own');
  assert.deepEqual(readdirSync(first.dir).sort(), ['model.onnx', 'model.onnx.data', 'second.onnx', 'second.onnx.data'], 'no temporary file left');
  const x = Float32Array.of(0.3, -1, 2, 0.25);
  const [a, b] = [await run(first.modelPath, x), await run(beside.modelPath, x)];
  assert.ok(close(a, expected(x, BIAS)), `first graph: ${a}`);
  assert.ok(close(b, expected(x, OTHER_BIAS, SCALE)), `second graph: ${b}`);
});

it('a weight of the same name and another size is never read from the first file', async () => {
  const first = writeModel(graph(BIAS), join(root, 'sizes'), { '': 17 });
  const g = new GraphBuilder('g');
  const x = g.input('x', 'float32', [1, 3]);
  g.output(g.op('Add', [x, g.weight('w', 'float32', [3], () => BIAS)]), 'y', 'float32', [1, 3]);
  const beside = writeModelBeside(g, first.dir, 'small', { '': 17 });
  assert.deepEqual([beside.sharedBytes, beside.ownBytes], [0, BIAS.byteLength]);
  const session = await ort.InferenceSession.create(beside.modelPath);
  try {
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1, 1, 1), [1, 3]) });
    assert.deepEqual(Array.from(out.y!.data as Float32Array), [2, 3, 4]);
  } finally {
    await session.release();
  }
});

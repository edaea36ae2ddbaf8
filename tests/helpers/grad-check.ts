// Central finite differences of a graph's own loss output against its backward pass: the
// independent check for every autodiff rule and for whole training graphs.
import * as ort from 'onnxruntime-node';
import { join } from 'node:path';
import { DiffGraph, type Value } from '../../server/src/model/graph/diff-graph';
import { GraphBuilder } from '../../server/src/model/graph/onnx-graph';
import { writeModel } from '../../server/src/model/graph/write-model';
import { tempDir } from './tiny-session';

export type Feeds = Record<string, ort.Tensor>;

export async function sessionFor(graph: GraphBuilder, opsets: Record<string, number> = { '': 23 }): Promise<ort.InferenceSession> {
  const written = writeModel(graph, join(tempDir('kiln-grad-'), 'graph'), opsets);
  return ort.InferenceSession.create(written.modelPath, { intraOpNumThreads: 1, graphOptimizationLevel: 'disabled' });
}

export interface GradCheckResult {
  checked: number;
  maxRelError: number;
  worst: string;
}

/**
 * Perturbs up to `perParam` entries of each float32 feed named in `params` (those with the largest
 * analytic gradients, where fp32 differences are meaningful) and compares
 * (L(x+ε) − L(x−ε)) / 2ε with the analytic gradient.
 */
export async function checkGradients(
  session: ort.InferenceSession,
  feeds: Feeds,
  params: string[],
  names: { loss: string; grad: (p: string) => string },
  options: { eps?: number; perParam?: number; floor?: number } = {},
): Promise<GradCheckResult> {
  const eps = options.eps ?? 3e-3;
  const perParam = options.perParam ?? 3;
  const floor = options.floor ?? 1e-3;
  const out = await session.run(feeds);
  let maxRelError = 0;
  let worst = '';
  let checked = 0;
  const lossAt = async (p: string, i: number, delta: number) => {
    const data = feeds[p]!.data as Float32Array;
    const keep = data[i]!;
    data[i] = keep + delta;
    const r = await session.run(feeds, [names.loss]);
    data[i] = keep;
    return (r[names.loss]!.data as Float32Array)[0]!;
  };
  for (const p of params) {
    const grad = out[names.grad(p)]!.data as Float32Array;
    const order = Array.from(grad.keys()).sort((a, b) => Math.abs(grad[b]!) - Math.abs(grad[a]!));
    for (const i of order.slice(0, perParam)) {
      const numeric = ((await lossAt(p, i, eps)) - (await lossAt(p, i, -eps))) / (2 * eps);
      const analytic = grad[i]!;
      const rel = Math.abs(numeric - analytic) / Math.max(floor, Math.abs(numeric), Math.abs(analytic));
      checked++;
      if (rel > maxRelError) {
        maxRelError = rel;
        worst = `${p}[${i}]: analytic ${analytic}, numeric ${numeric}`;
      }
    }
  }
  return { checked, maxRelError, worst };
}

/**
 * For whole models, where one entry's effect on an fp32 loss drowns in rounding: perturbs each
 * parameter tensor along `directions` unit directions u_i ∝ g_i·r_i (r_i random in [0,1), so the
 * signal is strong yet every component is weighted differently) and compares the central
 * difference of L along u with the analytic directional derivative g·u.
 */
export async function checkDirectionalGradients(
  session: ort.InferenceSession,
  feeds: Feeds,
  params: string[],
  names: { loss: string; grad: (p: string) => string },
  options: { eps?: number; directions?: number; seed?: number } = {},
): Promise<GradCheckResult> {
  const eps = options.eps ?? 1e-3;
  const out = await session.run(feeds);
  let seed = options.seed ?? 17;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return (seed / 2 ** 31) * 2 - 1;
  };
  let maxRelError = 0;
  let worst = '';
  let checked = 0;
  for (const p of params) {
    const data = feeds[p]!.data as Float32Array;
    const grad = out[names.grad(p)]!.data as Float32Array;
    const base = Float32Array.from(data);
    for (let d = 0; d < (options.directions ?? 2); d++) {
      const u = Float32Array.from(grad, (g) => (g * (rand() + 1)) / 2);
      const norm = Math.hypot(...u);
      for (let i = 0; i < u.length; i++) u[i] = u[i]! / norm;
      const lossAlong = async (h: number) => {
        for (let i = 0; i < data.length; i++) data[i] = base[i]! + h * u[i]!;
        const r = await session.run(feeds, [names.loss]);
        return (r[names.loss]!.data as Float32Array)[0]!;
      };
      const analytic = grad.reduce((s, g, i) => s + g * u[i]!, 0);
      // A step that moves the loss by ~2e-3 keeps fp32 rounding (~1e-6) and curvature both small.
      const h = Math.min(20 * eps, Math.max(eps, (2 * eps) / Math.abs(analytic)));
      const numeric = ((await lossAlong(h)) - (await lossAlong(-h))) / (2 * h);
      data.set(base);
      const rel = Math.abs(numeric - analytic) / Math.max(1e-3, Math.abs(numeric), Math.abs(analytic));
      checked++;
      if (rel > maxRelError) {
        maxRelError = rel;
        worst = `${p} along direction ${d}: analytic ${analytic}, numeric ${numeric}`;
      }
    }
  }
  return { checked, maxRelError, worst };
}

/** A one-op (or small) graph: trainable float inputs, loss = Σ f(inputs) · R with fixed random R. */
export function opGraph(
  inputs: { name: string; shape: number[] }[],
  build: (dg: DiffGraph, xs: Value[]) => Value,
  weightsSeed = 3,
): { graph: GraphBuilder; lossWeights: Float32Array } {
  const g = new GraphBuilder('grad_check');
  const dg = new DiffGraph(g, true);
  const xs = inputs.map((i) => dg.trainable(dg.value(g.input(i.name, 'float32', i.shape), i.shape)));
  const y = build(dg, xs);
  const size = y.shape.reduce<number>((a, d) => a * (d as number), 1);
  let s = weightsSeed;
  const lossWeights = Float32Array.from({ length: size }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return (s / 2 ** 31) * 2 - 1;
  });
  const r = dg.value(
    g.weight('R', 'float32', y.shape as number[], () => lossWeights),
    y.shape,
  );
  const prod = dg.emit({ op: 'Mul', inputs: [y, r], outShapes: [y.shape], rule: ([gr]) => [dg.value(g.op('Mul', [gr!.name, 'R']), y.shape), undefined] })[0]!;
  const loss = dg.emit({
    op: 'ReduceSum',
    inputs: [prod],
    attrs: { keepdims: 0 },
    outShapes: [[]],
    rule: ([gr]) => [dg.value(g.op('Expand', [gr!.name, g.op('Shape', [prod.name])]), prod.shape)],
  })[0]!;
  const grads = dg.backward(loss, xs);
  g.output(loss.name, 'loss', 'float32', []);
  for (const x of xs) g.output(grads.get(x.name)!.name, `grad.${x.name}`, 'float32', x.shape);
  return { graph: g, lossWeights };
}

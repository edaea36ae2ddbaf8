// Differentiable network ops: MatMul, embedding Gather, mean/softmax over the last axis, and the
// fused softmax cross-entropy loss. Each forward sits next to its backward rule.
import type { Dim } from './onnx-graph';
import { type DiffGraph, reduceToShape, type Value } from './diff-graph';

function swapLast(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 1], perm[rank - 2]] = [perm[rank - 2]!, perm[rank - 1]!];
  return perm;
}

/**
 * a [..., M, K] @ b [K, N] or batched b [..., K, N] (broadcast).
 * da = g @ bᵀ; db = aᵀ @ g — for a 2-D weight, over all rows of a flattened to [rows, K], by Gemm's
 * transposed operands: a Transpose of a frozen weight would be constant-folded by ORT into a second,
 * transposed copy of it (1.4 GB of the 0.5B shape's projections).
 */
export function matmul(dg: DiffGraph, a: Value, b: Value): Value {
  const { g } = dg;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const batch = (ra >= rb ? a.shape : b.shape).slice(0, -2);
  const shape: Dim[] = [...batch, a.shape[ra - 2]!, b.shape[rb - 1]!];
  return dg.emit({
    op: 'MatMul',
    inputs: [a, b],
    outShapes: [shape],
    rule: ([gy]) => {
      let ga: Value | undefined;
      let gb: Value | undefined;
      if (rb === 2) {
        const [K, N] = b.shape as [number, number];
        const gRows = g.op('Reshape', [gy!.name, g.int64([-1, N])]); // [R,N]
        if (dg.needsGrad(a)) {
          const gaRows = g.op('Gemm', [gRows, b.name], { transB: 1 }); // [R,N] @ [K,N]ᵀ -> [R,K]
          ga = dg.value(g.op('Reshape', [gaRows, g.op('Shape', [a.name])]), a.shape); // [..., M, K]
        }
        if (dg.needsGrad(b)) {
          const rows = g.op('Reshape', [a.name, g.int64([-1, K])]); // [R,K]
          gb = dg.value(g.op('Gemm', [rows, gRows], { transA: 1 }), b.shape); // [R,K]ᵀ @ [R,N] -> [K,N]
        }
      } else {
        if (dg.needsGrad(a)) {
          const full = g.op('MatMul', [gy!.name, g.op('Transpose', [b.name], { perm: swapLast(rb) })]);
          ga = reduceToShape(dg, dg.value(full, [...batch, a.shape[ra - 2]!, a.shape[ra - 1]!]), a.shape);
        }
        if (dg.needsGrad(b)) {
          const full = g.op('MatMul', [g.op('Transpose', [a.name], { perm: swapLast(ra) }), gy!.name]);
          gb = reduceToShape(dg, dg.value(full, [...batch, b.shape[rb - 2]!, b.shape[rb - 1]!]), b.shape);
        }
      }
      return [ga, gb];
    },
  })[0]!;
}

/** Embedding lookup table [V,d] by ids [...]; the gradient scatters rows back with reduction=add. */
export function embedding(dg: DiffGraph, table: Value, ids: Value): Value {
  const { g } = dg;
  const shape = [...ids.shape, table.shape[1]!];
  return dg.emit({
    op: 'Gather',
    inputs: [table, ids],
    attrs: { axis: 0 },
    outShapes: [shape],
    rule: ([gy]) => {
      const zeros = g.op('ConstantOfShape', [g.op('Shape', [table.name])]); // float zeros [V,d]
      const indices = g.op('Unsqueeze', [ids.name, g.int64([-1])]); // [..., 1]
      return [dg.value(g.op('ScatterND', [zeros, indices, gy!.name], { reduction: 'add' }), table.shape), undefined];
    },
  })[0]!;
}

/** Mean over the last axis, keeping it. The gradient spreads g/n over that axis. */
export function meanLastAxis(dg: DiffGraph, x: Value): Value {
  const { g } = dg;
  const n = x.shape[x.shape.length - 1];
  if (typeof n !== 'number') throw new Error('meanLastAxis needs a static last dimension');
  const shape = [...x.shape.slice(0, -1), 1];
  return dg.emit({
    op: 'ReduceMean',
    inputs: [x],
    attrs: { keepdims: 1 },
    outShapes: [shape],
    rule: ([gy]) => [dg.value(g.op('Mul', [g.op('Expand', [gy!.name, g.op('Shape', [x.name])]), g.float32([1 / n], [])]), x.shape)],
    extraInputs: [g.int64([-1])],
  })[0]!;
}

/** Softmax over the last axis. dx = y·(g − Σ g·y). */
export function softmaxLastAxis(dg: DiffGraph, x: Value): Value {
  const { g } = dg;
  const [y] = dg.emit({
    op: 'Softmax',
    inputs: [x],
    attrs: { axis: -1 },
    outShapes: [x.shape],
    rule: ([gy]) => {
      const dot = g.op('ReduceSum', [g.op('Mul', [gy!.name, y!.name]), g.int64([-1])], { keepdims: 1 });
      return [dg.value(g.op('Mul', [y!.name, g.op('Sub', [gy!.name, dot])]), x.shape)];
    },
  });
  return y!;
}

export const IGNORE_INDEX = -100;

/**
 * Mean cross-entropy of logits [N,V] against labels [N] (IGNORE_INDEX skipped), fused:
 *   loss = Σ valid·(logsumexp(logits) − logits[label]) / count
 *   d/dlogits = (exp(logits − lse) − onehot(label)) · valid / count
 * The log-sum-exp [N,1] is shared by both passes; the one-hot is a scatter of −1 into the softmax.
 */
export function crossEntropy(dg: DiffGraph, logits: Value, labels: Value): Value {
  const { g } = dg;
  const valid = g.op('Not', [g.op('Equal', [labels.name, g.int64([IGNORE_INDEX], [])])]); // bool [N]
  const safe = g.op('Unsqueeze', [g.op('Where', [valid, labels.name, g.int64([0], [])]), g.int64([1])]); // int64 [N,1]
  const validF = g.op('Unsqueeze', [g.op('Cast', [valid], { to: 1 }), g.int64([1])]); // [N,1]
  const count = g.op('Max', [g.op('ReduceSum', [validF], { keepdims: 0 }), g.float32([1], [])]);
  const lse = g.op('ReduceLogSumExp', [logits.name, g.int64([-1])], { keepdims: 1 }); // [N,1]
  const picked = g.op('GatherElements', [logits.name, safe], { axis: 1 }); // [N,1]
  const perToken = g.op('Mul', [g.op('Sub', [lse, picked]), validF]);
  const loss = dg.value(g.op('Div', [g.op('ReduceSum', [perToken], { keepdims: 0 }), count]), []);
  dg.record([logits], [loss], ([gl]) => {
    const probs = g.op('Exp', [g.op('Sub', [logits.name, lse])]); // [N,V]
    const minusOne = g.op('Expand', [g.float32([-1], [1, 1]), g.op('Shape', [safe])]); // [N,1]
    const shifted = g.op('ScatterElements', [probs, safe, minusOne], { axis: 1, reduction: 'add' }); // softmax − onehot
    const scale = g.op('Mul', [validF, g.op('Div', [gl!.name, count])]); // [N,1]
    return [dg.value(g.op('Mul', [shifted, scale]), logits.shape)];
  });
  return loss;
}

// The LM head and the cross-entropy together, over the positions that carry loss only, a chunk of
// them at a time: with a 151,936-token vocabulary, logits for every position of a 512-token batch
// are 311 MB, and their gradient as much again. Each chunk's gradient with respect to its logits
// (softmax − one-hot) is formed in the forward pass, right where its logits are, and immediately
// contracted with the head, so what outlives a chunk is [rows, d], never [rows, V]. Nothing is
// recomputed; the backward rule only scales what the chunks left.
//
//  hidden [B,S,d] ─ rows that carry loss [M,d] ─┬─ chunk 0 ─ Gemm(headᵀ) ─ logits [c,V] ─┬─ lse − logit[label] ─┐
//  labels [B,S] ─── their labels [M] ───────────┤                                        └─ (softmax − onehot)·head ─ dh₀ [c,d]
//                                               └─ chunk 1 …                                                         │
//  loss = Σ chunks / M                                    d hidden = scatter(concat(dh₀, dh₁, …)) · dL / M ──────────┘
import type { DiffGraph, Value } from './diff-graph';
import { IGNORE_INDEX } from './ops-nn';

/** A chunk's logits are about as wide in bytes as a 32,768-token vocabulary's (5 chunks for Qwen2.5's 151,936). */
const CHUNK_VOCAB = 32_768;

/** How many chunks the loss positions are split into for a vocabulary of `vocab` tokens. */
export function lossChunkCount(vocab: number): number {
  return Math.max(1, Math.ceil(vocab / CHUNK_VOCAB));
}

export interface LmHeadLossInputs {
  hidden: Value; // [B,S,d], after the final norm
  head: Value; // [V,d]: the LM head, or the tied embedding table
  labels: Value; // int64 [B,S], IGNORE_INDEX where no loss
  /** Chunks of loss positions (static count; their size follows the batch). */
  chunks: number;
}

/** Mean next-token cross-entropy of hidden·headᵀ against labels, in chunks of loss positions. */
export function chunkedLmHeadLoss(dg: DiffGraph, { hidden, head, labels, chunks }: LmHeadLossInputs): Value {
  const { g } = dg;
  const d = head.shape[1] as number;
  const wantHidden = dg.recording && dg.needsGrad(hidden);
  const wantHead = dg.recording && dg.needsGrad(head);
  const rows = g.op('Reshape', [hidden.name, g.int64([-1, d])]); // [N,d]
  const flatLabels = g.op('Reshape', [labels.name, g.int64([-1])]); // [N]
  const valid = g.op('Not', [g.op('Equal', [flatLabels, g.int64([IGNORE_INDEX], [])])]); // bool [N]
  const where = g.op('Squeeze', [g.op('NonZero', [valid]), g.int64([0])]); // int64 [M]: positions that carry loss
  const lossRows = g.op('Gather', [rows, where], { axis: 0 }); // [M,d]
  const lossLabels = g.op('Gather', [flatLabels, where], { axis: 0 }); // [M]
  const m = g.op('Shape', [where]); // int64 [1]
  const count = g.op('Max', [g.op('Cast', [g.op('Squeeze', [m, g.int64([0])])], { to: 1 }), g.float32([1], [])]); // []
  const size = g.op('Div', [g.op('Add', [m, g.int64([chunks - 1])]), g.int64([chunks])]); // [1], ⌈M / chunks⌉
  const sums: string[] = [];
  const dRows: string[] = [];
  let dHeadSum: string | undefined;
  for (let i = 0; i < chunks; i++) {
    g.scope(`chunk_${i}`, () => {
      const start = g.op('Mul', [size, g.int64([i])]);
      const end = g.op('Mul', [size, g.int64([i + 1])]);
      const h = g.op('Slice', [lossRows, start, end, g.int64([0])]); // [c,d]
      const y = g.op('Unsqueeze', [g.op('Slice', [lossLabels, start, end, g.int64([0])]), g.int64([1])]); // [c,1]
      const logits = g.op('Gemm', [h, head.name], { transB: 1 }); // [c,V]
      const lse = g.op('ReduceLogSumExp', [logits, g.int64([-1])], { keepdims: 1 }); // [c,1]
      const target = g.op('GatherElements', [logits, y], { axis: 1 }); // [c,1]
      sums.push(g.op('ReduceSum', [g.op('Sub', [lse, target])], { keepdims: 0 })); // []
      if (!wantHidden && !wantHead) return;
      const minusOne = g.op('Expand', [g.float32([-1], [1, 1]), g.op('Shape', [y])]); // [c,1]
      const shifted = g.op('ScatterElements', [g.op('Exp', [g.op('Sub', [logits, lse])]), y, minusOne], { axis: 1, reduction: 'add' }); // softmax − onehot [c,V]
      if (wantHidden) dRows.push(g.op('MatMul', [shifted, head.name])); // [c,d]
      if (wantHead) {
        const dHead = g.op('Gemm', [shifted, h], { transA: 1 }); // [V,d]
        dHeadSum = dHeadSum ? g.op('Add', [dHeadSum, dHead]) : dHead;
      }
    });
  }
  const loss = dg.value(g.op('Div', [sums.length === 1 ? sums[0]! : g.op('Sum', sums), count]), []);
  dg.record([hidden, head], [loss], ([gl]) => {
    const scale = g.op('Div', [gl!.name, count]); // []
    let dHidden: Value | undefined;
    if (wantHidden) {
      const dLossRows = g.op('Mul', [dRows.length === 1 ? dRows[0]! : g.op('Concat', dRows, { axis: 0 }), scale]); // [M,d]
      const zeros = g.op('ConstantOfShape', [g.op('Shape', [rows])]); // [N,d]
      const scattered = g.op('ScatterND', [zeros, g.op('Unsqueeze', [where, g.int64([1])]), dLossRows]); // [N,d]
      dHidden = dg.value(g.op('Reshape', [scattered, g.op('Shape', [hidden.name])]), hidden.shape);
    }
    const dHead = wantHead ? dg.value(g.op('Mul', [dHeadSum!, scale]), head.shape) : undefined;
    return [dHidden, dHead];
  });
  return loss;
}

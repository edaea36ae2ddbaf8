// AdamW (PyTorch semantics) with global-norm gradient clipping, inside the graph: onnxruntime-node
// has no AdamWOptimizer kernel, so the update is written with ordinary ops.
import type { GraphBuilder } from './onnx-graph';

export interface AdamWHyper {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Global gradient-norm bound (torch.nn.utils.clip_grad_norm_); 0 disables clipping. */
  maxGradNorm: number;
}

export const DEFAULT_ADAMW: AdamWHyper = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1.0 };

export interface AdamWSlot {
  param: string; // [shape]
  grad: string;
  m: string;
  v: string;
  /** Decoupled weight decay applies to matrices, not to norms and biases. */
  decay: boolean;
}

/** What one AdamW update reads: the slots, the graph names of the `lr` and `step` scalars, and the hyper-parameters. */
export interface AdamWInputs {
  slots: AdamWSlot[];
  lr: string;
  step: string;
  hyper: AdamWHyper;
}

/**
 *  grads ─ global norm ─ clip ─┬─ m' = β1·m + (1−β1)·g
 *                              ├─ v' = β2·v + (1−β2)·g²
 *                              └─ p' = p·(1 − lr·wd) − lr·(m'/bc1) / (√(v'/bc2) + ε)
 * `lr` and `step` (1-based, for bias correction) are float32 scalars. Returns per slot the new
 * param, m, v names, and the pre-clip global gradient norm.
 */
export function makeAdamW(g: GraphBuilder, { slots, lr, step, hyper: h }: AdamWInputs): { updated: { param: string; m: string; v: string }[]; gradNorm: string } {
  return g.scope('adamw', () => {
    const f = (x: number) => g.float32([x], []);
    const squares = slots.map((s) => g.op('ReduceSum', [g.op('Mul', [s.grad, s.grad])], { keepdims: 0 }));
    const total = squares.length === 1 ? squares[0]! : g.op('Sum', squares);
    const gradNorm = g.op('Sqrt', [total]);
    // clip_coef = max_norm / (norm + 1e-6), clamped to at most 1
    const clip = h.maxGradNorm > 0 ? g.op('Min', [f(1), g.op('Div', [f(h.maxGradNorm), g.op('Add', [gradNorm, f(1e-6)])])]) : f(1);
    const bc1 = g.op('Sub', [f(1), g.op('Pow', [f(h.beta1), step])]);
    const bc2 = g.op('Sub', [f(1), g.op('Pow', [f(h.beta2), step])]);
    const updated = slots.map((s) => {
      const grad = g.op('Mul', [s.grad, clip]);
      const m = g.op('Add', [g.op('Mul', [s.m, f(h.beta1)]), g.op('Mul', [grad, f(1 - h.beta1)])]);
      const v = g.op('Add', [g.op('Mul', [s.v, f(h.beta2)]), g.op('Mul', [g.op('Mul', [grad, grad]), f(1 - h.beta2)])]);
      const denom = g.op('Add', [g.op('Sqrt', [g.op('Div', [v, bc2])]), f(h.eps)]);
      const stepDir = g.op('Div', [g.op('Div', [m, bc1]), denom]);
      const decayed = s.decay && h.weightDecay > 0 ? g.op('Mul', [s.param, g.op('Sub', [f(1), g.op('Mul', [lr, f(h.weightDecay)])])]) : s.param;
      const param = g.op('Sub', [decayed, g.op('Mul', [lr, stepDir])]);
      return { param, m, v };
    });
    return { updated, gradNorm };
  });
}

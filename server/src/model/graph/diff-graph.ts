// Reverse-mode differentiation over the graph builder. onnxruntime-node ships no training kernels
// and no ONNX autodiff exists for JS, so Kiln writes its own: every differentiable op (ops-*.ts)
// emits its forward nodes and, when recording, pushes a rule that emits its backward nodes. The
// same model code then yields the inference graph (recording off) and the training graph.
import type { onnx } from 'onnx-proto';
import type { Dim, ElemType, GraphBuilder } from './onnx-graph';

/** A graph value with its static shape (symbols such as 'batch' stand for dynamic sizes). */
export interface Value {
  name: string;
  shape: Dim[];
  elem: ElemType;
}

type Rule = (outputGrads: (Value | undefined)[]) => (Value | undefined)[];

/** One forward node for DiffGraph.emit. */
export interface EmitNode {
  op: string;
  /** The differentiable inputs, in the op's input order. */
  inputs: Value[];
  attrs?: Parameters<GraphBuilder['node']>[2];
  /** One static shape per output. */
  outShapes: Dim[][];
  /**
   * Receives the gradients of the outputs (undefined where none flows) and returns the gradients
   * of `inputs` (undefined where an input needs none); required when a trainable value flows in.
   */
  rule?: Rule;
  /** Inputs after `inputs` that carry no gradient (shapes, axes, sizes as int64 constants). */
  extraInputs?: string[];
  domain?: string;
  /** Output element types; default: the first input's. */
  outElems?: ElemType[];
}

interface TapeEntry {
  inputs: Value[];
  outputs: Value[];
  rule: Rule;
}

/**
 * A stretch of the forward (one decoder layer) whose values the backward recomputes instead of
 * keeping: its tape entries, the nodes it added (by output name) and the activations it reads from
 * before it, which are kept.
 */
interface RecomputedSegment {
  tapeStart: number;
  tapeEnd: number;
  producers: Map<string, onnx.INodeProto>;
  kept: ReadonlySet<string>;
}

/** The segment the backward is in: its renaming, and the first gradient that reached it. */
interface OpenSegment {
  of: RecomputedSegment;
  rename: (name: string) => string;
  gradient?: Value;
}

export class DiffGraph {
  private readonly tape: TapeEntry[] = [];
  /** Names of values that depend on a trainable parameter. */
  private readonly tracked = new Set<string>();
  private readonly segments: RecomputedSegment[] = [];

  constructor(
    readonly g: GraphBuilder,
    readonly recording: boolean,
  ) {}

  /** Marks `v` as a parameter gradients are wanted for. */
  trainable(v: Value): Value {
    if (this.recording) this.tracked.add(v.name);
    return v;
  }

  needsGrad(v: Value): boolean {
    return this.tracked.has(v.name);
  }

  value(name: string, shape: Dim[], elem: ElemType = 'float32'): Value {
    return { name, shape, elem };
  }

  /** A float32 constant (deduplicated by the builder). */
  scalar(x: number): Value {
    return this.value(this.g.float32([x], []), []);
  }

  /**
   * Emits one forward node and, when any input needs a gradient, records its rule.
   */
  emit({ op, inputs, attrs = {}, outShapes, rule, extraInputs = [], domain, outElems }: EmitNode): Value[] {
    const names = this.g.node(op, [...inputs.map((v) => v.name), ...extraInputs], attrs, { outputs: outShapes.length, domain });
    const outputs = names.map((name, i) => this.value(name, outShapes[i]!, outElems?.[i] ?? inputs[0]?.elem ?? 'float32'));
    if (this.recording && inputs.some((v) => this.needsGrad(v))) {
      if (!rule) throw new Error(`${op} has no backward rule but a trainable value flows through it`);
      for (const o of outputs) this.tracked.add(o.name);
      this.tape.push({ inputs, outputs, rule });
    }
    return outputs;
  }

  /**
   * Runs `fn`, a stretch of the forward reading the activations `kept` from before it, as a
   * recomputed segment: the backward emits a copy of the nodes its rules need, fed from `kept`, and
   * reads the copies, so none of the segment's own activations outlive the forward. Costs one more
   * forward of the segment; saves all but its inputs (per-layer recomputation, "gradient
   * checkpointing"). Without recording, just `fn()`.
   */
  recomputed<T>(kept: readonly (Value | undefined)[], fn: () => T): T {
    if (!this.recording) return fn();
    const tapeStart = this.tape.length;
    const mark = this.g.nodeCount;
    const out = fn();
    const names = new Set(kept.flatMap((v) => (v === undefined ? [] : [v.name])));
    this.segments.push({ tapeStart, tapeEnd: this.tape.length, producers: this.g.producersSince(mark), kept: names });
    return out;
  }

  /**
   * The renaming a segment's rules run under: a name the segment made becomes its recomputed copy
   * (made on first use, its own inputs first). The kept inputs the copies read pass through an
   * exact no-op that depends on `gradient` (an Add of the sum of an empty slice of it): ORT cannot
   * run the copies before the backward reaches the segment, nor merge them with the originals as
   * common subexpressions.
   */
  private recomputation(segment: RecomputedSegment, gradient: () => Value): (name: string) => string {
    const copies = new Map<string, string>();
    const gated = new Map<string, string>();
    const { g } = this;
    let zero: string | undefined;
    const gate = (name: string): string => {
      let out = gated.get(name);
      if (out === undefined) {
        // emitted as named: the renaming is for the rules' inputs
        out = g.withInputNames(
          (n) => n,
          () => {
            if (zero === undefined) {
              const flat = g.op('Reshape', [gradient().name, g.int64([-1])]);
              zero = g.op('ReduceSum', [g.op('Slice', [flat, g.int64([0]), g.int64([0])])], { keepdims: 0 });
            }
            return g.op('Add', [name, zero]);
          },
        );
        gated.set(name, out);
      }
      return out;
    };
    const resolve = (name: string): string => {
      const copied = copies.get(name);
      if (copied !== undefined) return copied;
      if (segment.kept.has(name)) return gate(name);
      const node = segment.producers.get(name);
      if (node === undefined) return name;
      const outs = g.copyNode(node, (node.input ?? []).map(resolve));
      for (const [i, o] of (node.output ?? []).entries()) copies.set(o, outs[i]!);
      return copies.get(name)!;
    };
    return resolve;
  }

  /**
   * Records a rule for a forward already emitted as raw nodes (a fused op such as softmax
   * cross-entropy, whose hand-written backward beats differentiating its parts).
   */
  record(inputs: Value[], outputs: Value[], rule: Rule): void {
    if (!this.recording || !inputs.some((v) => this.needsGrad(v))) return;
    for (const o of outputs) this.tracked.add(o.name);
    this.tape.push({ inputs, outputs, rule });
  }

  /**
   * Gradients of scalar `loss` with respect to `wrt`, as graph values. A parameter the loss does
   * not depend on gets an explicit zero gradient so optimizers can treat every parameter alike.
   */
  backward(loss: Value, wrt: Value[]): Map<string, Value> {
    if (!this.recording) throw new Error('backward needs a recording DiffGraph');
    const grads = new Map<string, Value>();
    grads.set(loss.name, this.value(this.g.float32([1], loss.shape.map(() => 1) as number[]), loss.shape));
    this.g.scope('backward', () => {
      let segment: OpenSegment | undefined;
      for (let i = this.tape.length - 1; i >= 0; i--) {
        const entry = this.tape[i]!;
        const outGrads = entry.outputs.map((o) => grads.get(o.name));
        if (outGrads.every((gr) => gr === undefined)) continue;
        if (segment !== undefined && !(segment.of.tapeStart <= i && i < segment.of.tapeEnd)) segment = undefined;
        if (segment === undefined) {
          const of = this.segments.find((s) => s.tapeStart <= i && i < s.tapeEnd);
          if (of !== undefined) {
            const opened: OpenSegment = { of, rename: (name) => name };
            // the first gradient that reaches the segment: its copies wait for it
            opened.rename = this.recomputation(of, () => opened.gradient!);
            segment = opened;
          }
        }
        if (segment !== undefined) segment.gradient ??= outGrads.find((gr) => gr !== undefined);
        const rule = entry.rule;
        const inGrads = segment === undefined ? rule(outGrads) : this.g.withInputNames(segment.rename, () => rule(outGrads));
        entry.inputs.forEach((input, k) => {
          const gIn = inGrads[k];
          if (!gIn || !this.needsGrad(input)) return;
          const prev = grads.get(input.name);
          grads.set(input.name, prev ? this.value(this.g.op('Add', [prev.name, gIn.name]), input.shape) : gIn);
        });
      }
    });
    const out = new Map<string, Value>();
    for (const p of wrt) out.set(p.name, grads.get(p.name) ?? this.value(this.g.op('Mul', [p.name, this.g.float32([0], [])]), p.shape));
    return out;
  }
}

/** Shape of an elementwise op's output under numpy broadcasting. */
export function broadcastShape(a: Dim[], b: Dim[]): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/**
 * Sums a gradient of shape `from` down to `to` (the input's shape before broadcasting):
 * leading extra axes and axes where the input had size 1 are reduced.
 */
export function reduceToShape(dg: DiffGraph, grad: Value, to: Dim[]): Value {
  const from = grad.shape;
  const lead = from.length - to.length;
  const axes: number[] = [];
  for (let i = 0; i < from.length; i++) {
    if (i < lead) axes.push(i);
    else if (to[i - lead] === 1 && from[i] !== 1) axes.push(i);
  }
  if (axes.length === 0) return grad;
  const { g } = dg;
  let reduced = g.op('ReduceSum', [grad.name, g.int64(axes)], { keepdims: 1 });
  if (lead > 0) reduced = g.op('Squeeze', [reduced, g.int64(axes.filter((a) => a < lead))]);
  return dg.value(reduced, to, grad.elem);
}

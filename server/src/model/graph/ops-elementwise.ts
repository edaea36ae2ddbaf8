// Differentiable elementwise ops: each forward sits next to its backward rule.
import type { Dim } from './onnx-graph';
import { broadcastShape, type DiffGraph, reduceToShape, type Value } from './diff-graph';

const v = (dg: DiffGraph, name: string, shape: Dim[]) => dg.value(name, shape);

/** a + b (broadcast). d/da = g summed to a's shape; same for b. */
export function add(dg: DiffGraph, a: Value, b: Value): Value {
  return dg.emit({ op: 'Add', inputs: [a, b], outShapes: [broadcastShape(a.shape, b.shape)], rule: ([g]) => [reduceToShape(dg, g!, a.shape), reduceToShape(dg, g!, b.shape)] })[0]!;
}

/** a − b (broadcast). */
export function sub(dg: DiffGraph, a: Value, b: Value): Value {
  return dg.emit({
    op: 'Sub',
    inputs: [a, b],
    outShapes: [broadcastShape(a.shape, b.shape)],
    rule: ([g]) => [reduceToShape(dg, g!, a.shape), reduceToShape(dg, v(dg, dg.g.op('Neg', [g!.name]), g!.shape), b.shape)],
  })[0]!;
}

/** a · b (broadcast). d/da = g·b, d/db = g·a. */
export function mul(dg: DiffGraph, a: Value, b: Value): Value {
  const shape = broadcastShape(a.shape, b.shape);
  return dg.emit({
    op: 'Mul',
    inputs: [a, b],
    outShapes: [shape],
    rule: ([g]) => [
      dg.needsGrad(a) ? reduceToShape(dg, v(dg, dg.g.op('Mul', [g!.name, b.name]), shape), a.shape) : undefined,
      dg.needsGrad(b) ? reduceToShape(dg, v(dg, dg.g.op('Mul', [g!.name, a.name]), shape), b.shape) : undefined,
    ],
  })[0]!;
}

/** a / b (broadcast). d/da = g/b, d/db = −g·y/b. */
export function div(dg: DiffGraph, a: Value, b: Value): Value {
  const shape = broadcastShape(a.shape, b.shape);
  const [y] = dg.emit({
    op: 'Div',
    inputs: [a, b],
    outShapes: [shape],
    rule: ([g]) => [
      dg.needsGrad(a) ? reduceToShape(dg, v(dg, dg.g.op('Div', [g!.name, b.name]), shape), a.shape) : undefined,
      dg.needsGrad(b) ? reduceToShape(dg, v(dg, dg.g.op('Neg', [dg.g.op('Div', [dg.g.op('Mul', [g!.name, y!.name]), b.name])]), shape), b.shape) : undefined,
    ],
  });
  return y!;
}

/** −x. */
export function neg(dg: DiffGraph, x: Value): Value {
  return dg.emit({ op: 'Neg', inputs: [x], outShapes: [x.shape], rule: ([g]) => [v(dg, dg.g.op('Neg', [g!.name]), x.shape)] })[0]!;
}

/** 1/x. d/dx = −g·y². */
export function reciprocal(dg: DiffGraph, x: Value): Value {
  const [y] = dg.emit({
    op: 'Reciprocal',
    inputs: [x],
    outShapes: [x.shape],
    rule: ([g]) => [v(dg, dg.g.op('Neg', [dg.g.op('Mul', [g!.name, dg.g.op('Mul', [y!.name, y!.name])])]), x.shape)],
  });
  return y!;
}

/** √x. d/dx = g·0.5/y. */
export function sqrt(dg: DiffGraph, x: Value): Value {
  const [y] = dg.emit({
    op: 'Sqrt',
    inputs: [x],
    outShapes: [x.shape],
    rule: ([g]) => [v(dg, dg.g.op('Div', [dg.g.op('Mul', [g!.name, dg.g.float32([0.5], [])]), y!.name]), x.shape)],
  });
  return y!;
}

/** σ(x). d/dx = g·y·(1−y). */
export function sigmoid(dg: DiffGraph, x: Value): Value {
  const [y] = dg.emit({
    op: 'Sigmoid',
    inputs: [x],
    outShapes: [x.shape],
    rule: ([g]) => {
      const oneMinus = dg.g.op('Sub', [dg.g.float32([1], []), y!.name]);
      return [v(dg, dg.g.op('Mul', [g!.name, dg.g.op('Mul', [y!.name, oneMinus])]), x.shape)];
    },
  });
  return y!;
}

/** SiLU x·σ(x), composed so its gradient comes from the rules above. */
export function silu(dg: DiffGraph, x: Value): Value {
  return mul(dg, x, sigmoid(dg, x));
}

/** Casts to another element type; the gradient is cast back. */
export function cast(dg: DiffGraph, x: Value, to: 'float32' | 'float16'): Value {
  const code = to === 'float16' ? 10 : 1;
  const back = x.elem === 'float16' ? 10 : 1;
  return dg.emit({
    op: 'Cast',
    inputs: [x],
    attrs: { to: code },
    outShapes: [x.shape],
    rule: ([g]) => [v(dg, dg.g.op('Cast', [g!.name], { to: back }), x.shape)],
    outElems: [to],
  })[0]!;
}

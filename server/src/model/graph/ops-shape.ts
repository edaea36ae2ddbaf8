// Differentiable shape ops: reshape, transpose, concat, split, unsqueeze.
import type { Dim } from './onnx-graph';
import type { DiffGraph, Value } from './diff-graph';

function product(dims: Dim[]): Dim {
  if (dims.every((d) => typeof d === 'number')) return (dims as number[]).reduce((a, b) => a * b, 1);
  return dims.join('*');
}

/** Static output shape of Reshape with ONNX's 0 (copy) and −1 (infer) conventions. */
export function reshapedShape(input: Dim[], target: number[]): Dim[] {
  const out: Dim[] = target.map((t, i) => (t === 0 ? input[i]! : t));
  const inferred = out.indexOf(-1);
  if (inferred >= 0) {
    const known = out.filter((_, i) => i !== inferred);
    const total = product(input);
    const knownProduct = product(known);
    out[inferred] = typeof total === 'number' && typeof knownProduct === 'number' ? total / knownProduct : `(${String(total)})/(${String(knownProduct)})`;
  }
  return out;
}

/** Reshape to static `target` (0 copies a dim, −1 infers one). The gradient takes x's shape back. */
export function reshape(dg: DiffGraph, x: Value, target: number[]): Value {
  return dg.emit({
    op: 'Reshape',
    inputs: [x],
    outShapes: [reshapedShape(x.shape, target)],
    rule: ([g]) => [dg.value(dg.g.op('Reshape', [g!.name, dg.g.op('Shape', [x.name])]), x.shape)],
    extraInputs: [dg.g.int64(target)],
  })[0]!;
}

/** Transpose by `perm`; the gradient is transposed by the inverse permutation. */
export function transpose(dg: DiffGraph, x: Value, perm: number[]): Value {
  const inverse = perm.map((_, i) => perm.indexOf(i));
  return dg.emit({
    op: 'Transpose',
    inputs: [x],
    attrs: { perm },
    outShapes: [perm.map((p) => x.shape[p]!)],
    rule: ([g]) => [dg.value(dg.g.op('Transpose', [g!.name], { perm: inverse }), x.shape)],
  })[0]!;
}

/** Inserts size-1 axes; the gradient is reshaped back. */
export function unsqueeze(dg: DiffGraph, x: Value, axes: number[]): Value {
  const shape = [...x.shape];
  for (const a of [...axes].sort((p, q) => p - q)) shape.splice(a < 0 ? shape.length + a + 1 : a, 0, 1);
  return dg.emit({
    op: 'Unsqueeze',
    inputs: [x],
    outShapes: [shape],
    rule: ([g]) => [dg.value(dg.g.op('Reshape', [g!.name, dg.g.op('Shape', [x.name])]), x.shape)],
    extraInputs: [dg.g.int64(axes)],
  })[0]!;
}

function axisOf(rank: number, axis: number): number {
  return axis < 0 ? rank + axis : axis;
}

/** Concatenation along `axis`, whose sizes must be static; the gradient is split back. */
export function concat(dg: DiffGraph, parts: Value[], axis: number): Value {
  const ax = axisOf(parts[0]!.shape.length, axis);
  const sizes = parts.map((p) => p.shape[ax]!);
  if (!sizes.every((s) => typeof s === 'number')) throw new Error('concat: differentiable concat needs static sizes on the axis');
  const shape = [...parts[0]!.shape];
  shape[ax] = (sizes as number[]).reduce((a, b) => a + b, 0);
  return dg.emit({
    op: 'Concat',
    inputs: parts,
    attrs: { axis },
    outShapes: [shape],
    rule: ([g]) => dg.g.node('Split', [g!.name, dg.g.int64(sizes as number[])], { axis }, { outputs: parts.length }).map((name, i) => dg.value(name, parts[i]!.shape)),
  })[0]!;
}

/** Split along `axis` into static `sizes`; missing output gradients count as zeros. */
export function split(dg: DiffGraph, x: Value, sizes: number[], axis: number): Value[] {
  const ax = axisOf(x.shape.length, axis);
  const shapes = sizes.map((s) => x.shape.map((d, i) => (i === ax ? s : d)));
  const outs: Value[] = dg.emit({
    op: 'Split',
    inputs: [x],
    attrs: { axis },
    outShapes: shapes,
    rule: (grads) => {
      const filled = grads.map((gr, i) => gr?.name ?? dg.g.op('Mul', [outs[i]!.name, dg.g.float32([0], [])]));
      return [dg.value(dg.g.op('Concat', filled, { axis }), x.shape)];
    },
    extraInputs: [dg.g.int64(sizes)],
  });
  return outs;
}

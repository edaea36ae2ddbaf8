// x · Wᵀ with W block-quantized, as one com.microsoft MatMulNBits node. MatMulNBits takes W in the
// HF [out, in] layout. The weights are frozen initializers; in a training graph (QLoRA) the gradient
// flows to x through the same codes, dequantized in the graph one weight at a time: dx = dy · W.
import { type QuantBits, QUANT_BLOCK_SIZE, quantizeBlockwise, type BlockQuantized } from '../quantize';
import type { DiffGraph, Value } from './diff-graph';

/**
 * MatMulNBits' accuracy_level: 0 computes in float32 on the dequantized weights (exact); 4 quantizes
 * the activations to int8 per block for integer dot products. Measured on ORT 1.30's CPU kernels
 * (d512/8 layers, 2 threads): int4 decodes as fast at 0 as at 4, so it stays exact; int8 has no
 * fast path at 0 (≈8× slower than at 4), so it takes the int8 activations.
 */
export function accuracyLevel(bits: QuantBits): number {
  return bits === 4 ? 0 : 4;
}

/** A weight [N, K] stored as MatMulNBits codes: its node name, bits, sizes and its float32 rows. */
export interface QuantizedWeight {
  graphName: string;
  bits: QuantBits;
  n: number;
  k: number;
  rows: () => Float32Array;
  /** MatMulNBits' accuracy_level (default accuracyLevel(bits)); 0 computes exactly on the dequantized weights. */
  accuracyLevel?: number;
}

/**
 *   x [.., K] ─ MatMulNBits(codes [N, K/32, 32·bits/8], scales [N·K/32], zero points) ─> [.., N]
 * `rows` produces the float32 weight [N, K]; it is quantized once, when the model is written.
 */
export function quantizedMatMul(dg: DiffGraph, x: Value, { graphName, bits, n, k, rows, accuracyLevel: level = accuracyLevel(bits) }: QuantizedWeight): Value {
  const { g } = dg;
  const blocks = Math.ceil(k / QUANT_BLOCK_SIZE);
  let quantized: BlockQuantized | undefined;
  const q = () => (quantized ??= quantizeBlockwise(rows(), { n, k, bits }));
  const codes = g.weight(`${graphName}.qweight`, 'uint8', [n, blocks, (QUANT_BLOCK_SIZE * bits) / 8], () => q().data);
  const scales = g.weight(`${graphName}.scales`, 'float32', [n * blocks], () => q().scales);
  const zeroPoints = g.weight(`${graphName}.zero_points`, 'uint8', [n * Math.ceil((blocks * bits) / 8)], () => {
    // written last of the three: the quantized copy is dropped once all its parts are out
    const z = q().zeroPoints;
    quantized = undefined;
    return z;
  });
  const attrs = { K: k, N: n, bits, block_size: QUANT_BLOCK_SIZE, accuracy_level: level };
  const y = dg.value(g.op('MatMulNBits', [x.name, codes, scales, zeroPoints], attrs, 'com.microsoft'), [...x.shape.slice(0, -1), n]);
  dg.record([x], [y], ([gy]) => [dg.value(g.op('MatMul', [gy!.name, dequantized(dg, gy!, { codes, scales, zeroPoints, bits, n, k, blocks })]), x.shape)]);
  return y;
}

interface QuantizedParts {
  codes: string;
  scales: string;
  zeroPoints: string;
  bits: QuantBits;
  n: number;
  k: number;
  blocks: number;
}

/** uint8 [..., m] packed 4-bit codes → uint8 [..., 2m], the even element from the low nibble. */
function unpackNibbles(dg: DiffGraph, packed: string, lead: number[], m: number): string {
  const { g } = dg;
  const low = g.op('BitwiseAnd', [packed, g.uint8Scalar(0x0f)]);
  const high = g.op('BitShift', [packed, g.uint8Scalar(4)], { direction: 'RIGHT' });
  const pairs = g.op('Concat', [g.op('Unsqueeze', [low, g.int64([-1])]), g.op('Unsqueeze', [high, g.int64([-1])])], { axis: -1 }); // [..., m, 2]
  return g.op('Reshape', [pairs, g.int64([...lead, 2 * m])]);
}

/**
 *   W [N, K] = (codes − zero point) · scale, per block of 32 along K, as float32 (the layout of quantize.ts)
 * Every op reads a value computed at run time from `gy` (a zero or a one), so ORT cannot fold the
 * dequantization into a float32 copy of the weight at session start: it exists during its product only.
 */
function dequantized(dg: DiffGraph, gy: Value, { codes, scales, zeroPoints, bits, n, k, blocks }: QuantizedParts): string {
  const { g } = dg;
  const nonEmpty = g.op('Greater', [g.op('Size', [gy.name]), g.int64([0], [])]); // bool [], true at run time
  const zero = g.op('Cast', [g.op('Not', [nonEmpty])], { to: 2 }); // uint8 0
  const one = g.op('Cast', [nonEmpty], { to: 1 }); // float 1
  const codeBytes = g.op('BitwiseOr', [codes, zero]); // uint8 [N, blocks, 32·bits/8]
  const zpBytes = g.op('BitwiseOr', [zeroPoints, zero]); // uint8 [N·⌈blocks·bits/8⌉]
  const perRowZp = Math.ceil((blocks * bits) / 8);
  const codes8 = bits === 8 ? codeBytes : unpackNibbles(dg, codeBytes, [n, blocks], QUANT_BLOCK_SIZE / 2); // [N, blocks, 32]
  let zp8 = bits === 8 ? g.op('Reshape', [zpBytes, g.int64([n, blocks])]) : unpackNibbles(dg, g.op('Reshape', [zpBytes, g.int64([n, perRowZp])]), [n], perRowZp);
  if (bits === 4 && 2 * perRowZp !== blocks) zp8 = g.op('Slice', [zp8, g.int64([0]), g.int64([blocks]), g.int64([1])]); // [N, blocks]
  const centred = g.op('Sub', [g.op('Cast', [codes8], { to: 1 }), g.op('Unsqueeze', [g.op('Cast', [zp8], { to: 1 }), g.int64([-1])])]); // [N, blocks, 32]
  const scale = g.op('Reshape', [g.op('Mul', [scales, one]), g.int64([n, blocks, 1])]);
  const padded = g.op('Reshape', [g.op('Mul', [centred, scale]), g.int64([n, blocks * QUANT_BLOCK_SIZE])]); // [N, blocks·32]
  return blocks * QUANT_BLOCK_SIZE === k ? padded : g.op('Slice', [padded, g.int64([0]), g.int64([k]), g.int64([1])]); // [N, K]
}

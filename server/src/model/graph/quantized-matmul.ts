// x · Wᵀ with W block-quantized, as one com.microsoft MatMulNBits node (inference only: the
// quantized weights are frozen initializers). MatMulNBits takes W in the HF [out, in] layout.
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
}

/**
 *   x [.., K] ─ MatMulNBits(codes [N, K/32, 32·bits/8], scales [N·K/32], zero points) ─> [.., N]
 * `rows` produces the float32 weight [N, K]; it is quantized once, when the model is written.
 */
export function quantizedMatMul(dg: DiffGraph, x: Value, { graphName, bits, n, k, rows }: QuantizedWeight): Value {
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
  const attrs = { K: k, N: n, bits, block_size: QUANT_BLOCK_SIZE, accuracy_level: accuracyLevel(bits) };
  const y = g.op('MatMulNBits', [x.name, codes, scales, zeroPoints], attrs, 'com.microsoft');
  return dg.value(y, [...x.shape.slice(0, -1), n]);
}

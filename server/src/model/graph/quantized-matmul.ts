// x · Wᵀ with W block-quantized, as one com.microsoft MatMulNBits node (inference only: the
// quantized weights are frozen initializers). MatMulNBits takes W in the HF [out, in] layout.
import { type QuantBits, QUANT_BLOCK_SIZE, quantizeBlockwise, type BlockQuantized } from '../quantize';
import type { DiffGraph, Value } from './diff-graph';

/**
 * MatMulNBits' accuracy_level: 0 computes in float32 on the dequantized weights (exact); 4 quantizes
 * the activations to int8 per block of 32, per row (so a row never depends on the rest of its batch),
 * for integer dot products. Both bit widths take 4: measured at Qwen2.5-Coder-0.5B's shape on this
 * project's 2-thread AMD EPYC (AVX-512 VNNI), `tests/bench/quantized-matmul.bench.ts`, M=1 decode of
 * the 24 layers' matmuls / the 151,936×896 head, best of 5–9 interleaved reps on a loaded machine:
 *   int4 acc 0: 77 / 10.3 ms, int4 acc 4: 18.7 / 4.7 ms (load average ~10); 309 / 54 vs 26 / 36 ms (~19)
 *   int8 acc 4: 42 / 8.2 ms; int8 at acc 0 has no fast kernel (≈8× slower, measured on d 512)
 * The tiny d-512 model once decoded int4 as fast at 0 as at 4: at real size the float32 path is
 * compute-bound, 2–12× slower. int4 acc 4 costs exactness: ~1e-2 relative error instead of ~1e-7.
 */
export function accuracyLevel(_bits: QuantBits): number {
  return 4;
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

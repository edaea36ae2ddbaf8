// x · Wᵀ with W quantized (inference only: the codes are frozen initializers), in the formulation
// measured fastest on ORT 1.30's CPU kernels for each bit width:
//   int4  com.microsoft MatMulNBits (block 32, accuracy_level 4), W in the HF [out, in] layout;
//   int8  W as int8 per output channel, x quantized per row at run time (QuantizeLinear), ai.onnx MatMulInteger (u8×s8).
//
// Measured with `node --import tsx tests/bench/quantized-matmul.bench.ts` at Qwen2.5-Coder-0.5B's shape on
// this project's 2-thread AMD EPYC (AVX-512 VNNI): M=1 decode of the 24 layers' matmuls + the 151,936×896
// head, ms, best of 5–9 interleaved reps, in four runs on a shared machine at load average 9–23 (absolute
// times inflated 2–10×; the fp32 "bandwidth" read 3–6.5 GB/s against ~50 quiet, so no run could test the
// 1.3× bound). Prefill: the layers at M=128, tokens/s. Runs 1 | 2 | 3 | 4:
//   formulation                      decode ms (layers + head)        prefill tok/s
//   MatMulNBits int8, acc 4          51 | 230 | 416 | 70              228 | 67 | 34 | 82
//   MatMulInteger int8 per tensor    21 | 154 |  88 | 51              527 | 84 | 73 | 90
//   MatMulInteger int8 per row        — |   — |  94 | 46                — |  — | 48 | 83
//   DynamicQuantizeMatMul int8       46 | 269 |   — | 47              385 | 92 |  — | 87
//   MatMulNBits int4, acc 0          87 | 363 |   — | 167             410 | 32 |  — | 46
//   MatMulNBits int4, acc 4          23 |  62 | 102 | 35              230 | 37 | 25 | 47
// int8: MatMulInteger (per row) decodes 1.5–4.4× faster than MatMulNBits' 8-bit kernel, prefill level or
// better. Per row rather than per tensor (DynamicQuantizeLinear, DynamicQuantizeMatMul), so a row's result
// never depends on the other rows of its batch (batched decode equals one slot at a time; a prefill row
// equals its decode step); per row cost nothing measurable in run 4. int4: accuracy_level 0 (float32
// compute on dequantized weights, exact) decodes 3.8–5.9× slower than 4 at this size (the tiny d-512 model
// once decoded as fast at 0); 4 quantizes x per block of 32 per row.
// A quiet run on a 2-thread AMD EPYC with AVX2 only (no VNNI; fp32 matrix-vector 18 GB/s), `--reps 5
// --steps 15`, decode ms layers + head (× the bound incl. the KV at 1,000) | prefill tok/s: fp32 104 (1.00×)
// | 92; MatMulInteger per tensor 41.0 (1.51×) | 97; per row by hand 44.2 (1.63×) | 87; DynamicQuantizeMatMul
// 41.4 | 97; MatMulNBits int8 acc 4 61.6 | 37; int4 acc 4 b32 40.4 | 66, b128 35.0 | 79. The per-row chain's
// cost over per tensor is its nodes, hence QuantizeLinear/DequantizeLinear below; an s8 × s8 MatMulInteger
// (no zero points at all) ran ~10× slower there: MLAS has no fast AVX2 kernel for it.
// A training graph (QLoRA) asks for an accuracy level (0: exact) and gets MatMulNBits for both widths,
// the gradient flowing to x through the same codes dequantized in the graph one weight at a time: dx = dy · W.
import {
  type QuantBits,
  QUANT_BLOCK_SIZE,
  quantizeBlockwise,
  quantizeBlockwiseRows,
  quantizePerChannelRows,
  tiledRowReader,
  type BlockQuantized,
  type ChannelQuantized,
  type RowReader,
} from '../quantize';
import type { DiffGraph, Value } from './diff-graph';
import type { ParallelQuantizer, StackedRows } from './parallel-quantize';
import type { GraphBuilder } from './onnx-graph';

/** MatMulNBits' accuracy_level for int4: int8 activations per block (see the table above). */
export const INT4_ACCURACY_LEVEL = 4;

/** A weight [N, K] to quantize: its node name, bits, sizes and its float32 rows. */
export interface QuantizedWeight {
  graphName: string;
  bits: QuantBits;
  n: number;
  k: number;
  /** Fills `into` (float32 [N, K], row-major) with the weight; `into` is reused once the codes are made. */
  rows: (into: Float32Array) => void;
  /** Fills `into` with rows [first, first + into.length / K); when given, int8 reads the weight a tile of rows at a time. */
  readRows?: (first: number, into: Float32Array) => void;
  /** The HF tensors the rows are stacked from and a second thread to code half of them on (inference graph builds). */
  parallel?: { quantizer: ParallelQuantizer; stacked: StackedRows };
  /** Set by training graphs: MatMulNBits at this accuracy_level (0 computes exactly on the dequantized weights), with a backward to x. */
  accuracyLevel?: number;
}

/** x [.., K] · Wᵀ → [.., N] with W quantized to `bits`; `rows` is read once, when the model is written. */
export function quantizedMatMul(dg: DiffGraph, x: Value, w: QuantizedWeight): Value {
  const { readRows, n, k, bits, parallel } = w;
  if (w.accuracyLevel === undefined && readRows) {
    const tiles = () => tiledRowReader(readRows, k);
    if (bits === 8) return int8MatMul(dg, x, w, tiles);
    // int4 read a tile of rows at a time, on two threads when the build has them
    return nbitsMatMul(dg, x, w, INT4_ACCURACY_LEVEL, () =>
      parallel ? parallel.quantizer.blockwise(parallel.stacked, { n, k, bits }, tiles()) : quantizeBlockwiseRows(tiles(), { n, k, bits }),
    );
  }
  const withBuffer = { ...w, rows: rowsBuffer(dg.g, w) };
  const fromBuffer = () => quantizeBlockwise(withBuffer.rows(), { n, k, bits });
  if (w.accuracyLevel !== undefined) return nbitsMatMul(dg, x, w, w.accuracyLevel, fromBuffer); // a training graph's frozen base
  if (w.bits === 4) return nbitsMatMul(dg, x, w, INT4_ACCURACY_LEVEL, fromBuffer);
  return int8MatMul(dg, x, w, () => {
    const all = withBuffer.rows(); // [N, K]
    return (first, count) => all.subarray(first * w.k, (first + count) * w.k);
  });
}

/** The float32 buffer a graph's quantized weights are read into, and how many of them are still to be read. */
interface RowsBuffer {
  values: Float32Array;
  pending: number;
}
const rowsBuffers = new WeakMap<GraphBuilder, RowsBuffer>();

/**
 * `w.rows` read into one float32 buffer shared by the graph's quantized weights: a quantizer keeps only
 * its codes, so the next weight reuses pages already mapped instead of faulting in fresh ones. The
 * buffer is dropped once the last of them has been read.
 */
function rowsBuffer(g: GraphBuilder, w: QuantizedWeight): () => Float32Array {
  const buffer = rowsBuffers.get(g) ?? { values: new Float32Array(0), pending: 0 };
  rowsBuffers.set(g, buffer);
  buffer.pending++;
  return () => {
    if (buffer.values.length < w.n * w.k) buffer.values = new Float32Array(w.n * w.k);
    const into = buffer.values.subarray(0, w.n * w.k);
    w.rows(into);
    if (--buffer.pending <= 0) buffer.values = new Float32Array(0); // a graph written again reads fresh buffers
    return into;
  };
}

/**
 *   x [.., K] ─ MatMulNBits(codes [N, K/32, 32·bits/8], scales [N·K/32], zero points, accuracy_level) ─> [.., N]
 * `quantize` makes the codes when the model is written.
 */
function nbitsMatMul(dg: DiffGraph, x: Value, { graphName, bits, n, k }: QuantizedWeight, level: number, quantize: () => BlockQuantized): Value {
  const { g } = dg;
  const blocks = Math.ceil(k / QUANT_BLOCK_SIZE);
  let quantized: BlockQuantized | undefined;
  const q = () => (quantized ??= quantize());
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

/**
 *   x [.., K] ─ s = max|x| / 127 per row [.., 1] ─ QuantizeLinear(x, s, 128, one block per row) uint8 [.., K] ─┐
 *   codes int8 [K, N] ───────────────────────────────────────────────────────────── MatMulInteger(·, ·, 128) int32 [.., N]
 *                                                        ─ DequantizeLinear(scales [N], per column) ─ · s ─> [.., N]
 * Eight nodes per product (a decode step runs ~100 of them, and at M=1 each node costs ORT ~1.5–2 µs
 * whatever its size): QuantizeLinear and DequantizeLinear stand for the Div, Round, +128, Cast and
 * Cast, Mul of a hand-written chain, with the same integer sums.
 */
function int8MatMul(dg: DiffGraph, x: Value, { graphName, n, k, parallel }: QuantizedWeight, reader: () => RowReader): Value {
  const { g } = dg;
  let quantized: ChannelQuantized | undefined;
  const q = () => (quantized ??= parallel ? parallel.quantizer.perChannel(parallel.stacked, n, k, reader()) : quantizePerChannelRows(reader(), { n, k }));
  const codes = g.weight(`${graphName}.qweight`, 'int8', [k, n], () => {
    const c = q().codes;
    return new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
  });
  const scales = g.weight(`${graphName}.scales`, 'float32', [n], () => {
    const s = q().scales;
    quantized = undefined; // written last: the quantized copy is dropped
    return s;
  });
  // a row of zeros gets scale 1e-30, not 0: its codes stay 128 and its output 0
  const rowScale = g.op('Max', [g.op('Div', [g.op('ReduceMax', [g.op('Abs', [x.name]), g.int64([-1])], { keepdims: 1 }), g.float32([127], [])]), g.float32([1e-30], [])]); // [.., 1]
  const xq = g.op('QuantizeLinear', [x.name, rowScale, rowZeroPoints(g, x, rowScale)], { axis: -1, block_size: k }); // uint8 [.., K]
  const acc = g.op('MatMulInteger', [xq, codes, g.uint8Scalar(128)]); // int32 [.., N]
  const y = g.op('Mul', [g.op('DequantizeLinear', [acc, scales], { axis: -1 }), rowScale]);
  return dg.value(y, [...x.shape.slice(0, -1), n]);
}

const zeroPointsByRows = new WeakMap<GraphBuilder, Map<string, string>>();

/**
 * uint8 128 per row of x, shaped like its row scales [.., 1]: u8 × s8 is the MatMulInteger that
 * MLAS has fast AVX2/VNNI kernels for (s8 × s8 measured ~10× slower on an AVX2 EPYC). Made once per
 * leading shape (every projection of a step shares [B,S]) rather than once per product.
 */
function rowZeroPoints(g: GraphBuilder, x: Value, rowScale: string): string {
  const byRows = zeroPointsByRows.get(g) ?? new Map<string, string>();
  zeroPointsByRows.set(g, byRows);
  const key = x.shape.slice(0, -1).join(',');
  let zeroPoints = byRows.get(key);
  if (!zeroPoints) {
    zeroPoints = g.op('Expand', [g.uint8Scalar(128), g.op('Shape', [rowScale])]);
    byRows.set(key, zeroPoints);
  }
  return zeroPoints;
}

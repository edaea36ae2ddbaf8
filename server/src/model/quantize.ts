// Block-wise round-to-nearest weight quantization in the layout of com.microsoft MatMulNBits:
// each output row is cut into blocks of `blockSize` input values; a block keeps a float32 scale,
// an unsigned zero point and `bits`-bit codes; value ≈ (code − zeroPoint) · scale.
// Written here because it is a few lines of arithmetic and the ORT quantizer is Python only.

export type QuantBits = 4 | 8;
export const QUANT_BLOCK_SIZE = 32;

export interface BlockQuantized {
  bits: QuantBits;
  blockSize: number;
  /** Output features (rows of the HF [out, in] weight). */
  n: number;
  /** Input features. */
  k: number;
  /** Blocks per row: ceil(k / blockSize); the last block is zero-padded. */
  blocks: number;
  /** uint8 [n, blocks, blockSize·bits/8]; 4-bit codes two per byte, the even element in the low nibble. */
  data: Uint8Array;
  /** float32 [n·blocks]. */
  scales: Float32Array;
  /** uint8 [n, ceil(blocks·bits/8)]; 4-bit zero points two per byte like the codes. */
  zeroPoints: Uint8Array;
}

/** How to quantize a weight: its shape [n, k], the bits per code and the block size (default QUANT_BLOCK_SIZE). */
export type BlockQuantization = Pick<BlockQuantized, 'n' | 'k' | 'bits'> & { blockSize?: number };

/** Quantizes an HF Linear weight `w` [n, k] (row-major). */
export function quantizeBlockwise(w: Float32Array, spec: BlockQuantization): BlockQuantized {
  if (w.length !== spec.n * spec.k) throw new Error(`quantize: ${w.length} values is not ${spec.n}×${spec.k}`);
  return quantizeBlockwiseRows((first, count) => w.subarray(first * spec.k, (first + count) * spec.k), spec);
}

/** quantizeBlockwise on a weight read a tile of rows at a time (no float32 copy of the whole matrix). */
export function quantizeBlockwiseRows(readRows: RowReader, spec: BlockQuantization): BlockQuantized {
  const out = emptyBlockQuantized(spec);
  quantizeBlockwiseInto(readRows, out, 0, spec.n);
  return out;
}

/** The zeroed codes, scales and zero points of a block-quantized [n, k], in `memory`'s buffers (shared ones for two threads). */
export function emptyBlockQuantized(
  { n, k, bits, blockSize = QUANT_BLOCK_SIZE }: BlockQuantization,
  memory: (bytes: number) => ArrayBufferLike = (bytes) => new ArrayBuffer(bytes),
): BlockQuantized {
  const blocks = Math.ceil(k / blockSize);
  const data = new Uint8Array(memory((n * blocks * blockSize * bits) / 8));
  const scales = new Float32Array(memory(4 * n * blocks));
  const zeroPoints = new Uint8Array(memory(n * Math.ceil((blocks * bits) / 8)));
  return { bits, blockSize, n, k, blocks, data, scales, zeroPoints };
}

/** Rows [first, end) of quantizeBlockwise into `out`: a row's codes, scales and zero points are bytes of its own. */
export function quantizeBlockwiseInto(readRows: RowReader, out: BlockQuantized, first: number, end: number): void {
  const { k } = out;
  for (let r0 = first; r0 < end; r0 += TILE) {
    const rows = Math.min(end, r0 + TILE) - r0;
    const w = readRows(r0, rows); // [rows, k]
    if (w.length !== rows * k) throw new Error(`quantize: rows ${r0}..${r0 + rows} came as ${w.length} values, not ${rows * k}`);
    for (let r = 0; r < rows; r++) codeBlocksOfRow(w, r * k, out, r0 + r);
  }
}

/** The blocks of one row (w[from, from + k)) into row `row` of `out`. */
function codeBlocksOfRow(w: Float32Array, from: number, out: BlockQuantized, row: number): void {
  const { bits, blockSize, k, blocks, data, scales, zeroPoints } = out;
  const blobBytes = (blockSize * bits) / 8;
  const zpBytesPerRow = Math.ceil((blocks * bits) / 8);
  const maxCode = (1 << bits) - 1;
  for (let b = 0; b < blocks; b++) {
    const start = from + b * blockSize;
    const count = Math.min(k - b * blockSize, blockSize);
    // the range always holds 0, so zero (and the zero padding) is exactly representable
    let lo = 0;
    let hi = 0;
    for (let i = start; i < start + count; i++) {
      const v = w[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const scale = Math.fround(hi > lo ? (hi - lo) / maxCode : 1);
    const zp = Math.min(maxCode, Math.max(0, Math.round(-lo / scale)));
    scales[row * blocks + b] = scale;
    writeCode(zeroPoints, row * zpBytesPerRow, b, zp, bits);
    const blob = (row * blocks + b) * blobBytes;
    // the last block of a row is read zero-padded; the others straight from the row (no test per value)
    const block = count === blockSize ? w : padded(w, start, count, blockSize);
    const at = block === w ? start : 0;
    // (a NaN code stores as 0, as writeCode's did)
    if (bits === 8) {
      for (let i = 0; i < blockSize; i++) data[blob + i] = blockCode(block[at + i]!, scale, zp, maxCode);
    } else {
      for (let i = 0; i < blockSize; i += 2) data[blob + (i >> 1)] = blockCode(block[at + i]!, scale, zp, maxCode) | (blockCode(block[at + i + 1]!, scale, zp, maxCode) << 4);
    }
  }
}

/** The float32 weight [n, k] the codes stand for: the reference a quantized MatMul is checked against. */
export function dequantizeBlockwise(q: BlockQuantized): Float32Array {
  const out = new Float32Array(q.n * q.k);
  const blobBytes = (q.blockSize * q.bits) / 8;
  const zpBytesPerRow = Math.ceil((q.blocks * q.bits) / 8);
  for (let row = 0; row < q.n; row++) {
    for (let b = 0; b < q.blocks; b++) {
      const scale = q.scales[row * q.blocks + b]!;
      const zp = readCode(q.zeroPoints, row * zpBytesPerRow, b, q.bits);
      const blob = (row * q.blocks + b) * blobBytes;
      for (let i = 0; i < q.blockSize && b * q.blockSize + i < q.k; i++) {
        out[row * q.k + b * q.blockSize + i] = Math.fround((readCode(q.data, blob, i, q.bits) - zp) * scale);
      }
    }
  }
  return out;
}

/** Bytes of a quantized weight (codes, scales, zero points). */
export function quantizedBytes(q: BlockQuantized): number {
  return q.data.byteLength + q.scales.byteLength + q.zeroPoints.byteLength;
}

/**
 * Math.round(v / scale) for float32 v and scale, without Math.round's data-dependent branch (on random
 * weights ~12 → ~2 ns a value on an AVX2 EPYC: the branch mispredicts half the time). floor(x + 0.5)
 * differs from Math.round only when x + 0.5 rounds up to an integer, i.e. x lies within 2⁻⁵³·|x| below
 * a half-integer without being one; a quotient of two 24-bit mantissas under 64 (the codes' range; past
 * it the callers clamp) is a half-integer exactly or at least 2⁻³² of itself away from one.
 */
function roundQuotient(v: number, scale: number): number {
  return Math.floor(v / scale + 0.5);
}

/** w[from, from + count) followed by zeros, blockSize values in all. */
function padded(w: Float32Array, from: number, count: number, blockSize: number): Float32Array {
  const out = new Float32Array(blockSize);
  out.set(w.subarray(from, from + count));
  return out;
}

/** A value's code in a block of `scale` and zero point `zp`, clamped to [0, maxCode]. */
function blockCode(v: number, scale: number, zp: number, maxCode: number): number {
  return Math.min(maxCode, Math.max(0, roundQuotient(v, scale) + zp));
}

function writeCode(bytes: Uint8Array, base: number, index: number, code: number, bits: QuantBits): void {
  if (bits === 8) {
    bytes[base + index] = code;
    return;
  }
  const at = base + (index >> 1);
  bytes[at] = index & 1 ? (bytes[at]! & 0x0f) | (code << 4) : (bytes[at]! & 0xf0) | code;
}

function readCode(bytes: Uint8Array, base: number, index: number, bits: QuantBits): number {
  if (bits === 8) return bytes[base + index]!;
  const byte = bytes[base + (index >> 1)]!;
  return index & 1 ? byte >> 4 : byte & 0x0f;
}

// ---------- int8 per output channel, for MatMulInteger ----------

/**
 * Largest |code| of a per-channel int8 weight: 63, not 127 (ORT's "reduce range"). x86 CPUs without
 * VNNI multiply u8 activations by s8 weights with VPMADDUBSW, which saturates a pair's sum at 32,767;
 * 255·63·2 = 32,130 never does, 255·127·2 would. One bit of the weight's precision buys exact results on
 * every CPU.
 */
export const INT8_CHANNEL_MAX = 63;

/** Side of the square tiles the [n, k] ↔ [k, n] transposes walk in. */
const TILE = 64;

/** A weight [n, k] as symmetric per-output-channel codes, laid out as MatMulInteger's B. */
export interface ChannelQuantized {
  n: number;
  k: number;
  /** int8 [k, n] (transposed: B of y = x · B); |code| ≤ INT8_CHANNEL_MAX. */
  codes: Int8Array;
  /** float32 [n]: value ≈ code · scale of its output channel. */
  scales: Float32Array;
}

/** Rows [first, first + count) of a weight [n, k] as float32 [count, k] row-major, valid until the next call. */
export type RowReader = (first: number, count: number) => Float32Array;

/** Quantizes an HF Linear weight `w` [n, k] (row-major) per output channel (row). */
export function quantizePerChannel(w: Float32Array, { n, k }: { n: number; k: number }): ChannelQuantized {
  if (w.length !== n * k) throw new Error(`quantize: ${w.length} values is not ${n}×${k}`);
  return quantizePerChannelRows((first, count) => w.subarray(first * k, (first + count) * k), { n, k });
}

/**
 * quantizePerChannel on a weight read TILE rows at a time: a row's scale and codes depend on that row
 * alone, so a reader can hand out a small buffer that stays in cache instead of the whole float32 matrix.
 * Each tile is coded row-major first, then transposed four rows to a 32-bit write (with roundQuotient,
 * 0.5B's head of random BF16 weights ~16 → ~5 ns a value on an AVX2 EPYC; tests/bench/graph-build.bench.ts
 * profiles the whole build).
 */
export function quantizePerChannelRows(readRows: RowReader, { n, k }: { n: number; k: number }): ChannelQuantized {
  const out = { n, k, codes: new Int8Array(n * k), scales: new Float32Array(n) };
  quantizePerChannelInto(readRows, out, 0, n);
  return out;
}

/**
 * Rows [first, end) of quantizePerChannelRows into `out` (its codes and scales, which may live in shared
 * memory another thread fills with the other rows): no byte outside those rows' columns is written.
 * `first` a multiple of 4 keeps the transpose's 32-bit writes.
 */
export function quantizePerChannelInto(readRows: RowReader, out: ChannelQuantized, first: number, end: number): void {
  const { n, k, codes, scales } = out;
  const tileCodes = new Int8Array(Math.min(end - first, TILE) * k); // [TILE, k], row-major
  for (let r0 = first; r0 < end; r0 += TILE) {
    const rows = Math.min(end, r0 + TILE) - r0;
    const w = readRows(r0, rows); // [rows, k]
    if (w.length !== rows * k) throw new Error(`quantize: rows ${r0}..${r0 + rows} came as ${w.length} values, not ${rows * k}`);
    for (let r = 0; r < rows; r++) scales[r0 + r] = codeRow(w, r * k, k, tileCodes);
    transposeTile(tileCodes, rows, k, codes, n, r0);
  }
}

/** Rows handed to a quantizer a tile at a time, read into one small buffer that stays in cache. */
export function tiledRowReader(readRows: (first: number, into: Float32Array) => void, k: number): RowReader {
  let buffer = new Float32Array(0);
  return (first, count) => {
    if (buffer.length < count * k) buffer = new Float32Array(count * k);
    const into = buffer.subarray(0, count * k);
    readRows(first, into);
    return into;
  };
}

/** Codes of the row w[from, from + k) into out[from, from + k); returns its scale. */
function codeRow(w: Float32Array, from: number, k: number, out: Int8Array): number {
  let max = 0;
  for (let i = from; i < from + k; i++) max = Math.max(max, Math.abs(w[i]!)); // NaN anywhere makes max NaN, and the scale 1
  const scale = Math.fround(max > 0 ? max / INT8_CHANNEL_MAX : 1);
  // |w/scale| ≤ max/scale (division is monotonic), so a finite quotient under 63.5 rounds inside the
  // codes' range and needs no clamp; NaN, infinities and a scale that underflowed to 0 take the clamped loop
  if (max / scale < INT8_CHANNEL_MAX + 0.5) {
    for (let i = from; i < from + k; i++) out[i] = roundQuotient(w[i]!, scale);
  } else {
    for (let i = from; i < from + k; i++) out[i] = Math.max(-INT8_CHANNEL_MAX, Math.min(INT8_CHANNEL_MAX, roundQuotient(w[i]!, scale)));
  }
  return scale;
}

/** tile [rows, k] row-major into codes [k, n] at column r0: four rows' bytes to one 32-bit write where aligned. */
function transposeTile(tile: Int8Array, rows: number, k: number, codes: Int8Array, n: number, r0: number): void {
  const words = n % 4 === 0 && r0 % 4 === 0 && codes.byteOffset % 4 === 0 ? new Int32Array(codes.buffer, codes.byteOffset, codes.length >> 2) : undefined;
  const wordRows = words ? rows - (rows % 4) : 0;
  for (let i = 0; i < k; i++) {
    const to = i * n + r0;
    if (words) {
      // little-endian: the first row's byte is the word's lowest
      for (let r = 0; r < wordRows; r += 4) {
        const at = r * k + i;
        words[(to + r) >> 2] = (tile[at]! & 0xff) | ((tile[at + k]! & 0xff) << 8) | ((tile[at + 2 * k]! & 0xff) << 16) | (tile[at + 3 * k]! << 24);
      }
    }
    for (let r = wordRows; r < rows; r++) codes[to + r] = tile[r * k + i]!;
  }
}

/** The float32 weight [n, k] per-channel codes stand for. */
export function dequantizePerChannel(q: ChannelQuantized): Float32Array {
  const out = new Float32Array(q.n * q.k);
  for (let r0 = 0; r0 < q.n; r0 += TILE) {
    for (let i0 = 0; i0 < q.k; i0 += TILE) {
      for (let row = r0; row < Math.min(q.n, r0 + TILE); row++) {
        const scale = q.scales[row]!;
        for (let i = i0; i < Math.min(q.k, i0 + TILE); i++) out[row * q.k + i] = Math.fround(q.codes[i * q.n + row]! * scale);
      }
    }
  }
  return out;
}

/** The float32 weight [n, k] a quantized matmul of `bits` computes with (int4 block-wise, int8 per channel). */
export function roundTripQuantized(w: Float32Array, { n, k, bits }: { n: number; k: number; bits: QuantBits }): Float32Array {
  return bits === 8 ? dequantizePerChannel(quantizePerChannel(w, { n, k })) : dequantizeBlockwise(quantizeBlockwise(w, { n, k, bits }));
}

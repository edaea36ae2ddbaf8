// ggml's Q8_0 and Q4_0 block formats, for GGUF exports llama.cpp runs quantized (the peers Kiln's
// int8/int4 graphs are compared with). Blocks of 32 values along a row, each with an fp16 scale:
//   Q8_0  [d: f16][32 × int8]                      value = q · d,        d = absmax / 127
//   Q4_0  [d: f16][16 bytes: q[j] | q[j+16] << 4]  value = (q − 8) · d,  d = −max / 8, where max is the
//                                                   value of largest magnitude (its sign kept)
import { floatToHalfBits, halfBitsToFloat } from '../half';

export const GGML_BLOCK = 32;
export const Q8_0_BLOCK_BYTES = 2 + GGML_BLOCK;
export const Q4_0_BLOCK_BYTES = 2 + GGML_BLOCK / 2;

function checkBlocks(values: Float32Array): number {
  if (values.length % GGML_BLOCK !== 0) throw new Error(`ggml block quantization needs a multiple of ${GGML_BLOCK} values, got ${values.length}`);
  return values.length / GGML_BLOCK;
}

export function quantizeQ8_0(values: Float32Array): Uint8Array {
  const blocks = checkBlocks(values);
  const out = new Uint8Array(blocks * Q8_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let i = 0; i < GGML_BLOCK; i++) amax = Math.max(amax, Math.abs(values[b * GGML_BLOCK + i]!));
    const d = amax / 127;
    const inv = d ? 1 / d : 0;
    const at = b * Q8_0_BLOCK_BYTES;
    view.setUint16(at, floatToHalfBits(d), true);
    for (let i = 0; i < GGML_BLOCK; i++) view.setInt8(at + 2 + i, Math.round(values[b * GGML_BLOCK + i]! * inv));
  }
  return out;
}

export function quantizeQ4_0(values: Float32Array): Uint8Array {
  const blocks = checkBlocks(values);
  const out = new Uint8Array(blocks * Q4_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  const q = new Uint8Array(GGML_BLOCK);
  for (let b = 0; b < blocks; b++) {
    let max = 0;
    for (let i = 0; i < GGML_BLOCK; i++) {
      const v = values[b * GGML_BLOCK + i]!;
      if (Math.abs(v) > Math.abs(max)) max = v;
    }
    const d = max / -8;
    const inv = d ? 1 / d : 0;
    for (let i = 0; i < GGML_BLOCK; i++) q[i] = Math.min(15, Math.trunc(values[b * GGML_BLOCK + i]! * inv + 8.5));
    const at = b * Q4_0_BLOCK_BYTES;
    view.setUint16(at, floatToHalfBits(d), true);
    for (let j = 0; j < GGML_BLOCK / 2; j++) out[at + 2 + j] = q[j]! | (q[j + GGML_BLOCK / 2]! << 4);
  }
  return out;
}

/** The values a Q8_0 or Q4_0 buffer stands for (tests check the encoders against it). */
export function dequantizeGgml(type: 'Q8_0' | 'Q4_0', bytes: Uint8Array): Float32Array {
  const blockBytes = type === 'Q8_0' ? Q8_0_BLOCK_BYTES : Q4_0_BLOCK_BYTES;
  const blocks = bytes.length / blockBytes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(blocks * GGML_BLOCK);
  for (let b = 0; b < blocks; b++) {
    const at = b * blockBytes;
    const d = halfBitsToFloat(view.getUint16(at, true));
    for (let i = 0; i < GGML_BLOCK; i++) {
      if (type === 'Q8_0') out[b * GGML_BLOCK + i] = view.getInt8(at + 2 + i) * d;
      else {
        const byte = bytes[at + 2 + (i % 16)]!;
        out[b * GGML_BLOCK + i] = ((i < 16 ? byte & 0x0f : byte >> 4) - 8) * d;
      }
    }
  }
  return out;
}

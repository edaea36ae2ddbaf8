// quantizeBlockwise against a plain reference written from its definition (per block of 32: lo, hi over
// the block and 0, scale = (hi − lo) / (2^bits − 1), zero point = round(−lo / scale), code = clamp(
// round half up(value / scale) + zero point)) on blocks built to hold exact .5 ties of their scale and
// the float32 just beside each: the quantizer's branch-free rounding must land every one as Math.round.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BlockQuantized, type QuantBits, quantizeBlockwise } from '../../server/src/model/quantize';
import { seededRandom } from '../helpers/random';

function referenceCodes(w: Float32Array, n: number, k: number, bits: QuantBits, blockSize: number): number[] {
  const maxCode = 2 ** bits - 1;
  const codes: number[] = [];
  for (let row = 0; row < n; row++) {
    for (let start = 0; start < k; start += blockSize) {
      const block = Array.from(w.subarray(row * k + start, row * k + Math.min(k, start + blockSize)));
      const lo = Math.min(0, ...block);
      const hi = Math.max(0, ...block);
      const scale = Math.fround(hi > lo ? (hi - lo) / maxCode : 1);
      const zp = Math.min(maxCode, Math.max(0, Math.round(-lo / scale)));
      for (let i = 0; i < blockSize; i++) codes.push(Math.min(maxCode, Math.max(0, Math.round((block[i] ?? 0) / scale) + zp)));
    }
  }
  return codes;
}

function readCodes(q: BlockQuantized): number[] {
  const out: number[] = [];
  for (let i = 0; i < q.n * q.blocks * q.blockSize; i++) out.push(q.bits === 8 ? q.data[i]! : (q.data[i >> 1]! >> (i & 1 ? 4 : 0)) & 0x0f);
  return out;
}

/** The float32 `steps` (±1) ulps from `v`. */
function nextFloat32(v: number, steps: number): number {
  const f = new Float32Array([v]);
  const bits = new Int32Array(f.buffer);
  bits[0]! += v === 0 ? steps : Math.sign(v) * steps;
  return f[0]!;
}

/**
 * A block whose range is exactly maxCode · s (s an odd 17-bit integer times a power of two: every tie
 * below stays exact in float32) with values at ties (j + 0.5) · s − zp · s and their float32 neighbours.
 */
function tieBlock(rand: () => number, blockSize: number, maxCode: number): number[] {
  const s = (2 * Math.floor(rand() * 2 ** 16) + 1) * 2 ** Math.floor(rand() * 20 - 30);
  const zp = 1 + Math.floor(rand() * (maxCode - 1));
  const block = Array.from({ length: blockSize }, () => {
    const tie = (Math.floor(rand() * maxCode) + 0.5 - zp) * s;
    const step = Math.floor(rand() * 3) - 1;
    return step === 0 ? tie : nextFloat32(tie, step);
  });
  block[0] = -zp * s; // lo
  block[1] = (maxCode - zp) * s; // hi: the block's scale comes back as s
  return block;
}

describe('block-wise quantization', () => {
  for (const bits of [4, 8] as const) {
    it(`int${bits}: ties, their neighbours and plain values code as the reference`, () => {
      const rand = seededRandom(bits);
      const [n, k, blockSize] = [24, 100, 32]; // k not a multiple of the block: the last one is padded
      const w = new Float32Array(n * k);
      for (let row = 0; row < n; row++) {
        for (let start = 0; start < k; start += blockSize) {
          const length = Math.min(blockSize, k - start);
          const block = row % 2 ? tieBlock(rand, length, 2 ** bits - 1) : Array.from({ length }, () => (rand() - 0.5) * 0.1);
          w.set(block, row * k + start);
        }
      }
      const got = quantizeBlockwise(w, { n, k, bits, blockSize });
      assert.deepEqual(readCodes(got), referenceCodes(w, n, k, bits, blockSize));
    });
  }
});

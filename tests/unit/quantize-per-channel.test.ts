// quantizePerChannel against a plain reference written from its definition (scale = max|row| / 63,
// code = clamp(round half up(value / scale), ±63), codes transposed to [k, n]) on data built to hit
// every edge: exact .5 ties, zeros and negative zeros, rows of zeros, huge and tiny magnitudes, and
// shapes that are not multiples of the transpose tile.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INT8_CHANNEL_MAX, quantizePerChannel } from '../../server/src/model/quantize';
import { seededRandom } from '../helpers/random';

function reference(w: Float32Array, n: number, k: number): { codes: Int8Array; scales: Float32Array } {
  const codes = new Int8Array(n * k);
  const scales = new Float32Array(n);
  for (let row = 0; row < n; row++) {
    const values = Array.from(w.subarray(row * k, (row + 1) * k));
    const max = values.reduce((m, v) => (Number.isNaN(m) || Number.isNaN(v) ? NaN : Math.max(m, Math.abs(v))), 0);
    const scale = Math.fround(max > 0 ? max / INT8_CHANNEL_MAX : 1);
    scales[row] = scale;
    values.forEach((v, i) => {
      const q = v / scale;
      const rounded = Math.floor(q) + (q - Math.floor(q) >= 0.5 ? 1 : 0); // half up, as Math.round
      codes[i * n + row] = Number.isNaN(q) ? 0 : Math.min(INT8_CHANNEL_MAX, Math.max(-INT8_CHANNEL_MAX, rounded));
    });
  }
  return { codes, scales };
}

/**
 * A row of exact .5 ties (odd multiples of half its scale, both signs) and their float32 neighbours one
 * ulp either side. The scale is an odd 17-bit integer times a power of two: 63·scale and every tie stay
 * exact in float32, while 1 / scale is inexact, so a quantizer that multiplies by the reciprocal, or
 * rounds the quotient to float32, lands some of them on the other side.
 */
function tieRow(rand: () => number, k: number): number[] {
  const scale = (2 * Math.floor(rand() * 2 ** 16) + 1) * 2 ** Math.floor(rand() * 20 - 30);
  const row = Array.from({ length: k }, () => {
    const tie = (Math.floor(rand() * 253) - 126) * 0.5 * scale;
    const step = Math.floor(rand() * 3) - 1; // the tie, or the float32 just below or above it
    return step === 0 ? tie : nextFloat32(tie, step);
  });
  row[0] = 63 * scale; // the row's maximum: its scale comes back as `scale`
  return row;
}

/** The float32 `steps` (±1) ulps from `v`. */
function nextFloat32(v: number, steps: number): number {
  const f = new Float32Array([v]);
  const bits = new Int32Array(f.buffer);
  bits[0]! += v === 0 ? steps : Math.sign(v) * steps;
  return f[0]!;
}

function edgeMatrix(n: number, k: number, seed: number): Float32Array {
  const rand = seededRandom(seed);
  const w = new Float32Array(n * k);
  for (let row = 0; row < n; row++) {
    const kind = row % 7;
    let values: number[];
    if (kind === 0) values = tieRow(rand, k);
    else if (kind === 1) values = Array.from({ length: k }, (_, i) => (i % 3 === 0 ? 0 : i % 3 === 1 ? -0 : (rand() - 0.5) * 1e-3));
    else if (kind === 2)
      values = Array.from({ length: k }, (_, i) => (i % 2 ? -0 : 0)); // all zero: scale 1
    else if (kind === 3)
      values = Array.from({ length: k }, () => (rand() - 0.5) * 3e38); // near float32's largest
    else if (kind === 4)
      values = Array.from({ length: k }, () => (rand() - 0.5) * 1e-40); // subnormal float32
    else if (kind === 5)
      values = Array.from({ length: k }, (_, i) => (i === 1 ? -1000 : (rand() - 0.5) * 2)); // one outlier, negative
    else values = Array.from({ length: k }, () => (rand() - 0.5) * 0.1);
    w.set(values, row * k);
  }
  return w;
}

describe('int8 per-channel quantization', () => {
  for (const [n, k] of [
    [1, 1],
    [7, 5],
    [64, 64],
    [65, 63],
    [130, 200],
    [300, 129],
  ] as const) {
    it(`${n}×${k}: codes and scales equal the reference bit for bit`, () => {
      const w = edgeMatrix(n, k, n * 1000 + k);
      const got = quantizePerChannel(w, { n, k });
      const want = reference(w, n, k);
      assert.deepEqual(got.scales, want.scales);
      assert.deepEqual(got.codes, want.codes);
    });
  }

  it('exact .5 ties round up (toward +∞) in both signs, and the clamp holds at ±63', () => {
    // scale 1 (max 63): values −2.5, −1.5, −0.5, 0.5, 1.5, 2.5, 62.5, −62.5, 63
    const w = Float32Array.of(-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 62.5, -62.5, 63);
    const { codes, scales } = quantizePerChannel(w, { n: 1, k: w.length });
    assert.deepEqual(Array.from(scales), [1]);
    assert.deepEqual(Array.from(codes), [-2, -1, 0, 1, 2, 3, 63, -62, 63]);
  });

  it('a NaN makes its row scale 1 and its code 0, like the reference', () => {
    const w = Float32Array.of(0.5, Number.NaN, -3, 100, 1, 2);
    const got = quantizePerChannel(w, { n: 2, k: 3 });
    assert.deepEqual(got, { n: 2, k: 3, ...reference(w, 2, 3) });
    assert.equal(got.scales[0], 1);
  });
});

// The shorter ways a graph build reads weights give exactly what the plain ones give: 16-bit floats
// widened in place from the upper half of the float32 buffer, every BF16/F16 pattern straight to half
// bits (float32ToHalfArray of the float32 values), a tensor read into the caller's buffer (or a part of
// one) or a range of rows in every stored dtype, a buffer of the wrong length refused, and a graph built
// through them equal to one built through readFloat32 alone.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { bfloat16ArrayToFloat32, float32ToHalfArray, halfArrayToFloat32, storedToHalfBitsInPlace, widenBfloat16, widenHalf } from '../../server/src/model/half';
import { WeightStore } from '../../server/src/model/checkpoint';
import { buildDecoderGraph } from '../../server/src/model/graph/decoder';
import { SafetensorsFile, writeSafetensors } from '../../server/src/model/safetensors';
import { seededRandom } from '../helpers/random';
import { makeTinyWeights, TINY_QWEN2, writeTinyCheckpoint } from '../helpers/tiny-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-weight-read-');
after(() => rmSync(root, { recursive: true, force: true }));

/** All 65,536 16-bit patterns. */
const everyPattern = () => Uint16Array.from({ length: 65_536 }, (_, i) => i);
const bitsOf = (f: Float32Array) => new Uint32Array(f.buffer, f.byteOffset, f.length);

/** `src` copied into the upper half of a fresh float32 buffer of its length, and widened there. */
function widenedInPlace(src: Uint16Array, widen: (s: Uint16Array, out: Float32Array) => void): Float32Array {
  const out = new Float32Array(src.length);
  const upper = new Uint16Array(out.buffer, 2 * src.length, src.length);
  upper.set(src);
  widen(upper, out);
  return out;
}

describe('16-bit conversions without a second buffer', () => {
  it('BF16 and F16 widened in place equal the copying conversions, bit for bit, for every pattern', () => {
    assert.deepEqual(bitsOf(widenedInPlace(everyPattern(), widenBfloat16)), bitsOf(bfloat16ArrayToFloat32(everyPattern())));
    assert.deepEqual(bitsOf(widenedInPlace(everyPattern(), widenHalf)), bitsOf(halfArrayToFloat32(everyPattern())));
  });

  it('every BF16 and F16 pattern goes to the half bits float32ToHalfArray gives for its float32 value', () => {
    const bf16 = everyPattern();
    storedToHalfBitsInPlace(bf16, 'BF16');
    assert.deepEqual(bf16, float32ToHalfArray(bfloat16ArrayToFloat32(everyPattern())));
    const f16 = everyPattern();
    storedToHalfBitsInPlace(f16, 'F16');
    assert.deepEqual(f16, float32ToHalfArray(halfArrayToFloat32(everyPattern())));
  });
});

describe('SafetensorsFile reads into a given buffer', () => {
  const rand = seededRandom(5);
  const values = Float32Array.from({ length: 3 * 37 }, () => (rand() - 0.5) * 2 ** Math.floor(rand() * 40 - 20));
  values[3] = -0;
  values[7] = 0;
  const bf16 = Uint16Array.from({ length: values.length }, () => Math.floor(rand() * 65_536)); // NaNs and infinities too
  const path = join(root, 'mixed.safetensors');
  writeSafetensors(path, [
    { name: 'f32', shape: [3, 37], dtype: 'F32', data: values },
    { name: 'f16', shape: [3, 37], dtype: 'F16', data: values },
    { name: 'bf16', shape: [3, 37], dtype: 'BF16', data: bf16 },
    { name: 'scalar', shape: [], dtype: 'BF16', data: Uint16Array.of(0xbf80) },
    { name: 'empty', shape: [0, 4], dtype: 'F16', data: new Float32Array(0) },
  ]);

  it('readFloat32Into a part of a larger buffer equals readFloat32 and leaves the rest alone', () => {
    const f = SafetensorsFile.open(path);
    try {
      for (const name of ['f32', 'f16', 'bf16', 'scalar', 'empty']) {
        const want = f.readFloat32(name);
        const big = new Float32Array(want.length + 10).fill(7);
        f.readFloat32Into(name, big.subarray(4, 4 + want.length));
        assert.deepEqual(bitsOf(big.subarray(4, 4 + want.length)), bitsOf(want), name);
        assert.deepEqual([...big.subarray(0, 4), ...big.subarray(4 + want.length)], Array(10).fill(7), name);
      }
      assert.deepEqual(Array.from(f.readFloat32('scalar')), [-1]);
      assert.throws(() => f.readFloat32Into('f32', new Float32Array(3 * 37 - 1)), /111 values do not fit a buffer of 110/);
    } finally {
      f.close();
    }
  });

  it('readRowsInto a range of rows equals that slice of readFloat32; a range that is not whole rows is refused', () => {
    const f = SafetensorsFile.open(path);
    try {
      for (const name of ['f32', 'f16', 'bf16']) {
        const all = f.readFloat32(name);
        const rows = new Float32Array(2 * 37);
        f.readRowsInto(name, 1, rows);
        assert.deepEqual(bitsOf(rows), bitsOf(all.subarray(37, 3 * 37)), name);
      }
      assert.throws(() => f.readRowsInto('f32', 2, new Float32Array(2 * 37)), /not whole rows of \[3,37\]/);
      assert.throws(() => f.readRowsInto('f32', 0, new Float32Array(36)), /not whole rows/);
    } finally {
      f.close();
    }
  });

  it('readHalfBits equals float32ToHalfArray(readFloat32) for every stored dtype', () => {
    const f = SafetensorsFile.open(path);
    try {
      for (const name of ['f32', 'f16', 'bf16', 'scalar', 'empty']) assert.deepEqual(f.readHalfBits(name), float32ToHalfArray(f.readFloat32(name)), name);
    } finally {
      f.close();
    }
  });
});

describe('graph build from a source with and without the shorter reads', () => {
  for (const quantization of [8, 4] as const) {
    it(`int${quantization}: every initializer's bytes are the same from a WeightStore and from a readFloat32-only source`, () => {
      const dir = join(root, `tiny-${quantization}`);
      writeTinyCheckpoint(dir, makeTinyWeights(TINY_QWEN2, 3), { dtype: 'F16' });
      const store = WeightStore.open(dir);
      try {
        const options = { attention: 'plain', weightType: 'float32', quantization } as const;
        const fast = buildDecoderGraph(TINY_QWEN2, store, options).initializers;
        const plain = buildDecoderGraph(TINY_QWEN2, { readFloat32: (n) => store.readFloat32(n) }, options).initializers;
        assert.deepEqual(
          plain.map((w) => w.name),
          fast.map((w) => w.name),
        );
        for (const [i, w] of fast.entries()) assert.deepEqual(Buffer.from(w.bytes()), Buffer.from(plain[i]!.bytes()), w.name);
      } finally {
        store.close();
      }
    });
  }
});

// safetensors round trips (F32, F16, BF16 bits, metadata, scalar and empty shapes), the half/bfloat16
// conversions checked exhaustively against values derived independently, and every kind of damaged
// file failing with a ModelFileError that names the file and the problem.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { bfloat16ArrayToFloat32, bfloat16BitsToFloat, float32ToHalfArray, floatToHalfBits, halfArrayToFloat32, halfBitsToFloat } from '../../server/src/model/half';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../server/src/model/safetensors';
import { modelFileError } from '../helpers/model-file-error';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-safetensors-');
after(() => rmSync(root, { recursive: true, force: true }));
let fileCount = 0;
const newPath = () => join(root, `f${fileCount++}.safetensors`);

function withFile<T>(path: string, fn: (f: SafetensorsFile) => T): T {
  const f = SafetensorsFile.open(path);
  try {
    return fn(f);
  } finally {
    f.close();
  }
}

/** A file laid out by hand: 8-byte length, the header bytes as given, then `data`. */
function rawFile(header: string | object, data: Uint8Array = new Uint8Array(0), claimedLength?: bigint): string {
  const path = newPath();
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(claimedLength ?? BigInt(h.length));
  writeFileSync(path, Buffer.concat([len, h, data]));
  return path;
}

// float32 neighbours, by bit pattern (positive finite values only)
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function f32Step(v: number, ulps: number): number {
  f32[0] = v;
  u32[0] = u32[0]! + ulps;
  return f32[0]!;
}

describe('safetensors round trip', () => {
  it('F32, F16 and BF16 (raw bits), metadata, scalar and empty shapes', () => {
    const path = newPath();
    const f16Values = Float32Array.of(0.5, -2, 1024, 65504, 2 ** -24, -0, 1 / 3); // 1/3 is rounded
    const bf16Bits = Uint16Array.of(0x3f80, 0xc000, 0x7f80, 0x0001, 0x4049, 0x8000);
    const tensors: TensorToWrite[] = [
      { name: 'odd.f16', shape: [7], dtype: 'F16', data: f16Values }, // 14 bytes: what follows is unaligned
      { name: 'matrix', shape: [2, 3], dtype: 'F32', data: Float32Array.of(1, -2.5, 3e-8, 1e30, -0, 7) },
      { name: 'scalar', shape: [], dtype: 'F32', data: Float32Array.of(42.25) },
      { name: 'empty', shape: [0], dtype: 'F32', data: new Float32Array(0) },
      { name: 'empty.3d', shape: [2, 0, 3], dtype: 'F16', data: new Float32Array(0) },
      { name: 'bf16', shape: [3, 2], dtype: 'BF16', data: bf16Bits },
      { name: 'half.bits', shape: [2], dtype: 'F16', data: Uint16Array.of(0x3c00, 0xfc00) },
    ];
    const metadata = { format: 'pt', note: 'café — non-ASCII metadata' };
    writeSafetensors(path, tensors, metadata);

    const bytes = readFileSync(path);
    assert.equal((8 + Number(bytes.readBigUInt64LE(0))) % 8, 0, 'the data section starts 8-byte aligned, counted in bytes');
    assert.deepEqual(
      readdirSync(root).filter((n) => n.includes('.tmp-')),
      [],
      'no temp file left',
    );

    withFile(path, (f) => {
      assert.deepEqual(f.metadata, metadata);
      assert.deepEqual([...f.tensors.keys()].sort(), tensors.map((t) => t.name).sort());
      for (const t of tensors) {
        assert.equal(f.info(t.name).dtype, t.dtype);
        assert.deepEqual(f.info(t.name).shape, t.shape);
      }
      assert.deepEqual(Array.from(f.readFloat32('odd.f16')), [0.5, -2, 1024, 65504, 2 ** -24, -0, 0.333251953125]);
      assert.ok(Object.is(f.readFloat32('odd.f16')[5], -0), 'negative zero survives F16');
      assert.deepEqual(f.readFloat32('matrix'), Float32Array.of(1, -2.5, 3e-8, 1e30, -0, 7));
      assert.deepEqual(Array.from(f.readFloat32('scalar')), [42.25]);
      assert.equal(f.readFloat32('empty').length, 0);
      assert.equal(f.readFloat32('empty.3d').length, 0);
      assert.deepEqual(Array.from(f.readFloat32('bf16')), [1, -2, Infinity, 2 ** -133, 3.140625, -0]);
      const raw = f.readRaw('bf16');
      assert.deepEqual(
        Array.from({ length: 6 }, (_, i) => raw.readUInt16LE(2 * i)),
        Array.from(bf16Bits),
      );
      assert.deepEqual(Array.from(f.readFloat32('half.bits')), [1, -Infinity]);
      assert.throws(() => f.readFloat32('nope'), modelFileError(path, /missing tensor "nope"/));
    });
  });

  it('a tensor with the wrong number of values fails before anything is left on disk', () => {
    const path = newPath();
    assert.throws(() => writeSafetensors(path, [{ name: 'w', shape: [2, 2], dtype: 'F32', data: new Float32Array(3) }]), /3 values for shape \[2,2\]/);
    assert.deepEqual(
      readdirSync(root).filter((n) => n.startsWith(path.split('/').pop()!)),
      [],
      'neither the file nor its temp file exists',
    );
  });

  it('values given as functions are made one tensor at a time, each when its turn to be written comes', () => {
    const path = newPath();
    const made: string[] = [];
    const lazy = (name: string, values: number[], dtype: 'F32' | 'F16') => ({
      name,
      shape: [values.length],
      dtype,
      data: () => {
        made.push(name);
        return Float32Array.from(values);
      },
    });
    writeSafetensors(path, [lazy('a', [1, 2], 'F32'), lazy('b', [0.5, -3], 'F16'), lazy('c', [7], 'F32')]);
    assert.deepEqual(made, ['a', 'b', 'c']);
    withFile(path, (f) => {
      assert.deepEqual(Array.from(f.readFloat32('a')), [1, 2]);
      assert.deepEqual(Array.from(f.readFloat32('b')), [0.5, -3]);
      assert.deepEqual(Array.from(f.readFloat32('c')), [7]);
    });
  });

  it('a zero-size tensor sharing its offset with the next tensor is not an overlap, in any header order', () => {
    const path = rawFile(
      {
        a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
        b: { dtype: 'F32', shape: [0], data_offsets: [4, 4] },
        c: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      },
      new Uint8Array(Float32Array.of(3, 5).buffer),
    );
    withFile(path, (f) => {
      assert.deepEqual(Array.from(f.readFloat32('a')), [5]);
      assert.deepEqual(Array.from(f.readFloat32('c')), [3]);
      assert.equal(f.readFloat32('b').length, 0);
    });
  });
});

describe('half and bfloat16 conversions', () => {
  const isNaNPattern = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;

  it('decodes hand-checked half values', () => {
    const cases: [number, number][] = [
      [0x0000, 0],
      [0x3c00, 1],
      [0xc000, -2],
      [0x3555, 0.333251953125],
      [0x7bff, 65504], // largest finite
      [0x0400, 2 ** -14], // smallest normal
      [0x03ff, 1023 * 2 ** -24], // largest subnormal
      [0x0001, 2 ** -24], // smallest subnormal
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    for (const [bits, value] of cases) assert.equal(halfBitsToFloat(bits), value, `0x${bits.toString(16)}`);
    assert.ok(Object.is(halfBitsToFloat(0x8000), -0));
    assert.ok(Number.isNaN(halfBitsToFloat(0x7e00)) && Number.isNaN(halfBitsToFloat(0xfc01)));
  });

  it('all 65536 patterns: decoding is monotonic and sign-symmetric, re-encoding gives the pattern back', () => {
    let previous = -Infinity;
    for (let h = 0; h <= 0x7c00; h++) {
      const v = halfBitsToFloat(h);
      assert.ok(v > previous || h === 0, `decode is increasing at 0x${h.toString(16)}`);
      previous = v;
      assert.ok(Object.is(halfBitsToFloat(h | 0x8000), -v), `sign of 0x${h.toString(16)}`);
    }
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const decoded = halfArrayToFloat32(all);
    const reencoded = float32ToHalfArray(decoded);
    for (let h = 0; h < 65536; h++) {
      assert.ok(Object.is(decoded[h], Math.fround(halfBitsToFloat(h))), `array decode of 0x${h.toString(16)}`);
      if (isNaNPattern(h)) {
        assert.ok(isNaNPattern(reencoded[h]!), `NaN 0x${h.toString(16)} stays a NaN`); // payload and sign are not kept
      } else {
        assert.equal(reencoded[h], h, `0x${h.toString(16)} round-trips`);
        assert.equal(floatToHalfBits(decoded[h]!), h);
      }
    }
  });

  it('rounds to nearest, ties to even, between every pair of neighbouring halves (subnormals included)', () => {
    for (let h = 0; h < 0x7c00; h++) {
      const lo = halfBitsToFloat(h);
      const hi = halfBitsToFloat(h + 1); // 0x7c00 is +inf: the tie above 65504 rounds to it
      const mid = h === 0x7bff ? 65520 : (lo + hi) / 2; // exact in float32: 12 significant bits
      const even = h % 2 === 0 ? h : h + 1;
      for (const sign of [0, 0x8000]) {
        const s = sign ? -1 : 1;
        assert.equal(floatToHalfBits(s * mid), sign | even, `tie between 0x${h.toString(16)} and 0x${(h + 1).toString(16)}`);
        assert.equal(floatToHalfBits(s * f32Step(mid, -1)), sign | h, `just below the tie after 0x${h.toString(16)}`);
        assert.equal(floatToHalfBits(s * f32Step(mid, 1)), sign | (h + 1), `just above the tie after 0x${h.toString(16)}`);
      }
    }
  });

  it('overflow, underflow, infinities and NaN', () => {
    assert.equal(floatToHalfBits(65519.99), 0x7bff);
    assert.equal(floatToHalfBits(65536), 0x7c00);
    assert.equal(floatToHalfBits(3.4028234663852886e38), 0x7c00); // float32 max
    assert.equal(floatToHalfBits(-1e10), 0xfc00);
    assert.equal(floatToHalfBits(Infinity), 0x7c00);
    assert.equal(floatToHalfBits(-Infinity), 0xfc00);
    assert.ok(isNaNPattern(floatToHalfBits(NaN)));
    assert.equal(floatToHalfBits(2 ** -25), 0x0000, 'half the smallest subnormal ties to even zero');
    assert.equal(floatToHalfBits(2 ** -26), 0x0000);
    assert.equal(floatToHalfBits(1.401298464324817e-45), 0x0000, 'smallest float32 subnormal');
    assert.equal(floatToHalfBits(-(2 ** -30)), 0x8000, 'negative underflow keeps its sign');
    assert.equal(floatToHalfBits(-0), 0x8000);
    assert.equal(floatToHalfBits(3 * 2 ** -25), 0x0002, '1.5 ulp of the smallest subnormal ties to even 2 ulp');
    assert.equal(floatToHalfBits(2 ** -14 - 2 ** -25), 0x0400, 'rounding up from the largest subnormal carries into the smallest normal');
  });

  it('bfloat16: all 65536 patterns decode to sign × 2^(e−127) × (1 + m/128), subnormals and specials included', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const decoded = bfloat16ArrayToFloat32(all);
    for (let b = 0; b < 65536; b++) {
      const sign = b & 0x8000 ? -1 : 1;
      const e = (b >> 7) & 0xff;
      const m = b & 0x7f;
      const expected = e === 0xff ? (m ? NaN : sign * Infinity) : e === 0 ? sign * m * 2 ** -133 : sign * 2 ** (e - 127) * (1 + m / 128);
      assert.ok(Object.is(decoded[b], expected), `0x${b.toString(16)}: ${decoded[b]} vs ${expected}`);
      assert.ok(Object.is(bfloat16BitsToFloat(b), expected));
    }
  });
});

describe('damaged safetensors files', () => {
  const good = (): { path: string; headerLength: number; size: number } => {
    const path = newPath();
    writeSafetensors(path, [
      { name: 'a', shape: [4], dtype: 'F32', data: Float32Array.of(1, 2, 3, 4) },
      { name: 'b', shape: [2], dtype: 'F32', data: Float32Array.of(5, 6) },
    ]);
    const bytes = readFileSync(path);
    return { path, headerLength: Number(bytes.readBigUInt64LE(0)), size: bytes.length };
  };
  const f32Entry = (shape: number[], offsets: number[]) => ({ dtype: 'F32', shape, data_offsets: offsets });

  it('truncated inside the length prefix', () => {
    const { path } = good();
    truncateSync(path, 5);
    assert.throws(() => SafetensorsFile.open(path), modelFileError(path, /truncated: 5 bytes is too short/));
  });

  it('truncated inside the header', () => {
    const { path, headerLength } = good();
    truncateSync(path, 8 + Math.floor(headerLength / 2));
    assert.throws(() => SafetensorsFile.open(path), modelFileError(path, new RegExp(`header claims ${headerLength} bytes but the file has ${8 + Math.floor(headerLength / 2)}`)));
  });

  it('truncated inside the data', () => {
    const { path, size } = good();
    truncateSync(path, size - 4);
    assert.throws(() => SafetensorsFile.open(path), modelFileError(path, /truncated or corrupt: tensor "b" ends at byte 24 of a 20-byte data section/));
  });

  it('a header length larger than the file (and one beyond any sane size)', () => {
    const small = rawFile({}, new Uint8Array(0), 1000n);
    assert.throws(() => SafetensorsFile.open(small), modelFileError(small, /header claims 1000 bytes but the file has 10/));
    const huge = rawFile({}, new Uint8Array(0), 2n ** 63n);
    assert.throws(() => SafetensorsFile.open(huge), modelFileError(huge, /header claims \d+ bytes/));
  });

  it('offsets that point past the end of the data', () => {
    const path = rawFile({ w: f32Entry([16], [0, 64]) }, new Uint8Array(16));
    assert.throws(() => SafetensorsFile.open(path), modelFileError(path, /tensor "w" ends at byte 64 of a 16-byte data section/));
  });

  it('overlapping tensors', () => {
    const path = rawFile({ a: f32Entry([4], [0, 16]), b: f32Entry([4], [8, 24]) }, new Uint8Array(24));
    assert.throws(() => SafetensorsFile.open(path), modelFileError(path, /tensors "a" and "b" overlap/));
  });

  it('a byte range that does not match dtype × shape', () => {
    const short = rawFile({ w: f32Entry([2, 2], [0, 8]) }, new Uint8Array(16));
    assert.throws(() => SafetensorsFile.open(short), modelFileError(short, /data_offsets \[0, 8\] hold 8 bytes but F32\[2,2\] needs 16/));
    const reversed = rawFile({ w: f32Entry([2], [8, 0]) }, new Uint8Array(16));
    assert.throws(() => SafetensorsFile.open(reversed), modelFileError(reversed, /data_offsets \[8, 0\]/));
  });

  it('malformed entries: unknown dtype (inherited property names too), bad shape, bad offsets, bad metadata', () => {
    const cases: [object, RegExp][] = [
      [{ w: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, /unsupported dtype "F8"/],
      [{ w: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } }, /unsupported dtype "toString"/],
      [{ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, /invalid shape \[-1\]/],
      [{ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, /invalid data_offsets \[0\]/],
      [{ w: 7 }, /header entry is not an object/],
      [{ __metadata__: { epoch: 3 } }, /"__metadata__" must be an object of string values/],
    ];
    for (const [header, problem] of cases) {
      const path = rawFile(header, new Uint8Array(16));
      assert.throws(() => SafetensorsFile.open(path), modelFileError(path, problem));
    }
  });

  it('a header that is not JSON, or not a JSON object', () => {
    const text = rawFile('{"w": {"dtype": "F32", ', new Uint8Array(4));
    assert.throws(() => SafetensorsFile.open(text), modelFileError(text, /corrupt header JSON/));
    const array = rawFile('[1, 2]');
    assert.throws(() => SafetensorsFile.open(array), modelFileError(array, /header is not a JSON object/));
  });

  it('a missing file, and a folder where the file should be', () => {
    const missing = join(root, 'absent.safetensors');
    assert.throws(() => SafetensorsFile.open(missing), modelFileError(missing, /cannot open: ENOENT/));
    assert.throws(() => SafetensorsFile.open(root), modelFileError(root, /not a regular file/));
  });
});

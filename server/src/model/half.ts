// IEEE half and bfloat16 conversions, table-free so they work on any slice without setup.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> IEEE binary16 bits, round to nearest even. */
export function floatToHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

/** IEEE binary16 bits -> float32 value. */
export function halfBitsToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits -> float32 value (bf16 is the top half of a float32). */
export function bfloat16BitsToFloat(b: number): number {
  u32[0] = b << 16;
  return f32[0]!;
}

export function float32ToHalfArray(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = floatToHalfBits(src[i]!);
  return out;
}

export function halfArrayToFloat32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = halfBitsToFloat(src[i]!);
  return out;
}

export function bfloat16ArrayToFloat32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  widenBfloat16(src, out);
  return out;
}

/**
 * bfloat16 `src` -> float32 `out` (same length). Front to back, so `src` may be the upper half of
 * `out`'s own bytes: value i is read before bytes 4i..4i+3 are written, and those lie below value i+1.
 */
export function widenBfloat16(src: Uint16Array, out: Float32Array): void {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
}

/** IEEE half `src` -> float32 `out`, front to back like widenBfloat16 (so in place from the upper half). */
export function widenHalf(src: Uint16Array, out: Float32Array): void {
  for (let i = 0; i < src.length; i++) out[i] = halfBitsToFloat(src[i]!);
}

let bfloat16HalfTable: Uint16Array | undefined;
let halfHalfTable: Uint16Array | undefined;

/** Every 16-bit pattern through `convert`: 128 KiB, built once, so a conversion is one lookup. */
function table16(convert: (bits: number) => number): Uint16Array {
  const t = new Uint16Array(65_536);
  for (let b = 0; b < t.length; b++) t[b] = convert(b);
  return t;
}

/**
 * Stored 16-bit floats -> the IEEE half bits float32ToHalfArray gives for their float32 values, in
 * place. Table-built from the very same conversions, so the bits are identical by construction
 * (F16 is the identity but for NaN payloads, which become the one quiet NaN).
 */
export function storedToHalfBitsInPlace(bits: Uint16Array, dtype: 'BF16' | 'F16'): void {
  if (dtype === 'BF16') bfloat16HalfTable ??= table16((b) => floatToHalfBits(bfloat16BitsToFloat(b)));
  else halfHalfTable ??= table16((h) => floatToHalfBits(halfBitsToFloat(h)));
  const t = dtype === 'BF16' ? bfloat16HalfTable! : halfHalfTable!;
  for (let i = 0; i < bits.length; i++) bits[i] = t[bits[i]!]!;
}

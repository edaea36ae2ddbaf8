// GGUF v3 writer, from the format description in ggml's gguf.h / docs/gguf.md. All numbers little-endian.
//
//   header        u32 magic "GGUF" | u32 version=3 | u64 tensor_count | u64 kv_count
//   metadata      kv_count x { string key | u32 value_type | value }
//   tensor infos  tensor_count x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding       zeros up to a multiple of `general.alignment` (default 32)
//   data          each tensor at its offset (relative to the data start), each padded to the alignment
//
// A string is u64 byte length + UTF-8 bytes (no terminator). An array is u32 item type + u64 count + items.
// ggml lists dimensions fastest-first (ne[0] = columns), the reverse of a row-major shape.
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { float32ToHalfArray } from '../half';
import { GGML_BLOCK, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, quantizeQ4_0, quantizeQ8_0 } from './ggml-quants';

/** GGUF metadata value types (gguf_type). */
export const GgufValueType = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;
export type GgufScalarType = Exclude<keyof typeof GgufValueType, 'array'>;
type ScalarValue = number | bigint | boolean | string;

export type GgufKv = { key: string; type: GgufScalarType; value: ScalarValue } | { key: string; type: 'array'; itemType: GgufScalarType; values: readonly ScalarValue[] };

/** Small constructors so call sites read like the key table they mirror. */
export const kv = {
  str: (key: string, value: string): GgufKv => ({ key, type: 'string', value }),
  u32: (key: string, value: number): GgufKv => ({ key, type: 'uint32', value }),
  i32: (key: string, value: number): GgufKv => ({ key, type: 'int32', value }),
  f32: (key: string, value: number): GgufKv => ({ key, type: 'float32', value }),
  bool: (key: string, value: boolean): GgufKv => ({ key, type: 'bool', value }),
  strArray: (key: string, values: readonly string[]): GgufKv => ({ key, type: 'array', itemType: 'string', values }),
  i32Array: (key: string, values: readonly number[]): GgufKv => ({ key, type: 'array', itemType: 'int32', values }),
};

/** ggml tensor types Kiln writes (ggml_type enum values). */
export const GgmlType = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const;
export type GgmlTypeName = keyof typeof GgmlType;
/** Bytes per block of `BLOCK_VALUES[type]` values. */
const BLOCK_BYTES: Record<GgmlTypeName, number> = { F32: 4, F16: 2, Q4_0: Q4_0_BLOCK_BYTES, Q8_0: Q8_0_BLOCK_BYTES };
const BLOCK_VALUES: Record<GgmlTypeName, number> = { F32: 1, F16: 1, Q4_0: GGML_BLOCK, Q8_0: GGML_BLOCK };

export interface GgufTensor {
  name: string;
  /** Row-major shape as in PyTorch, e.g. [out, in]; written reversed (ggml order). */
  shape: readonly number[];
  type: GgmlTypeName;
  /** Produces the values when the tensor is written, so only one tensor is in memory at a time. */
  data: () => Float32Array;
}

export const GGUF_MAGIC = 0x46554747; // bytes "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Grows a list of small buffers: the header and metadata, assembled once. */
class ByteSink {
  readonly parts: Buffer[] = [];
  length = 0;

  private push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  u8(v: number): void {
    const b = Buffer.alloc(1);
    b.writeUInt8(v);
    this.push(b);
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }
  scalar(type: GgufScalarType, v: ScalarValue, key: string): void {
    const b = Buffer.alloc(8);
    const n = () => {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`GGUF key "${key}": expected a finite number for ${type}, got ${String(v)}`);
      return v;
    };
    const int = (min: number, max: number) => {
      const x = n();
      if (!Number.isInteger(x) || x < min || x > max) throw new Error(`GGUF key "${key}": ${x} does not fit ${type}`);
      return x;
    };
    switch (type) {
      case 'string':
        if (typeof v !== 'string') throw new Error(`GGUF key "${key}": expected a string`);
        this.string(v);
        return;
      case 'bool':
        if (typeof v !== 'boolean') throw new Error(`GGUF key "${key}": expected a boolean`);
        this.u8(v ? 1 : 0);
        return;
      case 'uint8':
        this.push(Buffer.from([int(0, 255)]));
        return;
      case 'int8':
        b.writeInt8(int(-128, 127));
        this.push(b.subarray(0, 1));
        return;
      case 'uint16':
        b.writeUInt16LE(int(0, 0xffff));
        this.push(b.subarray(0, 2));
        return;
      case 'int16':
        b.writeInt16LE(int(-0x8000, 0x7fff));
        this.push(b.subarray(0, 2));
        return;
      case 'uint32':
        b.writeUInt32LE(int(0, 0xffffffff));
        this.push(b.subarray(0, 4));
        return;
      case 'int32':
        b.writeInt32LE(int(-0x80000000, 0x7fffffff));
        this.push(b.subarray(0, 4));
        return;
      case 'float32':
        b.writeFloatLE(n());
        this.push(b.subarray(0, 4));
        return;
      case 'float64':
        b.writeDoubleLE(n());
        this.push(b);
        return;
      case 'uint64':
        b.writeBigUInt64LE(BigInt(typeof v === 'bigint' ? v : int(0, Number.MAX_SAFE_INTEGER)));
        this.push(b);
        return;
      case 'int64':
        b.writeBigInt64LE(BigInt(typeof v === 'bigint' ? v : int(-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)));
        this.push(b);
        return;
    }
  }
  zeros(count: number): void {
    if (count > 0) this.push(Buffer.alloc(count));
  }
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** Byte size of a tensor's data (before padding). */
export function tensorByteSize(t: Pick<GgufTensor, 'shape' | 'type'>): number {
  return (t.shape.reduce((a, b) => a * b, 1) / BLOCK_VALUES[t.type]) * BLOCK_BYTES[t.type];
}

/** Header, metadata and tensor infos, padded so the data section starts aligned. Exported for tests. */
export function encodeGgufHeader(metadata: readonly GgufKv[], tensors: readonly GgufTensor[]): { header: Buffer; offsets: number[]; alignment: number } {
  const keys = new Set<string>();
  for (const m of metadata) {
    if (keys.has(m.key)) throw new Error(`GGUF: duplicate metadata key "${m.key}"`);
    keys.add(m.key);
  }
  const alignKv = metadata.find((m) => m.key === 'general.alignment');
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (alignKv) {
    // llama.cpp requires general.alignment to be a u32 power of two
    if (alignKv.type !== 'uint32' || typeof alignKv.value !== 'number' || alignKv.value <= 0 || (alignKv.value & (alignKv.value - 1)) !== 0) {
      throw new Error('GGUF: general.alignment must be a uint32 power of two');
    }
    alignment = alignKv.value;
  }
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`GGUF: duplicate tensor "${t.name}"`);
    names.add(t.name);
    if (t.shape.length < 1 || t.shape.length > 4 || t.shape.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new Error(`GGUF: tensor "${t.name}" has invalid shape ${JSON.stringify(t.shape)} (1 to 4 positive dimensions)`);
    }
    // ggml blocks run along a row (ne[0], the last row-major dimension)
    if (t.shape[t.shape.length - 1]! % BLOCK_VALUES[t.type] !== 0)
      throw new Error(`GGUF: tensor "${t.name}" rows of ${t.shape[t.shape.length - 1]} values cannot be ${t.type} blocks of ${BLOCK_VALUES[t.type]}`);
  }

  const s = new ByteSink();
  s.u32(GGUF_MAGIC);
  s.u32(GGUF_VERSION);
  s.u64(tensors.length);
  s.u64(metadata.length);
  for (const m of metadata) {
    s.string(m.key);
    s.u32(GgufValueType[m.type]);
    if (m.type === 'array') {
      s.u32(GgufValueType[m.itemType]);
      s.u64(m.values.length);
      for (const v of m.values) s.scalar(m.itemType, v, m.key);
    } else {
      s.scalar(m.type, m.value, m.key);
    }
  }
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    s.string(t.name);
    s.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) s.u64(t.shape[i]!); // ggml order: ne[0] is the last row-major dim
    s.u32(GgmlType[t.type]);
    s.u64(offset);
    offsets.push(offset);
    offset = alignUp(offset + tensorByteSize(t), alignment);
  }
  s.zeros(alignUp(s.length, alignment) - s.length);
  return { header: Buffer.concat(s.parts, s.length), offsets, alignment };
}

/** Encodes one tensor's values as its ggml type. */
function tensorBytes(t: GgufTensor): Buffer {
  const values = t.data();
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (values.length !== count) throw new Error(`GGUF: tensor "${t.name}" has ${values.length} values but shape ${JSON.stringify(t.shape)} needs ${count}`);
  if (t.type === 'Q8_0' || t.type === 'Q4_0') return Buffer.from((t.type === 'Q8_0' ? quantizeQ8_0 : quantizeQ4_0)(values).buffer);
  const typed = t.type === 'F16' ? float32ToHalfArray(values) : values;
  // Buffer.from(arrayBuffer) shares memory: no copy of the tensor (host is little-endian, as GGUF)
  return Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength);
}

/**
 * Writes a GGUF file: header first, then each tensor produced, written and released in turn.
 * Atomic: the file appears at `path` only when complete (written to a temporary name, then renamed).
 */
export async function writeGguf(path: string, metadata: readonly GgufKv[], tensors: readonly GgufTensor[]): Promise<{ bytes: number }> {
  const { header, offsets, alignment } = encodeGgufHeader(metadata, tensors);
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w');
  let position = 0;
  try {
    await writeAll(fh, header, position);
    position += header.length;
    const dataStart = position;
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i]!;
      if (position !== dataStart + offsets[i]!) throw new Error(`GGUF: internal offset mismatch at "${t.name}"`);
      const bytes = tensorBytes(t);
      await writeAll(fh, bytes, position);
      position += bytes.length;
      const pad = alignUp(position - dataStart, alignment) - (position - dataStart);
      if (pad > 0) {
        await writeAll(fh, Buffer.alloc(pad), position);
        position += pad;
      }
    }
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  return { bytes: position };
}

const MAX_WRITE = 256 * 1024 * 1024; // one write() call stays well under the 2 GiB syscall limit

async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, Math.min(MAX_WRITE, buf.length - done), position + done);
    done += bytesWritten;
  }
}

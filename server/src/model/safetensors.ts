// safetensors: an 8-byte little-endian header length, a JSON header of
// {name: {dtype, shape, data_offsets: [begin, end]}} (offsets relative to the data section), then data.
// Reads are lazy (one tensor at a time through a file descriptor) so a model is never held twice.
import { closeSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { ModelFileError } from './errors';
import { MODEL_FILE_CAPS, openRegularFile, readAt } from './read-model-file';
import { float32ToHalfArray, storedToHalfBitsInPlace, widenBfloat16, widenHalf } from './half';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private fd: number | undefined,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  /** Opens and validates the header: every offset must lie inside the file, tensors must not overlap. */
  static open(path: string): SafetensorsFile {
    let opened: { fd: number; size: number };
    try {
      // non-blocking, regular files only: a FIFO or device named *.safetensors is refused, never waited on
      opened = openRegularFile(path, 'weights file');
    } catch (err) {
      const problem = err instanceof ModelFileError ? err.problem : (err as Error).message;
      throw new ModelFileError(path, problem === 'not found' ? 'cannot open: ENOENT: no such file' : problem);
    }
    const fd = opened.fd;
    try {
      const { tensors, metadata } = readHeader(fd, path, opened.size);
      return new SafetensorsFile(path, fd, tensors, metadata);
    } catch (err) {
      closeSync(fd);
      throw err instanceof ModelFileError ? err : new ModelFileError(path, `cannot read: ${(err as Error).message}`);
    }
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new ModelFileError(this.path, `missing tensor "${name}"`);
    return t;
  }

  /** The tensor's bytes as stored. */
  readRaw(name: string): Buffer {
    const t = this.info(name);
    const buf = Buffer.allocUnsafe(t.end - t.begin);
    this.readStored(t, buf);
    return buf;
  }

  /** Reads a tensor's stored bytes from byte `skip` on into `into` (to its length). */
  private readStored(t: TensorInfo, into: Uint8Array, skip = 0): void {
    if (this.fd === undefined) throw new ModelFileError(this.path, 'file already closed');
    let done = 0;
    while (done < into.length) {
      const n = readSync(this.fd, into, done, into.length - done, t.begin + skip + done);
      if (n === 0) throw new ModelFileError(this.path, `unexpected end of file reading "${t.name}"`);
      done += n;
    }
  }

  /** The tensor as float32 values, converting F16/BF16/F64. */
  readFloat32(name: string): Float32Array {
    const out = new Float32Array(elementCount(this.info(name)));
    this.readFloat32Into(name, out);
    return out;
  }

  /**
   * The tensor as float32 values written into `out` (of exactly its element count). A 16-bit tensor is
   * read into the upper half of `out`'s own bytes and widened in place, so no other buffer is touched.
   */
  readFloat32Into(name: string, out: Float32Array): void {
    const t = this.info(name);
    const count = elementCount(t);
    if (out.length !== count) throw new Error(`tensor "${name}": ${count} values do not fit a buffer of ${out.length}`);
    this.readValuesInto(t, 0, out);
  }

  /** Rows [first, first + out.length / rowLength) of the tensor (rows along its first axis) as float32 into `out`, like readFloat32Into. */
  readRowsInto(name: string, first: number, out: Float32Array): void {
    const t = this.info(name);
    const rowLength = t.shape.length ? elementCount(t) / t.shape[0]! : 1;
    const rows = out.length / rowLength;
    if (!Number.isInteger(rows) || first < 0 || first + rows > (t.shape[0] ?? 1)) {
      throw new Error(`tensor "${name}": ${out.length} values from row ${first} are not whole rows of ${JSON.stringify(t.shape)}`);
    }
    this.readValuesInto(t, first * rowLength, out);
  }

  /** Values [first, first + out.length) of a tensor, converted to float32 into `out`. */
  private readValuesInto(t: TensorInfo, first: number, out: Float32Array): void {
    const count = out.length;
    const skip = first * DTYPE_BYTES[t.dtype];
    switch (t.dtype) {
      case 'F32':
        this.readStored(t, new Uint8Array(out.buffer, out.byteOffset, out.byteLength), skip);
        return;
      case 'F16':
      case 'BF16': {
        const stored = new Uint16Array(out.buffer, out.byteOffset + 2 * count, count);
        this.readStored(t, new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength), skip);
        if (t.dtype === 'BF16') widenBfloat16(stored, out);
        else widenHalf(stored, out);
        return;
      }
      case 'F64': {
        const values = new Float64Array(count); // 8 bytes a value do not fit in place
        this.readStored(t, new Uint8Array(values.buffer), skip);
        out.set(values);
        return;
      }
      default:
        throw new ModelFileError(this.path, `tensor "${t.name}" has dtype ${t.dtype}, expected a floating-point type`);
    }
  }

  /** The tensor as IEEE half bits, exactly float32ToHalfArray(readFloat32(name)); a 16-bit tensor never goes through float32. */
  readHalfBits(name: string): Uint16Array {
    const t = this.info(name);
    if (t.dtype !== 'BF16' && t.dtype !== 'F16') return float32ToHalfArray(this.readFloat32(name));
    const bits = new Uint16Array(elementCount(t));
    this.readStored(t, new Uint8Array(bits.buffer));
    storedToHalfBitsInPlace(bits, t.dtype);
    return bits;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

const elementCount = (t: TensorInfo) => t.shape.reduce((a, b) => a * b, 1);

function readHeader(fd: number, path: string, size: number): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  if (size < 8) throw new ModelFileError(path, `truncated: ${size} bytes is too short for a safetensors header`);
  const lenBuf = readAt(fd, 8, 0);
  if (lenBuf.length < 8) throw new ModelFileError(path, 'truncated while reading the header length');
  const headerLen = Number(lenBuf.readBigUInt64LE(0));
  if (headerLen > MODEL_FILE_CAPS.safetensorsHeader) {
    throw new ModelFileError(path, `corrupt: header claims ${headerLen} bytes, more than the ${MODEL_FILE_CAPS.safetensorsHeader} a safetensors header may have`);
  }
  if (8 + headerLen > size) throw new ModelFileError(path, `truncated or corrupt: header claims ${headerLen} bytes but the file has ${size}`);
  const headerBuf = readAt(fd, headerLen, 8);
  if (headerBuf.length < headerLen) throw new ModelFileError(path, `truncated while reading the ${headerLen}-byte header`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(headerBuf.toString('utf8'));
  } catch (err) {
    throw new ModelFileError(path, `corrupt header JSON: ${(err as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new ModelFileError(path, 'header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = size - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(entry, path);
      continue;
    }
    tensors.set(name, parseEntry(name, entry, { path, dataStart, dataLen }));
  }
  // by (begin, end): a zero-size tensor at the start of another one is not an overlap, in any header order
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.begin < sorted[i - 1]!.end) throw new ModelFileError(path, `tensors "${sorted[i - 1]!.name}" and "${sorted[i]!.name}" overlap`);
  }
  return { tensors, metadata };
}

function parseMetadata(entry: unknown, path: string): Record<string, string> {
  if (entry === null || entry === undefined) return {};
  if (typeof entry !== 'object' || Array.isArray(entry) || !Object.values(entry).every((v) => typeof v === 'string')) {
    throw new ModelFileError(path, '"__metadata__" must be an object of string values');
  }
  return entry as Record<string, string>;
}

/** The file a header entry is checked against: its path (for errors) and where its data bytes lie. */
interface DataRegion {
  path: string;
  dataStart: number;
  dataLen: number;
}

function parseEntry(name: string, entry: unknown, { path, dataStart, dataLen }: DataRegion): TensorInfo {
  const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof e !== 'object' || e === null) throw new ModelFileError(path, `tensor "${name}": header entry is not an object`);
  if (typeof e.dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, e.dtype)) throw new ModelFileError(path, `tensor "${name}": unsupported dtype ${JSON.stringify(e.dtype)}`);
  const dtype = e.dtype as SafetensorsDtype;
  if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new ModelFileError(path, `tensor "${name}": invalid shape ${JSON.stringify(e.shape)}`);
  const shape = e.shape as number[];
  const off = e.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isInteger(o) && o >= 0)) {
    throw new ModelFileError(path, `tensor "${name}": invalid data_offsets ${JSON.stringify(off)}`);
  }
  const [begin, end] = off as [number, number];
  const expected = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
  if (end < begin || end - begin !== expected) {
    throw new ModelFileError(path, `tensor "${name}": data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype}${JSON.stringify(shape)} needs ${expected}`);
  }
  if (end > dataLen) throw new ModelFileError(path, `truncated or corrupt: tensor "${name}" ends at byte ${end} of a ${dataLen}-byte data section`);
  return { name, dtype, shape, begin: dataStart + begin, end: dataStart + end };
}

export interface TensorToWrite {
  name: string;
  shape: number[];
  /** F32 writes the floats; F16 converts them; a Uint16Array is written as-is with the given dtype. */
  dtype: 'F32' | 'F16' | 'BF16';
  /** The values, or a function called when this tensor's turn to be written comes (a large checkpoint is never held whole). */
  data: Float32Array | Uint16Array | (() => Float32Array | Uint16Array);
}

function encode(t: TensorToWrite): Uint8Array {
  const count = t.shape.reduce((a, b) => a * b, 1);
  const data = typeof t.data === 'function' ? t.data() : t.data;
  if (data.length !== count) throw new Error(`tensor "${t.name}": ${data.length} values for shape ${JSON.stringify(t.shape)}`);
  if (t.dtype === 'F32') {
    if (!(data instanceof Float32Array)) throw new Error(`tensor "${t.name}": F32 needs a Float32Array`);
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  const bits = data instanceof Float32Array ? (t.dtype === 'F16' ? float32ToHalfArray(data) : null) : data;
  if (!bits) throw new Error(`tensor "${t.name}": BF16 must be given as raw Uint16Array bits`);
  return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
}

/** Writes a safetensors file atomically (temp file + rename), one tensor at a time. */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  // pads in bytes, not UTF-16 units (names and metadata may be non-ASCII): keeps the data section 8-byte aligned
  const headerBytes = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, ' ')]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    try {
      writeSync(fd, len);
      writeSync(fd, headerBytes);
      for (const t of tensors) writeSync(fd, encode(t));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true }); // a failed write leaves neither a temp file nor a partial model
    throw err;
  }
}

// Reading the small files of a model folder (config.json, tokenizer.json, kiln.json, the shard index,
// adapter_config.json, a safetensors header) without trusting them: a size cap per file, regular files
// only (decided on the opened descriptor, so a swap after a check cannot slip through), and a
// non-blocking open, so a FIFO or a device named config.json is refused at once instead of hanging
// the reader or streaming an endless /dev/zero into memory.
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { ModelFileError } from './errors';

const MiB = 2 ** 20;

/** The most bytes Kiln reads from each JSON file of a model folder; real files are far smaller. */
export const MODEL_FILE_CAPS = {
  /** config.json of a 70B model is ~1 KB. */
  config: 1 * MiB,
  /** The largest LLaMA-family tokenizer.json files are ~10–20 MB (a 256k vocabulary with merges). */
  tokenizer: 64 * MiB,
  /** tokenizer_config.json can list every added token and a chat template. */
  tokenizerConfig: 16 * MiB,
  /** model.safetensors.index.json of a 70B model is ~60 KB. */
  shardIndex: 16 * MiB,
  adapterConfig: 1 * MiB,
  kiln: 1 * MiB,
  /** A safetensors JSON header (a 70B shard's is ~100 KB; the format's own limit is 100 MB). */
  safetensorsHeader: 100 * MiB,
} as const;

/** Opens `file` for reading without blocking and without following it into anything but a regular file. */
export function openRegularFile(file: string, what = 'file'): { fd: number; size: number } {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO with no writer returns at once (a plain open waits for one forever)
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ModelFileError(file, `not found`);
    throw new ModelFileError(file, `cannot be read: ${(err as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new ModelFileError(file, `is not a regular file (${kindOf(st)}); a model ${what} must be a plain file`);
    return { fd, size: st.size };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

function kindOf(st: ReturnType<typeof fstatSync>): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isDirectory()) return 'a folder';
  if (st.isSocket()) return 'a socket';
  return 'not a plain file';
}

/** Reads exactly `length` bytes at `position`, or fewer when the file ends first. */
export function readAt(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

export interface ReadModelFileOptions {
  /** Most bytes accepted (see MODEL_FILE_CAPS). */
  maxBytes: number;
  /** The problem reported when the file does not exist (default "not found"). */
  missing?: string;
}

/** The file's text, refused when it is not a regular file or larger than `maxBytes`. */
export function readModelText(file: string, options: ReadModelFileOptions): string {
  let opened: { fd: number; size: number };
  try {
    opened = openRegularFile(file);
  } catch (err) {
    if (options.missing && err instanceof ModelFileError && err.problem === 'not found') throw new ModelFileError(file, options.missing);
    throw err;
  }
  try {
    if (opened.size > options.maxBytes) throw new ModelFileError(file, `is ${opened.size} bytes, more than the ${options.maxBytes} a model file of its kind may have`);
    // one byte past the cap: a file that grew after fstat is refused rather than read without bound
    const buf = readAt(opened.fd, options.maxBytes + 1, 0);
    if (buf.length > options.maxBytes) throw new ModelFileError(file, `grew past ${options.maxBytes} bytes while it was read`);
    return buf.toString('utf8');
  } finally {
    closeSync(opened.fd);
  }
}

/** Parses a model folder's JSON file (bounded as readModelText); `invalid` words the parse error. */
export function readModelJson(file: string, options: ReadModelFileOptions & { invalid?: string }): unknown {
  const text = readModelText(file, options);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ModelFileError(file, `${options.invalid ?? 'invalid JSON'}: ${(err as Error).message}`);
  }
}

/** As readModelJson, and the top level must be an object. */
export function readModelJsonObject(file: string, options: ReadModelFileOptions & { invalid?: string }): Record<string, unknown> {
  const json = readModelJson(file, options);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ModelFileError(file, 'expected a JSON object');
  return json as Record<string, unknown>;
}

/** Whether a path names anything, a dangling link included: it then gets the reader's clear error instead of being skipped. */
export function pathExists(file: string): boolean {
  return lstatSync(file, { throwIfNoEntry: false }) !== undefined;
}

/** sha256 of a regular file, read in chunks through a non-blocking descriptor (a FIFO is refused, never waited on). */
export function sha256OfRegularFile(file: string, what = 'file'): string {
  const { fd, size } = openRegularFile(file, what);
  try {
    const hash = createHash('sha256');
    const chunk = 8 * 2 ** 20;
    for (let at = 0; at < size; at += chunk) hash.update(readAt(fd, Math.min(chunk, size - at), at));
    return hash.digest('hex');
  } finally {
    closeSync(fd);
  }
}

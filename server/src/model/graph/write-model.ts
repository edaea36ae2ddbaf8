// Writes a built graph as `model.onnx` + `model.onnx.data` (external data), one weight at a time,
// into a temporary folder that is renamed into place: a crash never leaves a half-written model, and
// processes building the same graph at once (two `kiln complete` runs, two editor windows) never
// delete a folder the other has published or is loading.
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { onnx } from 'onnx-proto';
import type { GraphBuilder } from './onnx-graph';

export const MODEL_FILE = 'model.onnx';
export const DATA_FILE = 'model.onnx.data';
/** Page-aligned weights let ORT map the data file instead of reading it. */
export const PAGE_ALIGN = 4096;

export interface WrittenModel {
  dir: string;
  modelPath: string;
  weightBytes: number;
}

export interface PublishOptions {
  /** Runs on the finished temporary folder just before it is renamed into place (a completion record). */
  finish?: (tmpDir: string, weightBytes: number) => void;
  /** Whether a folder found at `dir` is a finished copy of the same content, written by another process: it is kept. */
  isComplete?: (dir: string) => boolean;
}

export function writeModel(builder: GraphBuilder, dir: string, opsets: Record<string, number>, publish: PublishOptions = {}): WrittenModel {
  mkdirSync(dirname(dir), { recursive: true });
  // pid and time are not unique: model worker threads share the pid and can start in the same ms
  const tmp = `${dir}.tmp-${process.pid}-${randomUUID()}`;
  mkdirSync(tmp, { recursive: true });
  try {
    const offsets = new Map<string, [number, number]>();
    let offset = 0;
    let weightBytes = 0;
    const fd = openSync(join(tmp, DATA_FILE), 'w');
    try {
      for (const w of builder.initializers) {
        const bytes = w.bytes();
        const at = writeAligned(fd, bytes, offset, PAGE_ALIGN);
        offsets.set(w.name, [at, bytes.byteLength]);
        offset = at + bytes.byteLength;
        weightBytes += bytes.byteLength;
      }
    } finally {
      closeSync(fd);
    }
    const proto = builder.toModelProto(DATA_FILE, offsets, opsets);
    writeFileSync(join(tmp, MODEL_FILE), onnx.ModelProto.encode(proto).finish());
    publish.finish?.(tmp, weightBytes);
    moveIntoPlace(tmp, dir, publish.isComplete ?? (() => false));
    return { dir, modelPath: join(dir, MODEL_FILE), weightBytes };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Whether a rename failed only because something is already at the target. */
function targetTaken(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EPERM';
}

/**
 * Renames `tmp` to `dir`. A complete folder already there (another writer won the race) is kept and
 * `tmp` discarded; anything else there (a stale or damaged build) is first renamed aside, never
 * deleted in place, so a reader never sees a half-removed folder.
 */
function moveIntoPlace(tmp: string, dir: string, isComplete: (dir: string) => boolean): void {
  for (let attempt = 0; ; attempt++) {
    try {
      renameSync(tmp, dir);
      return;
    } catch (err) {
      if (!targetTaken(err) || attempt >= 3) throw err;
    }
    if (isComplete(dir)) {
      rmSync(tmp, { recursive: true, force: true });
      return;
    }
    const aside = `${dir}.stale-${process.pid}-${Date.now()}-${attempt}`;
    try {
      renameSync(dir, aside);
    } catch (err) {
      if (existsSync(dir)) throw err; // else another writer moved it first: try again
    }
    rmSync(aside, { recursive: true, force: true });
  }
}

/** Writes `bytes` into `fd` at the first multiple of `align` at or after `offset` (zero padding before); returns that position. */
export function writeAligned(fd: number, bytes: Uint8Array, offset: number, align: number): number {
  const pad = (align - (offset % align)) % align;
  if (pad) writeSync(fd, new Uint8Array(pad), 0, pad, offset);
  writeSync(fd, bytes, 0, bytes.byteLength, offset + pad);
  return offset + pad;
}

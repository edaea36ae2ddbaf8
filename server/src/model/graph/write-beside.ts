// A second graph over the same weights, written into the folder of one already written
// (write-model.ts): every initializer whose bytes equal one in that folder's model.onnx.data is a
// reference into it, and only the rest go into a data file of the second graph's own. ORT maps
// external data files into memory, so sessions of both graphs then share the weights' pages: a
// trainer's step and loss graphs hold the frozen base once, not twice (1.9 GB at the 0.5B shape).
// Equal names are not trusted to mean equal bytes (small constants are numbered per graph): the bytes
// are compared, a chunk at a time, against the file.
import { randomUUID } from 'node:crypto';
import { closeSync, openSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { readStoredWeights } from './adapter-graph';
import type { GraphBuilder } from './onnx-graph';
import { DATA_FILE, MODEL_FILE, PAGE_ALIGN, writeAligned } from './write-model';

/** Compared this many bytes at a time, so no second copy of a large weight is ever held. */
const COMPARE_CHUNK = 1 << 24;

/** Whether `bytes` equal the file's `bytes.byteLength` bytes at `offset`. */
function sameAsFile(fd: number, offset: number, bytes: Uint8Array, scratch: Buffer): boolean {
  for (let at = 0; at < bytes.byteLength; at += COMPARE_CHUNK) {
    const n = Math.min(COMPARE_CHUNK, bytes.byteLength - at);
    if (readSync(fd, scratch, 0, n, offset + at) !== n) return false;
    if (Buffer.compare(scratch.subarray(0, n), bytes.subarray(at, at + n)) !== 0) return false;
  }
  return true;
}

export interface WrittenBeside {
  modelPath: string;
  /** Bytes referenced in the first graph's data file. */
  sharedBytes: number;
  /** Bytes in this graph's own data file. */
  ownBytes: number;
}

/** Writes `builder` as `<name>.onnx` (+ `<name>.onnx.data`) into `dir`, which holds a graph written by writeModel. */
export function writeModelBeside(builder: GraphBuilder, dir: string, name: string, opsets: Record<string, number>): WrittenBeside {
  const stored = readStoredWeights(join(dir, MODEL_FILE));
  const modelFile = `${name}.onnx`;
  const dataFile = `${modelFile}.data`;
  const tmp = (file: string) => join(dir, `${file}.tmp-${process.pid}-${randomUUID()}`);
  const tmpData = tmp(dataFile);
  const tmpModel = tmp(modelFile);
  try {
    const offsets = new Map<string, [number, number] | [number, number, string]>();
    let offset = 0;
    let sharedBytes = 0;
    let ownBytes = 0;
    const base = openSync(join(dir, DATA_FILE), 'r');
    const own = openSync(tmpData, 'w');
    try {
      const scratch = Buffer.allocUnsafe(COMPARE_CHUNK);
      for (const w of builder.initializers) {
        const bytes = w.bytes();
        const s = stored.get(w.name);
        if (s && s.length === bytes.byteLength && sameAsFile(base, s.offset, bytes, scratch)) {
          offsets.set(w.name, [s.offset, s.length, DATA_FILE]);
          sharedBytes += s.length;
          continue;
        }
        const at = writeAligned(own, bytes, offset, PAGE_ALIGN); // page-aligned: ORT maps this file too
        offsets.set(w.name, [at, bytes.byteLength]);
        offset = at + bytes.byteLength;
        ownBytes += bytes.byteLength;
      }
    } finally {
      closeSync(own);
      closeSync(base);
    }
    writeFileSync(tmpModel, onnx.ModelProto.encode(builder.toModelProto(dataFile, offsets, opsets)).finish());
    // data before model: a model file in place only ever refers to data in place
    renameSync(tmpData, join(dir, dataFile));
    renameSync(tmpModel, join(dir, modelFile));
    return { modelPath: join(dir, modelFile), sharedBytes, ownBytes };
  } finally {
    rmSync(tmpData, { force: true });
    rmSync(tmpModel, { force: true });
  }
}

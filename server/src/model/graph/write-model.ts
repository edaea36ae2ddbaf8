// Writes a built graph as `model.onnx` + `model.onnx.data` (external data), one weight at a time,
// into a temporary folder that is renamed into place: a crash never leaves a half-written model.
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { onnx } from 'onnx-proto';
import type { GraphBuilder } from './onnx-graph';

export const MODEL_FILE = 'model.onnx';
export const DATA_FILE = 'model.onnx.data';
/** Page-aligned weights let ORT map the data file instead of reading it. */
const ALIGN = 4096;

export interface WrittenModel {
  dir: string;
  modelPath: string;
  weightBytes: number;
}

export function writeModel(builder: GraphBuilder, dir: string, opsets: Record<string, number>): WrittenModel {
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const offsets = new Map<string, [number, number]>();
    let offset = 0;
    let weightBytes = 0;
    const fd = openSync(join(tmp, DATA_FILE), 'w');
    try {
      for (const w of builder.initializers) {
        const bytes = w.bytes();
        const pad = (ALIGN - (offset % ALIGN)) % ALIGN;
        if (pad) writeSync(fd, new Uint8Array(pad), 0, pad, offset);
        offset += pad;
        writeSync(fd, bytes, 0, bytes.byteLength, offset);
        offsets.set(w.name, [offset, bytes.byteLength]);
        offset += bytes.byteLength;
        weightBytes += bytes.byteLength;
      }
    } finally {
      closeSync(fd);
    }
    const proto = builder.toModelProto(DATA_FILE, offsets, opsets);
    writeFileSync(join(tmp, MODEL_FILE), onnx.ModelProto.encode(proto).finish());
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    return { dir, modelPath: join(dir, MODEL_FILE), weightBytes };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

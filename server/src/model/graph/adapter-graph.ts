// An adapter's graph is written beside its base graph, in the base's cache folder, and its base
// weights are references into the base's `model.onnx.data` (ONNX external data: location, offset,
// length); only the LoRA factors go into a file of its own. So a fine-tuned adapter costs its own
// size on disk, not another copy of the model, and it runs on whatever precision the base was built
// in. The files sit in the base's folder because ORT refuses external data outside the model's
// folder (a `../` location and a symbolic link both fail its path check; measured with ORT 1.30).
//
//   graphs/<base key>/model.onnx, model.onnx.data      the base graph (build-cache.ts)
//                     lora-<key>.onnx                   the adapted graph: base weights → model.onnx.data
//                     lora-<key>.onnx.data              the LoRA factors A [r,in], B·scale [out,r]
//                     lora-<key>.json                   written last: the build record
import { randomUUID } from 'node:crypto';
import { closeSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { ELEM, ELEM_BYTES, type GraphBuilder } from './onnx-graph';
import { DATA_FILE, MODEL_FILE, writeAligned } from './write-model';

/** The prefix of an adapter graph's files in its base's folder. */
export const ADAPTER_GRAPH_PREFIX = 'lora-';

export interface AdapterGraphFiles {
  model: string;
  data: string;
  record: string;
}

export function adapterGraphFiles(key: string): AdapterGraphFiles {
  return { model: `${ADAPTER_GRAPH_PREFIX}${key}.onnx`, data: `${ADAPTER_GRAPH_PREFIX}${key}.onnx.data`, record: `${ADAPTER_GRAPH_PREFIX}${key}.json` };
}

/** What an adapter graph's record says about it. */
export interface AdapterGraphRecord {
  /** Bytes of the LoRA factors (the adapter's own data file, without alignment). */
  loraBytes: number;
  /** Bytes of the base weights the graph reads from model.onnx.data. */
  sharedBytes: number;
  modelFileBytes: number;
  dataFileBytes: number;
}

/** One base weight as the base graph stores it: where in model.onnx.data, its type and shape. */
interface StoredWeight {
  offset: number;
  length: number;
  dataType: number;
  dims: number[];
}

/** The external-data entries of a built graph's model.onnx, by initializer name. */
export function readStoredWeights(modelPath: string): Map<string, StoredWeight> {
  const proto = onnx.ModelProto.decode(readFileSync(modelPath));
  const out = new Map<string, StoredWeight>();
  for (const t of proto.graph?.initializer ?? []) {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const kv = new Map((t.externalData ?? []).map((e) => [e.key, e.value]));
    if (kv.get('location') !== DATA_FILE) continue;
    out.set(t.name ?? '', { offset: Number(kv.get('offset') ?? 0), length: Number(kv.get('length')), dataType: t.dataType ?? 0, dims: (t.dims ?? []).map(Number) });
  }
  return out;
}

/** LoRA factors are small (r rows or columns): 64-byte (cache line) alignment, not the base's 4 KiB pages. */
const ALIGN = 64;

export interface WriteAdapterGraphOptions {
  /** The base graph's folder (complete: model.onnx and model.onnx.data in place). */
  baseDir: string;
  key: string;
  opsets: Record<string, number>;
  /** Whether a weight is the adapter's own (written here) rather than a base weight (shared). */
  isAdapterWeight: (name: string) => boolean;
  /** More fields for the record (what was built, for `kiln model cache`). */
  describe?: object;
}

/**
 * Writes the adapter graph's files into the base folder: the factors and the model under temporary
 * names, renamed into place, then the record. Every base weight must be found in the base graph at
 * the same type and size, so a base folder from other weights or options is refused, not misread.
 */
export function writeAdapterGraph(builder: GraphBuilder, o: WriteAdapterGraphOptions): AdapterGraphRecord & { modelPath: string } {
  const files = adapterGraphFiles(o.key);
  const stored = readStoredWeights(join(o.baseDir, MODEL_FILE));
  const tmp = (file: string) => join(o.baseDir, `${file}.tmp-${process.pid}-${randomUUID()}`);
  const tmpData = tmp(files.data);
  const tmpModel = tmp(files.model);
  try {
    const offsets = new Map<string, [number, number] | [number, number, string]>();
    let offset = 0;
    let loraBytes = 0;
    let sharedBytes = 0;
    const fd = openSync(tmpData, 'w');
    try {
      for (const w of builder.initializers) {
        if (!o.isAdapterWeight(w.name)) {
          const s = stored.get(w.name);
          const length = w.shape.reduce((a, b) => a * b, 1) * ELEM_BYTES[w.elemType];
          if (!s || s.dataType !== ELEM[w.elemType] || s.length !== length || s.dims.join() !== w.shape.join()) {
            throw new Error(`the base graph in ${o.baseDir} does not hold the weight ${w.name} as [${w.shape}] ${w.elemType}: it was built from other weights or options`);
          }
          offsets.set(w.name, [s.offset, s.length, DATA_FILE]);
          sharedBytes += s.length;
          continue;
        }
        const bytes = w.bytes();
        const at = writeAligned(fd, bytes, offset, ALIGN);
        offsets.set(w.name, [at, bytes.byteLength]);
        offset = at + bytes.byteLength;
        loraBytes += bytes.byteLength;
      }
    } finally {
      closeSync(fd);
    }
    writeFileSync(tmpModel, onnx.ModelProto.encode(builder.toModelProto(files.data, offsets, o.opsets)).finish());
    // Data before model before record: a record only ever describes files already in place.
    renameSync(tmpData, join(o.baseDir, files.data));
    renameSync(tmpModel, join(o.baseDir, files.model));
    const record: AdapterGraphRecord = {
      loraBytes,
      sharedBytes,
      modelFileBytes: statSync(join(o.baseDir, files.model)).size,
      dataFileBytes: statSync(join(o.baseDir, files.data)).size,
    };
    const tmpRecord = tmp(files.record);
    writeFileSync(tmpRecord, JSON.stringify({ ...o.describe, ...record }));
    renameSync(tmpRecord, join(o.baseDir, files.record));
    return { ...record, modelPath: join(o.baseDir, files.model) };
  } finally {
    rmSync(tmpData, { force: true });
    rmSync(tmpModel, { force: true });
  }
}

/** The adapter graph's record when its files are complete and undamaged; undefined means rebuild. */
export function readAdapterGraphRecord(baseDir: string, key: string): AdapterGraphRecord | undefined {
  const files = adapterGraphFiles(key);
  try {
    const r = JSON.parse(readFileSync(join(baseDir, files.record), 'utf8')) as Partial<AdapterGraphRecord>;
    const sizeIs = (file: string, bytes: unknown) => typeof bytes === 'number' && statSync(join(baseDir, file)).size === bytes;
    if (typeof r.loraBytes !== 'number' || typeof r.sharedBytes !== 'number' || !sizeIs(files.model, r.modelFileBytes) || !sizeIs(files.data, r.dataFileBytes)) return undefined;
    return r as AdapterGraphRecord;
  } catch {
    return undefined; // a file missing, or the record unreadable
  }
}

// Built ONNX models are a cache, keyed by the weights' content hash, the config, the graph options
// and the builder version, so a restart loads the graph instead of rebuilding it.
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ModelConfig } from '../config';
import { DATA_FILE, MODEL_FILE } from './write-model';

/** `$XDG_CACHE_HOME/kiln` (or ~/.cache/kiln) unless the host (the extension's storage) says otherwise. */
export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kiln');
}

function sha256File(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/**
 * sha256 of a weights file, remembered by (path, size, mtime) in `<cacheDir>/hashes.json`
 * so multi-gigabyte checkpoints are hashed once, not at every start.
 */
export function weightsFileHash(path: string, cacheDir: string): string {
  const st = statSync(path);
  // ctime and inode too: a copy that keeps size and mtime (cp -p, rsync -t, tar) still changes them
  const id = `${path}|${st.size}|${st.mtimeMs}|${st.ctimeMs}|${st.ino}`;
  const index = join(cacheDir, 'hashes.json');
  const known = readHashIndex(index);
  const cached = known[id];
  if (typeof cached === 'string' && /^[0-9a-f]{64}$/.test(cached)) return cached;
  const hash = sha256File(path);
  known[id] = hash;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${index}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(known));
  renameSync(tmp, index);
  return hash;
}

/** The remembered hashes; a missing or damaged index reads as empty (everything is rehashed). */
function readHashIndex(index: string): Record<string, unknown> {
  try {
    const known: unknown = JSON.parse(readFileSync(index, 'utf8'));
    if (typeof known === 'object' && known !== null && !Array.isArray(known)) return known as Record<string, unknown>;
  } catch {
    // missing or unparsable
  }
  return {};
}

export function graphCacheKey(parts: { weightHashes: string[]; config: ModelConfig; options: object; builderVersion: number }): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
}

/** Written last into a built graph's folder: a readable record whose file sizes still match marks the build complete. */
export const BUILD_META_FILE = 'kiln-build.json';

/** What kiln-build.json records about a finished build. */
export interface BuildMeta {
  weightBytes: number;
  /** Size of model.onnx and model.onnx.data as written: a truncated or replaced file fails the check. */
  modelFileBytes: number;
  dataFileBytes: number;
}

/** Records a finished build; call it after the graph's files are in place. */
export function writeBuildMeta(dir: string, weightBytes: number, extra: object = {}): BuildMeta {
  const meta: BuildMeta = { weightBytes, modelFileBytes: statSync(join(dir, MODEL_FILE)).size, dataFileBytes: statSync(join(dir, DATA_FILE)).size };
  writeFileSync(join(dir, BUILD_META_FILE), JSON.stringify({ ...extra, ...meta }));
  return meta;
}

/** Whether a folder holds a complete, undamaged build. */
export function isCompleteBuild(dir: string): boolean {
  return readBuildMeta(dir) !== undefined;
}

/** The build's record when the folder holds a complete, undamaged build; undefined means rebuild. */
function readBuildMeta(dir: string): BuildMeta | undefined {
  try {
    const meta = JSON.parse(readFileSync(join(dir, BUILD_META_FILE), 'utf8')) as Partial<BuildMeta>;
    const sizeIs = (file: string, bytes: unknown) => typeof bytes === 'number' && statSync(join(dir, file)).size === bytes;
    if (typeof meta.weightBytes !== 'number' || !sizeIs(MODEL_FILE, meta.modelFileBytes) || !sizeIs(DATA_FILE, meta.dataFileBytes)) return undefined;
    return meta as BuildMeta;
  } catch {
    return undefined; // a file missing, or the record unreadable
  }
}

/** The folder a built graph with this key lives in, and its build record when it is complete. */
export function cachedGraph(cacheDir: string, key: string): { dir: string; meta: BuildMeta | undefined } {
  const dir = join(cacheDir, 'graphs', key);
  return { dir, meta: readBuildMeta(dir) };
}

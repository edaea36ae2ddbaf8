// Built ONNX models are a cache, keyed by the weights' content hash, the config, the graph options
// and the builder version, so a restart loads the graph instead of rebuilding it.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
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
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
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
  const id = `${path}|${st.size}|${st.mtimeMs}`;
  const index = join(cacheDir, 'hashes.json');
  let known: Record<string, string> = {};
  try {
    known = JSON.parse(readFileSync(index, 'utf8'));
  } catch {
    known = {}; // missing or damaged index: rehash
  }
  const cached = known[id];
  if (cached) return cached;
  const hash = sha256File(path);
  known[id] = hash;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${index}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(known));
  renameSync(tmp, index);
  return hash;
}

export function graphCacheKey(parts: { weightHashes: string[]; config: ModelConfig; options: object; builderVersion: number }): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
}

/** Written last into a built graph's folder: its presence marks the build complete. */
export const BUILD_META_FILE = 'kiln-build.json';

/** The folder a built graph with this key lives in, and whether it is complete. */
export function cachedGraph(cacheDir: string, key: string): { dir: string; complete: boolean } {
  const dir = join(cacheDir, 'graphs', key);
  return { dir, complete: [MODEL_FILE, DATA_FILE, BUILD_META_FILE].every((f) => existsSync(join(dir, f))) };
}

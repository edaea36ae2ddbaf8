// The graph cache as a whole: what it holds (`kiln model cache`), when each graph was last used, and
// pruning to a size cap, least recently used first. A cache folder is one base graph with the
// adapter graphs written beside it (adapter-graph.ts); it is pruned as a unit, since its adapters
// read its weights. "Last used" is the folder's modification time, set on every load.
import { readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ADAPTER_GRAPH_PREFIX } from './adapter-graph';
import { BUILD_META_FILE, isCompleteBuild } from './build-cache';

/** The default size cap of the graph cache (`kiln.graphCacheLimitGB`). */
export const DEFAULT_GRAPH_CACHE_LIMIT_BYTES = 16 * 2 ** 30;
/** A graph loaded this recently may be in use by another window or process: pruning leaves it. */
export const RECENT_USE_MS = 10 * 60_000;
/** A temporary or set-aside folder this old is left over from a crash, not a build in progress. */
const LEFTOVER_AGE_MS = 60 * 60_000;

export interface CachedAdapterGraph {
  key: string;
  adapterDir?: string;
  bytes: number;
}

export interface CachedGraph {
  key: string;
  dir: string;
  /** All files of the folder, its adapter graphs included. */
  bytes: number;
  lastUsedMs: number;
  complete: boolean;
  /** From the build record: the checkpoint folder and how it was built. */
  modelDir?: string;
  precision?: string;
  adapters: CachedAdapterGraph[];
}

export interface GraphCacheListing {
  graphs: CachedGraph[];
  /** Temporary or set-aside folders (a build in progress, or left by a crash) and their bytes. */
  leftovers: { dir: string; bytes: number; ageMs: number }[];
  totalBytes: number;
}

function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += folderBytes(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

function readRecord(path: string): Record<string, unknown> {
  try {
    const r: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return typeof r === 'object' && r !== null ? (r as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function describePrecision(r: Record<string, unknown>): string | undefined {
  if (typeof r.quantization === 'number') return `int${r.quantization}`;
  return typeof r.weightType === 'string' ? r.weightType : undefined;
}

function adapterGraphs(dir: string): CachedAdapterGraph[] {
  const out: CachedAdapterGraph[] = [];
  for (const name of readdirSync(dir)) {
    const m = new RegExp(`^${ADAPTER_GRAPH_PREFIX}([0-9a-f]+)\\.json$`).exec(name);
    if (!m) continue;
    const record = readRecord(join(dir, name));
    const adapter = record.adapter as { dir?: unknown } | undefined;
    const files = readdirSync(dir).filter((f) => f.startsWith(`${ADAPTER_GRAPH_PREFIX}${m[1]}.`));
    out.push({
      key: m[1]!,
      adapterDir: typeof adapter?.dir === 'string' ? adapter.dir : undefined,
      bytes: files.reduce((a, f) => a + statSync(join(dir, f)).size, 0),
    });
  }
  return out;
}

/** Everything under `<cacheDir>/graphs`, least recently used first. A missing cache lists as empty. */
export function listGraphCache(cacheDir: string, now = Date.now()): GraphCacheListing {
  const root = join(cacheDir, 'graphs');
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return { graphs: [], leftovers: [], totalBytes: 0 };
  }
  const graphs: CachedGraph[] = [];
  const leftovers: GraphCacheListing['leftovers'] = [];
  for (const name of names) {
    const dir = join(root, name);
    try {
      const st = statSync(dir);
      if (!st.isDirectory()) continue;
      if (/\.(tmp|stale)-/.test(name)) {
        leftovers.push({ dir, bytes: folderBytes(dir), ageMs: now - st.mtimeMs });
        continue;
      }
      const record = readRecord(join(dir, BUILD_META_FILE));
      graphs.push({
        key: name,
        dir,
        bytes: folderBytes(dir),
        lastUsedMs: st.mtimeMs,
        complete: isCompleteBuild(dir),
        modelDir: typeof record.modelDir === 'string' ? record.modelDir : undefined,
        precision: describePrecision(record),
        adapters: adapterGraphs(dir),
      });
    } catch {
      // removed while listing (another process pruned it)
    }
  }
  graphs.sort((a, b) => a.lastUsedMs - b.lastUsedMs);
  const totalBytes = graphs.reduce((a, g) => a + g.bytes, 0) + leftovers.reduce((a, l) => a + l.bytes, 0);
  return { graphs, leftovers, totalBytes };
}

/** Records a load of the graph at `modelPath` (its folder's time is the LRU order). */
export function markGraphUsed(modelPath: string): void {
  const now = new Date();
  try {
    utimesSync(dirname(modelPath), now, now);
  } catch {
    // a read-only cache still loads; it only ages
  }
}

export interface PruneOptions {
  limitBytes: number;
  /** Folders never removed: the graph just loaded, and any other in use in this process. */
  keep?: readonly string[];
  /** Graphs used more recently than this are left (another window may be loading them); default RECENT_USE_MS. */
  recentMs?: number;
  now?: number;
  log?: (message: string) => void;
}

export interface PruneResult {
  removed: CachedGraph[];
  /** Bytes after pruning; above the limit when what is left is kept, recent or could not be removed. */
  totalBytes: number;
}

/** Removes a folder without a reader ever seeing it half-deleted: renamed aside first, then deleted. */
function removeFolder(dir: string): void {
  const aside = join(dirname(dir), `${basename(dir)}.stale-${process.pid}-${Date.now()}`);
  renameSync(dir, aside);
  rmSync(aside, { recursive: true, force: true });
}

/**
 * Brings the cache under `limitBytes`, least recently used first, never touching a kept or recent
 * graph. Leftovers of crashed builds older than an hour always go (folders, and an adapter graph's
 * temporary files inside a graph folder). Failures (a file held open on
 * Windows, a permission) skip that graph and are logged; pruning never fails a load.
 */
export function pruneGraphCache(cacheDir: string, o: PruneOptions): PruneResult {
  const now = o.now ?? Date.now();
  const listing = listGraphCache(cacheDir, now);
  let total = listing.totalBytes;
  for (const l of listing.leftovers) {
    if (l.ageMs < LEFTOVER_AGE_MS) continue;
    try {
      rmSync(l.dir, { recursive: true, force: true });
      total -= l.bytes;
    } catch (err) {
      o.log?.(`graph cache: could not remove ${l.dir}: ${(err as Error).message}`);
    }
  }
  // an adapter graph's temporary files left inside a graph folder by a crash
  for (const g of listing.graphs) {
    const crashed = readdirSync(g.dir).filter((f) => f.includes('.tmp-'));
    for (const name of crashed) {
      const path = join(g.dir, name);
      try {
        const st = statSync(path);
        if (now - st.mtimeMs < LEFTOVER_AGE_MS) continue;
        rmSync(path, { force: true });
        total -= st.size;
        g.bytes -= st.size;
      } catch {
        // gone already
      }
    }
    if (crashed.length > 0) {
      // removing a file touches the folder: keep its time, which is its last use
      try {
        utimesSync(g.dir, new Date(g.lastUsedMs), new Date(g.lastUsedMs));
      } catch {
        // a read-only cache only ages
      }
    }
  }
  const keep = new Set((o.keep ?? []).map((d) => join(d)));
  const recentMs = o.recentMs ?? RECENT_USE_MS;
  const removed: CachedGraph[] = [];
  for (const g of listing.graphs) {
    if (total <= o.limitBytes) break;
    if (keep.has(join(g.dir)) || now - g.lastUsedMs < recentMs) continue;
    try {
      removeFolder(g.dir);
      total -= g.bytes;
      removed.push(g);
      o.log?.(`graph cache: removed ${g.dir} (${(g.bytes / 2 ** 20).toFixed(0)} MiB, last used ${new Date(g.lastUsedMs).toISOString()})`);
    } catch (err) {
      o.log?.(`graph cache: could not remove ${g.dir}: ${(err as Error).message}`);
    }
  }
  return { removed, totalBytes: total };
}

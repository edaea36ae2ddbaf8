// `<storage>/models/<owner>--<name>` from a Hub repository: list it, fetch the files Kiln needs into
// `.partial/` (resumable, verified), move them into place, and write `kiln-download.json` last, so
// its presence means the folder is complete. Used by `kiln model download` and the VS Code command.
// The whole run is bounded (limits.ts): listing size and time, file caps, throughput, a deadline.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fetchFile, type FetchedFile, type Verification } from './fetch-file';
import { fetchListing, HubError, type HubFile, type HubOptions, repoIdProblem, type RepoListing, resolveHubOptions } from './hub';
import { type DownloadLimits, formatBytes, formatDuration, resolveLimits } from './limits';
import { type DownloadPlan, isSafeRelativePath, planDownload, shardsFromIndex } from './plan';
import { networkError, type RetryOptions, withRetries } from './retry';
import { linkedAbort } from './watchdogs';

export const MANIFEST_FILE = 'kiln-download.json';
export const PARTIAL_DIR = '.partial';
const PARTIAL_KEY = '.kiln-source';

export interface DownloadProgress {
  phase: 'listing' | 'downloading' | 'done';
  /** The file being fetched, its bytes on disk (resumed ones included) and its size when known. */
  file?: string;
  fileBytes: number;
  fileSize?: number;
  /** 1-based position of `file` among `fileCount`. */
  fileNumber: number;
  fileCount: number;
  /** All planned files: bytes on disk and the total when every size is known. */
  bytes: number;
  total?: number;
}

export interface DownloadOptions extends RetryOptions, DownloadLimits {
  /** `owner/name`. */
  repo: string;
  /** Branch, tag or commit (default `main`). */
  revision?: string;
  /** The model goes to `<storageDir>/models/<owner>--<name>`. */
  storageDir: string;
  baseUrl?: string;
  token?: string;
  /** Where `KILN_HUB_URL`, `HF_ENDPOINT` and `HF_TOKEN` are read (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** At most one progress event per interval, besides each file's start and end (default 100 ms). */
  progressIntervalMs?: number;
  onProgress?: (p: DownloadProgress) => void;
}

export interface ManifestFile {
  path: string;
  size: number;
  /** Of the bytes on disk, computed while they streamed. */
  sha256: string;
  /** What the Hub gave to check them against (absent in manifests written before it was recorded). */
  verifiedBy?: Verification;
}

export interface DownloadManifest {
  format: 'kiln-download-v1';
  repo: string;
  revision: string;
  commit?: string;
  hubUrl: string;
  files: ManifestFile[];
  completedAt: string;
}

export interface DownloadResult {
  dir: string;
  manifest: DownloadManifest;
  /** Bytes fetched by this run, and bytes an earlier interrupted run had already left. */
  fetchedBytes: number;
  resumedBytes: number;
  /** The folder already held this commit, complete; nothing was fetched. */
  alreadyComplete: boolean;
}

export function modelFolder(storageDir: string, repo: string): string {
  return join(storageDir, 'models', repo.replace('/', '--'));
}

/** The manifest of a complete download, or undefined for an incomplete or foreign folder. */
export function readManifest(dir: string): DownloadManifest | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as DownloadManifest;
    return m.format === 'kiln-download-v1' && Array.isArray(m.files) ? m : undefined;
  } catch {
    return undefined;
  }
}

function stillComplete(dir: string, m: DownloadManifest): boolean {
  return m.files.every((f) => isSafeRelativePath(f.path) && existsSync(join(dir, f.path)) && statSync(join(dir, f.path)).size === f.size);
}

const sum = (files: HubFile[]) => (files.length && files.every((f) => f.size !== undefined) ? files.reduce((n, f) => n + f.size!, 0) : undefined);

/** Aggregates per-file byte counts into throttled progress events. */
class ProgressReporter {
  private files: HubFile[] = [];
  private doneBytes = 0;
  private last = 0;

  constructor(private readonly o: DownloadOptions) {}

  plan(files: HubFile[]): void {
    this.files = files;
  }

  /** `fileBytes` of `fileSize` done in `file`; unless `force`, at most one event per progress interval. */
  report(phase: DownloadProgress['phase'], at: { file?: HubFile; fileBytes?: number; fileSize?: number; force?: boolean } = {}): void {
    const { file, fileBytes = 0, fileSize, force = true } = at;
    const now = Date.now();
    if (!this.o.onProgress || (!force && now - this.last < (this.o.progressIntervalMs ?? 100))) return;
    this.last = now;
    const n = file ? this.files.indexOf(file) + 1 : phase === 'done' ? this.files.length : 0;
    this.o.onProgress({ phase, file: file?.path, fileBytes, fileSize, fileNumber: n, fileCount: this.files.length, bytes: this.doneBytes + fileBytes, total: sum(this.files) });
  }

  finished(size: number): void {
    this.doneBytes += size;
  }
}

const active = new Set<string>();

/** `.partial/` keeps bytes only for the same source: another commit or Hub starts it afresh. */
async function preparePartial(partialDir: string, source: string): Promise<void> {
  const keyFile = join(partialDir, PARTIAL_KEY);
  const previous = await readFile(keyFile, 'utf8').catch(() => undefined);
  if (previous !== source) await rm(partialDir, { recursive: true, force: true });
  await mkdir(partialDir, { recursive: true });
  await writeFile(keyFile, source);
}

interface Installation {
  dir: string;
  partialDir: string;
  fetched: FetchedFile[];
  /** The manifest of the download this one replaces, if any. */
  previous: DownloadManifest | undefined;
  manifest: DownloadManifest;
}

/** Moves the verified files into place, drops files only the previous download had, then the manifest. */
async function install({ dir, partialDir, fetched, previous, manifest }: Installation): Promise<void> {
  await rm(join(dir, MANIFEST_FILE), { force: true }); // incomplete from here until the new manifest
  for (const f of fetched) {
    await mkdir(dirname(join(dir, f.path)), { recursive: true });
    await rename(join(partialDir, f.path), join(dir, f.path));
  }
  const kept = new Set(fetched.map((f) => f.path));
  for (const old of previous?.files ?? []) if (!kept.has(old.path) && isSafeRelativePath(old.path)) await rm(join(dir, old.path), { force: true });
  const tmp = join(partialDir, `${MANIFEST_FILE}.tmp`);
  await writeFile(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(tmp, join(dir, MANIFEST_FILE));
  await rm(partialDir, { recursive: true, force: true });
}

interface FetchContext {
  /** The caller's options, with `signal` replaced by the one the deadline also aborts. */
  o: DownloadOptions;
  limits: Required<DownloadLimits>;
  hub: HubOptions;
  listing: RepoListing;
  /** The commit (or the revision when the Hub gives none) every file is fetched at. */
  pinned: string;
  partialDir: string;
  progress: ProgressReporter;
}

const isWeights = (f: HubFile) => f.path.endsWith('.safetensors');

/** Fetches the planned files into `.partial/`: the shard index first, then the rest and its shards. */
async function fetchPlanned(c: FetchContext, plan: DownloadPlan): Promise<FetchedFile[]> {
  const fetched: FetchedFile[] = [];
  const fetchOne = async (f: HubFile) => {
    c.progress.report('downloading', { file: f, fileBytes: 0, fileSize: f.size });
    const got = await fetchFile({
      ...c.o,
      hub: c.hub,
      subject: { repo: c.o.repo, revision: c.pinned, file: f.path },
      expected: f,
      partialPath: join(c.partialDir, f.path),
      // Weights are as large as the listing says, and must say; everything else is read whole later.
      ...(isWeights(f) ? { sizeRequired: true } : { maxBytes: c.limits.maxSmallFileBytes }),
      minBytesPerSecond: c.limits.minBytesPerSecond,
      throughputWindowMs: c.limits.throughputWindowMs,
      onBytes: (bytes, size) => c.progress.report('downloading', { file: f, fileBytes: bytes, fileSize: size, force: false }),
    });
    c.progress.report('downloading', { file: f, fileBytes: got.size, fileSize: got.size });
    c.progress.finished(got.size);
    fetched.push(got);
  };
  let files = plan.files;
  if (plan.index) {
    c.progress.plan([plan.index, ...files]);
    await fetchOne(plan.index);
    const shards = shardsFromIndex(c.o.repo, await readFile(join(c.partialDir, plan.index.path), 'utf8'), c.listing.files);
    files = [plan.index, ...files, ...shards];
  }
  c.progress.plan(files);
  for (const f of files) if (f !== plan.index) await fetchOne(f);
  return fetched;
}

/** The listing, each attempt ending after `listingTimeoutMs`, retried like a file. */
function listRepository(o: DownloadOptions, limits: Required<DownloadLimits>, hub: HubOptions, revision: string): Promise<RepoListing> {
  const what = `listing ${o.repo} on ${hub.baseUrl}`;
  const once = async () => {
    const timeout = new HubError(`${what}: no answer within ${formatDuration(limits.listingTimeoutMs)}`, 'transient');
    const abort = linkedAbort(o.signal, { ms: limits.listingTimeoutMs, reason: () => timeout });
    try {
      return await fetchListing(hub, o.repo, revision, { signal: abort.signal, maxBytes: limits.maxListingBytes });
    } catch (err) {
      if (o.signal?.aborted) throw o.signal.reason ?? err;
      if (abort.signal.aborted) throw timeout;
      throw networkError(err, what);
    } finally {
      abort.dispose();
    }
  };
  return withRetries(once, o);
}

export async function downloadModel(given: DownloadOptions): Promise<DownloadResult> {
  const problem = repoIdProblem(given.repo);
  if (problem) throw new HubError(problem, 'usage');
  const hub = resolveHubOptions(given, given.env);
  const limits = resolveLimits(given);
  const expired = new HubError(`downloading ${given.repo} did not finish within ${formatDuration(limits.deadlineMs)} (the download's deadline)`, 'limit');
  const deadline = linkedAbort(given.signal, { ms: limits.deadlineMs, reason: () => expired });
  try {
    return await downloadWithin({ ...given, signal: deadline.signal }, limits, hub);
  } catch (err) {
    // Partial files are kept for every failure but bad bytes, so a re-run continues from them.
    if (err instanceof HubError && (err.kind === 'transient' || err === expired)) {
      throw new HubError(`${err.message}; run the download again to resume`, err.kind, err.status);
    }
    throw err;
  } finally {
    deadline.dispose();
  }
}

async function downloadWithin(o: DownloadOptions, limits: Required<DownloadLimits>, hub: HubOptions): Promise<DownloadResult> {
  const revision = o.revision || 'main';
  const progress = new ProgressReporter(o);
  progress.report('listing');
  const listing = await listRepository(o, limits, hub, revision);
  const plan = planDownload(o.repo, listing.files); // refuses .bin-only repos before anything is written
  const dir = resolve(modelFolder(o.storageDir, o.repo));
  const previous = readManifest(dir);
  if (previous && listing.commit && previous.repo === o.repo && previous.commit === listing.commit && stillComplete(dir, previous)) {
    return { dir, manifest: previous, fetchedBytes: 0, resumedBytes: 0, alreadyComplete: true };
  }
  if (active.has(dir)) throw new HubError(`a download into ${dir} is already running`, 'usage');
  active.add(dir);
  try {
    const pinned = listing.commit ?? revision; // every file from the same commit, even if the branch moves
    const partialDir = join(dir, PARTIAL_DIR);
    await preparePartial(partialDir, `${hub.baseUrl}\n${o.repo}\n${pinned}\n`);
    const fetched = await fetchPlanned({ o, limits, hub, listing, pinned, partialDir, progress }, plan);
    const manifest: DownloadManifest = {
      format: 'kiln-download-v1',
      repo: o.repo,
      revision,
      commit: listing.commit,
      hubUrl: hub.baseUrl,
      files: fetched.map(({ path, size, sha256, verifiedBy }) => ({ path, size, sha256, verifiedBy })),
      completedAt: new Date().toISOString(),
    };
    await install({ dir, partialDir, fetched, previous, manifest });
    progress.report('done');
    const resumedBytes = fetched.reduce((n, f) => n + f.resumedFrom, 0);
    return { dir, manifest, fetchedBytes: fetched.reduce((n, f) => n + f.size, 0) - resumedBytes, resumedBytes, alreadyComplete: false };
  } finally {
    active.delete(dir);
  }
}

const MISSING: Record<Verification, string | undefined> = { sha256: undefined, 'git-blob': undefined, size: 'no hash', nothing: 'no size, no hash' };
const NAMED_AT_MOST = 4;

/**
 * How the files were checked, for the CLI summary and the VS Code message: every file with no hash
 * (or no size) from the Hub is named as unverified, e.g.
 * `unverified: tokenizer.json (no hash); the other 4 verified by size and hash`.
 */
export function describeVerification(files: ManifestFile[]): string {
  const unverified = files.filter((f) => !f.verifiedBy || MISSING[f.verifiedBy]).sort((a, b) => a.path.localeCompare(b.path));
  if (!unverified.length) return 'size and hash of every file verified';
  const named = unverified.slice(0, NAMED_AT_MOST).map((f) => `${f.path} (${f.verifiedBy ? MISSING[f.verifiedBy] : 'not recorded'})`);
  const more = unverified.length > NAMED_AT_MOST ? ` and ${unverified.length - NAMED_AT_MOST} more` : '';
  const rest = files.length - unverified.length;
  return `unverified: ${named.join(', ')}${more}${rest ? `; the other ${rest} verified by size and hash` : ''}`;
}

/** e.g. `model.safetensors (3/5) · 120.4 of 942.0 MiB · 13%`, for the CLI and the VS Code notification. */
export function describeProgress(p: DownloadProgress): string {
  if (p.phase === 'listing') return 'listing the repository';
  if (p.phase === 'done') return `done · ${formatBytes(p.bytes)}`;
  const overall = p.total ? ` · ${formatBytes(p.bytes)} of ${formatBytes(p.total)} · ${Math.floor((100 * p.bytes) / Math.max(1, p.total))}%` : ` · ${formatBytes(p.bytes)}`;
  return `${p.file} (${p.fileNumber}/${p.fileCount})${overall}`;
}

// `<storage>/models/<owner>--<name>` from a Hub repository: list it, fetch the files Kiln needs into
// `.partial/` (resumable, verified), move them into place, and write `kiln-download.json` last, so
// its presence means the folder is complete. Used by `kiln model download` and the VS Code command.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fetchFile, type FetchedFile } from './fetch-file';
import { fetchListing, HubError, type HubFile, type HubOptions, repoIdProblem, type RepoListing, resolveHubOptions } from './hub';
import { type DownloadPlan, isSafeRelativePath, planDownload, shardsFromIndex } from './plan';
import { networkError, type RetryOptions, withRetries } from './retry';

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

export interface DownloadOptions extends RetryOptions {
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
  stallTimeoutMs?: number;
  /** At most one progress event per interval, besides each file's start and end (default 100 ms). */
  progressIntervalMs?: number;
  onProgress?: (p: DownloadProgress) => void;
}

export interface ManifestFile {
  path: string;
  size: number;
  sha256: string;
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

  report(phase: DownloadProgress['phase'], file?: HubFile, fileBytes = 0, fileSize?: number, force = true): void {
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

/** Moves the verified files into place, drops files only the previous download had, then the manifest. */
async function install(dir: string, partialDir: string, fetched: FetchedFile[], previous: DownloadManifest | undefined, manifest: DownloadManifest): Promise<void> {
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
  o: DownloadOptions;
  hub: HubOptions;
  listing: RepoListing;
  /** The commit (or the revision when the Hub gives none) every file is fetched at. */
  pinned: string;
  partialDir: string;
  progress: ProgressReporter;
}

/** Fetches the planned files into `.partial/`: the shard index first, then the rest and its shards. */
async function fetchPlanned(c: FetchContext, plan: DownloadPlan): Promise<FetchedFile[]> {
  const fetched: FetchedFile[] = [];
  const fetchOne = async (f: HubFile) => {
    c.progress.report('downloading', f, 0, f.size);
    const got = await fetchFile({
      ...c.o,
      hub: c.hub,
      subject: { repo: c.o.repo, revision: c.pinned, file: f.path },
      expected: f,
      partialPath: join(c.partialDir, f.path),
      onBytes: (bytes, size) => c.progress.report('downloading', f, bytes, size, false),
    });
    c.progress.report('downloading', f, got.size, got.size);
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

function listRepository(o: DownloadOptions, hub: HubOptions, revision: string): Promise<RepoListing> {
  const once = () => {
    const timeout = AbortSignal.timeout(o.stallTimeoutMs ?? 60_000);
    const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
    return fetchListing(hub, o.repo, revision, signal).catch((err: unknown) => Promise.reject(networkError(err, `listing ${o.repo} on ${hub.baseUrl}`)));
  };
  return withRetries(once, o);
}

export async function downloadModel(o: DownloadOptions): Promise<DownloadResult> {
  const problem = repoIdProblem(o.repo);
  if (problem) throw new HubError(problem, 'usage');
  const hub = resolveHubOptions(o, o.env);
  const revision = o.revision || 'main';
  const progress = new ProgressReporter(o);
  progress.report('listing');
  const listing = await listRepository(o, hub, revision);
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
    const fetched = await fetchPlanned({ o, hub, listing, pinned, partialDir, progress }, plan);
    const manifest: DownloadManifest = {
      format: 'kiln-download-v1',
      repo: o.repo,
      revision,
      commit: listing.commit,
      hubUrl: hub.baseUrl,
      files: fetched.map(({ path, size, sha256 }) => ({ path, size, sha256 })),
      completedAt: new Date().toISOString(),
    };
    await install(dir, partialDir, fetched, previous, manifest);
    progress.report('done');
    const resumedBytes = fetched.reduce((n, f) => n + f.resumedFrom, 0);
    return { dir, manifest, fetchedBytes: fetched.reduce((n, f) => n + f.size, 0) - resumedBytes, resumedBytes, alreadyComplete: false };
  } catch (err) {
    if (err instanceof HubError && err.kind === 'transient') throw new HubError(`${err.message}; run the download again to resume`, err.kind, err.status);
    throw err;
  } finally {
    active.delete(dir);
  }
}

function size(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
}

/** e.g. `model.safetensors (3/5) · 120.4 of 942.0 MiB · 13%`, for the CLI and the VS Code notification. */
export function describeProgress(p: DownloadProgress): string {
  if (p.phase === 'listing') return 'listing the repository';
  if (p.phase === 'done') return `done · ${size(p.bytes)}`;
  const overall = p.total ? ` · ${size(p.bytes)} of ${size(p.total)} · ${Math.floor((100 * p.bytes) / Math.max(1, p.total))}%` : ` · ${size(p.bytes)}`;
  return `${p.file} (${p.fileNumber}/${p.fileCount})${overall}`;
}

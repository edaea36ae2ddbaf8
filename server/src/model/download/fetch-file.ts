// One file of a checkpoint into `<model>/.partial/<file>`: resumed with `Range: bytes=N-` after an
// interruption, hashed while it streams, and checked against the Hub's size and sha256 (or git blob
// id) before the caller may move it into place. A file with the wrong bytes is deleted, never kept.
// Every attempt runs under the throughput floor; a file with no known size is held to `maxBytes`.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileUrl, HubError, type HubFile, type HubOptions, hubGet, type Subject } from './hub';
import { formatBytes } from './limits';
import { networkError, type RetryOptions, withRetries } from './retry';
import { type LinkedAbort, linkedAbort, ThroughputWatch } from './watchdogs';

/** The partial file: its length on disk and the hashes of exactly those bytes. */
class PartialFile {
  private sha256: Hash = createHash('sha256');
  private sha1: Hash | undefined;
  length = 0;
  /** Bytes an earlier run left that this run kept (0 once the partial starts over). */
  resumedFrom = 0;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly gitSize: number | undefined,
  ) {
    this.sha1 = this.newGitHash();
  }

  /** Opens (creating) the partial and hashes what an earlier run left there. */
  static async open(path: string, gitSize: number | undefined): Promise<PartialFile> {
    await mkdir(dirname(path), { recursive: true });
    const handle = await open(path, 'a');
    const length = (await handle.stat()).size;
    const file = new PartialFile(path, handle, gitSize);
    if (length > 0) for await (const chunk of createReadStream(path, { end: length - 1 })) file.hash(chunk as Buffer);
    file.length = length;
    file.resumedFrom = length;
    return file;
  }

  private newGitHash(): Hash | undefined {
    return this.gitSize === undefined ? undefined : createHash('sha1').update(`blob ${this.gitSize}\0`);
  }

  private hash(chunk: Uint8Array): void {
    this.sha256.update(chunk);
    this.sha1?.update(chunk);
  }

  async append(chunk: Uint8Array): Promise<void> {
    await this.handle.write(chunk);
    this.hash(chunk);
    this.length += chunk.length;
  }

  async reset(): Promise<void> {
    await this.handle.truncate(0);
    this.length = 0;
    this.resumedFrom = 0;
    this.sha256 = createHash('sha256');
    this.sha1 = this.newGitHash();
  }

  digests(): { sha256: string; gitSha1?: string } {
    return { sha256: this.sha256.copy().digest('hex'), gitSha1: this.sha1?.copy().digest('hex') };
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

export interface FetchFileOptions extends RetryOptions {
  hub: HubOptions;
  subject: Required<Subject>;
  /** What the listing says about the file (size and hashes may be missing). */
  expected: HubFile;
  partialPath: string;
  /** The most bytes the file may have, listed or not (config and tokenizer files); none for weights. */
  maxBytes?: number;
  /** Refuse the file when neither the listing nor the Hub's headers give its size (weights). */
  sizeRequired?: boolean;
  /** The throughput floor each attempt must keep over each whole window (0: off). */
  minBytesPerSecond: number;
  throughputWindowMs: number;
  /** Bytes on disk so far (resumed bytes included) and the file's size when known. */
  onBytes?: (bytes: number, size: number | undefined) => void;
}

/** How a file's bytes were checked: by a hash (which implies the size), by size only, or not at all. */
export type Verification = 'sha256' | 'git-blob' | 'size' | 'nothing';

export interface FetchedFile {
  path: string;
  size: number;
  sha256: string;
  verifiedBy: Verification;
  /** Bytes an earlier run had left in the partial, not fetched again. */
  resumedFrom: number;
}

function contentRangeStart(res: Response): number | undefined {
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
  return m ? Number(m[1]) : undefined;
}

const named = (o: FetchFileOptions) => `${o.expected.path} of ${o.subject.repo}`;

/** The size this file may reach: its known size, else the cap (weights have a size or are refused). */
function checkBounds(o: FetchFileOptions, expect: HubFile): number | undefined {
  if (expect.size === undefined && o.sizeRequired) {
    throw new HubError(`${named(o)}: the Hub gives no size for these weights (neither its listing nor X-Linked-Size); Kiln refuses weights it cannot bound`, 'limit');
  }
  if (expect.size !== undefined && o.maxBytes !== undefined && expect.size > o.maxBytes) {
    throw new HubError(
      `${named(o)}: the Hub lists ${formatBytes(expect.size)}, more than the ${formatBytes(o.maxBytes)} cap on config and tokenizer files (maxSmallFileBytes); refused`,
      'limit',
    );
  }
  return expect.size ?? o.maxBytes;
}

const unlistedCap = (o: FetchFileOptions) => `is larger than the ${formatBytes(o.maxBytes!)} cap on files the Hub lists without a size (maxSmallFileBytes)`;

/** One GET: appends to the partial from where it ends; returns when the body has ended. */
async function attempt(o: FetchFileOptions, file: PartialFile, expect: HubFile, signal: AbortSignal): Promise<void> {
  let cap = checkBounds(o, expect);
  if (cap !== undefined && file.length > cap) await file.reset();
  if (expect.size !== undefined && file.length === expect.size) return;
  const from = file.length;
  const url = fileUrl(o.hub, o.subject.repo, o.subject.revision, o.expected.path);
  const { res, linked } = await hubGet(o.hub, url, { headers: from > 0 ? { range: `bytes=${from}-` } : {}, signal, subject: o.subject });
  expect.size ??= linked.size;
  expect.sha256 ??= linked.sha256;
  try {
    cap = checkBounds(o, expect);
    if (cap !== undefined && from > cap) {
      await file.reset();
      throw new HubError(`${o.expected.path}: the partial is longer than the ${cap} bytes the Hub gives; starting over`, 'transient');
    }
  } catch (err) {
    await res.body?.cancel().catch(() => undefined);
    throw err;
  }
  if (res.status === 416) {
    // Nothing past `from`: the partial holds other bytes than this file's (a whole one returned above).
    await res.body?.cancel();
    await file.reset();
    throw new HubError(`${o.expected.path}: the server refused the range to resume from; starting over`, 'transient');
  }
  if (res.status === 200 && from > 0) await file.reset(); // the server ignored the range: start over
  if (res.status === 206 && contentRangeStart(res) !== from) {
    await res.body?.cancel();
    await file.reset();
    throw new HubError(`${o.expected.path}: the server resumed at the wrong offset; starting over`, 'transient');
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (expect.size === undefined && cap !== undefined && file.length + declared > cap) {
    await res.body?.cancel().catch(() => undefined);
    await discard(file, `${named(o)} ${unlistedCap(o)}: it declares ${formatBytes(file.length + declared)}`, 'limit');
  }
  if (!res.body) return;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    if (cap !== undefined && file.length + chunk.length > cap) {
      if (expect.size !== undefined) await corrupt(o, file, `more bytes than the ${expect.size} the Hub lists`);
      await discard(file, `${named(o)} ${unlistedCap(o)}`, 'limit');
    }
    await file.append(chunk);
    o.onBytes?.(file.length, expect.size);
  }
}

/** Deletes the partial (its bytes are wrong or over a cap) and fails with `message`. */
async function discard(file: PartialFile, message: string, kind: 'integrity' | 'limit'): Promise<never> {
  await file.close().catch(() => undefined);
  await rm(file.path, { force: true });
  throw new HubError(`${message}; the download was deleted${kind === 'integrity' ? ', run it again' : ''}`, kind);
}

const corrupt = (o: FetchFileOptions, file: PartialFile, problem: string) => discard(file, `${o.expected.path} from ${o.subject.repo} is corrupt: ${problem}`, 'integrity');

/** A short body with a known size is an interrupted transfer: resume it. */
function checkComplete(o: FetchFileOptions, file: PartialFile, expect: HubFile): void {
  if (expect.size !== undefined && file.length < expect.size) {
    throw new HubError(`${o.expected.path}: the transfer ended at ${file.length} of ${expect.size} bytes`, 'transient');
  }
}

/** One attempt under its own abort (the caller's signal, the throughput floor). */
async function watchedAttempt(o: FetchFileOptions, file: PartialFile, expect: HubFile, guards: { watch: ThroughputWatch; abort: LinkedAbort }): Promise<void> {
  const { watch, abort } = guards;
  let before = file.length;
  const watched: FetchFileOptions = {
    ...o,
    onBytes: (bytes, size) => {
      watch.add(Math.max(0, bytes - before));
      before = bytes;
      o.onBytes?.(bytes, size);
    },
  };
  try {
    await attempt(watched, file, expect, abort.signal);
    checkComplete(o, file, expect);
  } catch (err) {
    if (o.signal?.aborted) throw o.signal.reason ?? err;
    if (watch.tripped) throw watch.tripped;
    throw networkError(err, `${o.expected.path}: download interrupted`);
  }
}

/**
 * Downloads (or finishes) one file into its partial and verifies it; the partial is kept on a
 * transient failure. An attempt resets the retry count only when it fetched at least one window's
 * worth of bytes at the floor and was not cut off by the floor, so a server that drips a few bytes
 * per attempt cannot keep the retries going forever.
 */
export async function fetchFile(o: FetchFileOptions): Promise<FetchedFile> {
  const expect: HubFile = { ...o.expected };
  checkBounds(o, expect); // a listed size over the cap is refused before anything is written
  const file = await PartialFile.open(o.partialPath, expect.gitSha1 ? expect.size : undefined);
  const worthReset = Math.max(1, (o.minBytesPerSecond * o.throughputWindowMs) / 1000);
  let startLength = file.length;
  let lastWatch: ThroughputWatch | undefined;
  try {
    await withRetries(
      async () => {
        startLength = file.length;
        const abort = linkedAbort(o.signal);
        const watch = new ThroughputWatch({ minBytesPerSecond: o.minBytesPerSecond, windowMs: o.throughputWindowMs, what: o.expected.path, onSlow: (err) => abort.abort(err) });
        lastWatch = watch;
        try {
          await watchedAttempt(o, file, expect, { watch, abort });
        } finally {
          watch.stop();
          abort.dispose();
        }
      },
      o,
      () => !lastWatch?.tripped && file.length - startLength >= worthReset,
    );
    const { sha256, gitSha1 } = file.digests();
    if (expect.sha256 && sha256 !== expect.sha256) await corrupt(o, file, `its sha256 is ${sha256}, the Hub lists ${expect.sha256}`);
    if (expect.gitSha1 && gitSha1 && gitSha1 !== expect.gitSha1) await corrupt(o, file, `its git blob id is ${gitSha1}, the Hub lists ${expect.gitSha1}`);
    const verifiedBy: Verification = expect.sha256 ? 'sha256' : expect.gitSha1 && gitSha1 ? 'git-blob' : expect.size !== undefined ? 'size' : 'nothing';
    return { path: o.expected.path, size: file.length, sha256, verifiedBy, resumedFrom: file.resumedFrom };
  } finally {
    await file.close().catch(() => undefined);
  }
}

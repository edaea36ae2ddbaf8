// One file of a checkpoint into `<model>/.partial/<file>`: resumed with `Range: bytes=N-` after an
// interruption, hashed while it streams, and checked against the Hub's size and sha256 (or git blob
// id) before the caller may move it into place. A file with the wrong bytes is deleted, never kept.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileUrl, HubError, type HubFile, type HubOptions, hubGet, type Subject } from './hub';
import { networkError, type RetryOptions, withRetries } from './retry';

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
  /** Abort an attempt that receives nothing for this long, then retry (default 60 s). */
  stallTimeoutMs?: number;
  /** Bytes on disk so far (resumed bytes included) and the file's size when known. */
  onBytes?: (bytes: number, size: number | undefined) => void;
}

export interface FetchedFile {
  path: string;
  size: number;
  sha256: string;
  /** Bytes an earlier run had left in the partial, not fetched again. */
  resumedFrom: number;
}

function contentRangeStart(res: Response): number | undefined {
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
  return m ? Number(m[1]) : undefined;
}

/** One GET: appends to the partial from where it ends; returns when the body has ended. */
async function attempt(o: FetchFileOptions, file: PartialFile, expect: HubFile, signal: AbortSignal): Promise<void> {
  if (expect.size !== undefined && file.length > expect.size) await file.reset();
  if (expect.size !== undefined && file.length === expect.size) return;
  const from = file.length;
  const url = fileUrl(o.hub, o.subject.repo, o.subject.revision, o.expected.path);
  const { res, linked } = await hubGet(o.hub, url, from > 0 ? { range: `bytes=${from}-` } : {}, signal, o.subject);
  expect.size ??= linked.size;
  expect.sha256 ??= linked.sha256;
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
  if (!res.body) return;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    if (expect.size !== undefined && file.length + chunk.length > expect.size) {
      await integrity(o, file, `more bytes than the ${expect.size} the Hub lists`);
    }
    await file.append(chunk);
    o.onBytes?.(file.length, expect.size);
  }
}

async function integrity(o: FetchFileOptions, file: PartialFile, problem: string): Promise<never> {
  await file.close().catch(() => undefined);
  await rm(file.path, { force: true });
  throw new HubError(`${o.expected.path} from ${o.subject.repo} is corrupt: ${problem}; the download was deleted, run it again`, 'integrity');
}

/** A short body with a known size is an interrupted transfer: resume it. */
function checkComplete(o: FetchFileOptions, file: PartialFile, expect: HubFile): void {
  if (expect.size !== undefined && file.length < expect.size) {
    throw new HubError(`${o.expected.path}: the transfer ended at ${file.length} of ${expect.size} bytes`, 'transient');
  }
}

/** Downloads (or finishes) one file into its partial and verifies it; the partial is kept on failure. */
export async function fetchFile(o: FetchFileOptions): Promise<FetchedFile> {
  const expect: HubFile = { ...o.expected };
  const file = await PartialFile.open(o.partialPath, expect.gitSha1 ? expect.size : undefined);
  const stallMs = o.stallTimeoutMs ?? 60_000;
  let startLength = file.length;
  try {
    await withRetries(
      async () => {
        startLength = file.length;
        const stall = new AbortController();
        const signals = o.signal ? [o.signal, stall.signal] : [stall.signal];
        let timer = setTimeout(() => stall.abort(), stallMs);
        const onBytes = o.onBytes;
        const watched: FetchFileOptions = {
          ...o,
          onBytes: (bytes, size) => {
            clearTimeout(timer);
            timer = setTimeout(() => stall.abort(), stallMs);
            onBytes?.(bytes, size);
          },
        };
        try {
          await attempt(watched, file, expect, AbortSignal.any(signals));
          checkComplete(o, file, expect);
        } catch (err) {
          if (o.signal?.aborted) throw o.signal.reason ?? err;
          if (stall.signal.aborted) throw new HubError(`${o.expected.path}: no data for ${Math.round(stallMs / 1000)} s`, 'transient');
          throw networkError(err, `${o.expected.path}: download interrupted`);
        } finally {
          clearTimeout(timer);
        }
      },
      o,
      () => file.length > startLength,
    );
    const { sha256, gitSha1 } = file.digests();
    if (expect.sha256 && sha256 !== expect.sha256) await integrity(o, file, `its sha256 is ${sha256}, the Hub lists ${expect.sha256}`);
    if (expect.gitSha1 && gitSha1 && gitSha1 !== expect.gitSha1) await integrity(o, file, `its git blob id is ${gitSha1}, the Hub lists ${expect.gitSha1}`);
    return { path: o.expected.path, size: file.length, sha256, resumedFrom: file.resumedFrom };
  } finally {
    await file.close().catch(() => undefined);
  }
}


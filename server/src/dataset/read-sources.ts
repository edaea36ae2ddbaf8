// Reads the scanned files and keeps the text worth training on, secrets scrubbed. Paths that name
// secrets are refused again here, before any read, whatever the caller passes; each read goes
// through readRegularFile, so a file swapped for a link, a FIFO or another file since the scan is
// refused, and no read is longer than the size bound.
import { join } from 'node:path';
import { classifyContent } from './content-rules';
import type { ExcludedFile } from './exclusions';
import { isSecretPath } from './path-rules';
import { type FileIdentity, readRegularFile, type SafeReadResult } from './safe-read';
import { scrubSecrets, type SecretKind } from './secrets';

/** A file to read: a ScannedFile fits; without `identity` the file is still checked, without `tracked` a hard link is refused. */
export interface ReadCandidate {
  path: string;
  bytes: number;
  identity?: FileIdentity;
  tracked?: boolean;
}

export interface SourceText {
  path: string;
  bytes: number;
  /** Decoded UTF-8 (BOM dropped, CRLF kept) with secret lines blanked. */
  text: string;
  scrubbedLines: number;
}

export interface ReadSourcesOptions {
  /** Reads one file by absolute path instead of the checked reader; a test may spy on it. */
  readFile?: (absPath: string) => Promise<Uint8Array>;
  /** A file that grew past this since the scan is 'oversized'. */
  maxFileBytes: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface ReadSourcesResult {
  sources: SourceText[];
  excluded: ExcludedFile[];
  /** Lines blanked, in all files read (those later found empty or duplicate included). */
  scrubbedLines: number;
  scrubbedByKind: Partial<Record<SecretKind, number>>;
}

/** One candidate's bytes through the override when given, else the checked, bounded reader. */
async function readCandidate(abs: string, file: ReadCandidate, options: ReadSourcesOptions): Promise<SafeReadResult> {
  if (options.readFile === undefined) {
    return readRegularFile(abs, { maxBytes: options.maxFileBytes, allowHardLinks: file.tracked === true, ...(file.identity === undefined ? {} : { identity: file.identity }) });
  }
  try {
    const bytes = await options.readFile(abs);
    return bytes.length > options.maxFileBytes ? { reason: 'oversized', detail: `${bytes.length} bytes` } : { bytes };
  } catch (err) {
    return { reason: 'unreadable', detail: (err as NodeJS.ErrnoException).code ?? 'error' };
  }
}

export async function readSources(root: string, files: readonly ReadCandidate[], options: ReadSourcesOptions): Promise<ReadSourcesResult> {
  const result: ReadSourcesResult = { sources: [], excluded: [], scrubbedLines: 0, scrubbedByKind: {} };
  for (const [i, file] of files.entries()) {
    options.signal?.throwIfAborted();
    options.onProgress?.(i, files.length);
    if (isSecretPath(file.path)) {
      result.excluded.push({ path: file.path, reason: 'secret-file' });
      continue;
    }
    const read = await readCandidate(join(root, file.path), file, options);
    if (!('bytes' in read)) {
      result.excluded.push({ path: file.path, reason: read.reason, ...(read.detail === undefined ? {} : { detail: read.detail }) });
      continue;
    }
    const bytes = read.bytes;
    const verdict = classifyContent(bytes);
    if ('reason' in verdict) {
      result.excluded.push({ path: file.path, reason: verdict.reason, detail: verdict.detail });
      continue;
    }
    const scrubbed = scrubSecrets(verdict.text, { path: file.path });
    result.scrubbedLines += scrubbed.lines.length;
    for (const [kind, n] of Object.entries(scrubbed.byKind) as [SecretKind, number][]) {
      result.scrubbedByKind[kind] = (result.scrubbedByKind[kind] ?? 0) + n;
    }
    if (scrubbed.text.trim().length === 0) {
      result.excluded.push({ path: file.path, reason: 'empty', detail: 'nothing left after scrubbing secrets' });
      continue;
    }
    result.sources.push({ path: file.path, bytes: bytes.length, text: scrubbed.text, scrubbedLines: scrubbed.lines.length });
  }
  options.onProgress?.(files.length, files.length);
  return result;
}

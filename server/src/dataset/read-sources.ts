// Reads the scanned files and keeps the text worth training on, secrets scrubbed. Paths that name
// secrets are refused again here, before any read, whatever the caller passes.
import { readFile as fsReadFile } from 'node:fs/promises';
import { join } from 'node:path';
import { classifyContent } from './content-rules';
import type { ExcludedFile } from './exclusions';
import { isSecretPath } from './path-rules';
import type { ScannedFile } from './scan';
import { scrubSecrets, type SecretKind } from './secrets';

export interface SourceText {
  path: string;
  bytes: number;
  /** Decoded UTF-8 (BOM dropped, CRLF kept) with secret lines blanked. */
  text: string;
  scrubbedLines: number;
}

export interface ReadSourcesOptions {
  /** Reads one file by absolute path (default fs.readFile); a test may spy on it. */
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

export async function readSources(root: string, files: readonly ScannedFile[], options: ReadSourcesOptions): Promise<ReadSourcesResult> {
  const read = options.readFile ?? ((p: string) => fsReadFile(p));
  const result: ReadSourcesResult = { sources: [], excluded: [], scrubbedLines: 0, scrubbedByKind: {} };
  for (const [i, file] of files.entries()) {
    options.signal?.throwIfAborted();
    options.onProgress?.(i, files.length);
    if (isSecretPath(file.path)) {
      result.excluded.push({ path: file.path, reason: 'secret-file' });
      continue;
    }
    let bytes: Uint8Array;
    try {
      bytes = await read(join(root, file.path));
    } catch (err) {
      result.excluded.push({ path: file.path, reason: 'unreadable', detail: (err as NodeJS.ErrnoException).code ?? 'error' });
      continue;
    }
    if (bytes.length > options.maxFileBytes) {
      result.excluded.push({ path: file.path, reason: 'oversized', detail: `${bytes.length} bytes` });
      continue;
    }
    const verdict = classifyContent(bytes);
    if ('reason' in verdict) {
      result.excluded.push({ path: file.path, reason: verdict.reason, detail: verdict.detail });
      continue;
    }
    const scrubbed = scrubSecrets(verdict.text);
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

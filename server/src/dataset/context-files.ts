// The workspace as the context sources see it (context/workspace-files.ts), through the same rules
// as the fine-tune's dataset: the scan's path rules and ignore files, the checked and bounded
// reader, the content rules (binary, generated, minified) and secret scrubbing. A file the
// fine-tune would refuse never becomes a snippet, and a snippet never carries a secret line.
import { lstat, realpath } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import type { ContextPolicy, WorkspaceFiles } from '../context/workspace-files';
import { classifyContent, generatedMarker, minifiedReason } from './content-rules';
import { classifyPath } from './path-rules';
import { readRegularFile } from './safe-read';
import type { ExclusionReason } from './exclusions';
import { SCAN_DEFAULTS, type ScannedFile, scanWorkspace, type ScanOptions } from './scan';
import { scrubSecrets } from './secrets';

/** Open documents' text (already decoded) through the path, size and content rules, secrets blanked. */
export const datasetContextPolicy: ContextPolicy = {
  admit(path, text) {
    if (classifyPath(path) !== undefined) return undefined;
    // the scan's size bound: a huge open document (a log, a data dump) is refused before it is scrubbed, which would stall the server
    if (text.length > SCAN_DEFAULTS.maxFileBytes || Buffer.byteLength(text) > SCAN_DEFAULTS.maxFileBytes) return undefined;
    if (text.includes('\u0000') || text.trim() === '' || generatedMarker(text) !== undefined || minifiedReason(text) !== undefined) return undefined;
    const scrubbed = scrubSecrets(text, { path }).text;
    return scrubbed.trim() === '' ? undefined : scrubbed;
  },
};

/** Why the scan left a path out that also refuses an open document there (the others — size, emptiness, the file limit — are about the text or the count, which admit() and the index judge). */
const REFUSED_REASONS: ReadonlySet<ExclusionReason> = new Set(['ignored', 'symlink', 'unreadable', 'hard-link']);

/** The workspace's files for context: listed once by the fine-tune's scan, each read when asked. */
export function workspaceContextFiles(root: string, scan: ScanOptions = {}): WorkspaceFiles {
  let listed: Map<string, ScannedFile> | undefined;
  let listing: Promise<unknown> | undefined;
  /** Paths the scan refused (folders end in "/"). */
  let refused = new Set<string>();
  let resolvedRoot = root;
  const maxBytes = scan.maxFileBytes ?? SCAN_DEFAULTS.maxFileBytes;
  // every ignored path is wanted here (the scan's report lists 1,000), to refuse an open document under one
  const options: ScanOptions = { maxIgnoredListed: 100_000, ...scan };
  return {
    async list() {
      const scanned = scanWorkspace(root, options);
      listing = scanned.catch(() => undefined);
      const result = await scanned;
      resolvedRoot = result.root;
      listed = new Map(result.files.map((f) => [f.path, f]));
      refused = new Set(result.excluded.filter((e) => REFUSED_REASONS.has(e.reason)).map((e) => e.path));
      return result.files.map((f) => f.path);
    },
    async refuses(path) {
      await listing;
      if (listed?.has(path)) return false;
      const parts = path.split('/');
      for (let i = 1; i <= parts.length; i++) {
        const prefix = parts.slice(0, i).join('/');
        if (refused.has(prefix) || refused.has(`${prefix}/`)) return true; // the file, or a folder (or folder link) above it
      }
      // a file the scan did not see (new, or saved since): the scan's own checks, a regular file really inside the root
      try {
        const realRoot = await realpath(resolvedRoot);
        const abs = join(realRoot, path);
        const stat = await lstat(abs).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
        if (stat !== undefined && (stat.isSymbolicLink() || !stat.isFile())) return true;
        const real = await realpath(stat === undefined ? dirname(abs) : abs); // not saved yet: its folder
        return !(real === realRoot || real.startsWith(realRoot + sep));
      } catch {
        return true;
      }
    },
    async read(path) {
      const file = listed?.get(path);
      if (file === undefined || classifyPath(path) !== undefined) return undefined; // only what the scan accepted
      // no identity pinned: a file saved since the scan (often a new inode) is read as it is now, with the same link and type checks
      const read = await readRegularFile(join(resolvedRoot, path), { maxBytes, allowHardLinks: file.tracked });
      if (!('bytes' in read)) return undefined;
      const verdict = classifyContent(read.bytes);
      if ('reason' in verdict) return undefined;
      const scrubbed = scrubSecrets(verdict.text, { path }).text;
      return scrubbed.trim() === '' ? undefined : scrubbed;
    },
  };
}

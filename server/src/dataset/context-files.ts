// The workspace as the context sources see it (context/workspace-files.ts), through the same rules
// as the fine-tune's dataset: the scan's path rules and ignore files, the checked and bounded
// reader, the content rules (binary, generated, minified) and secret scrubbing. A file the
// fine-tune would refuse never becomes a snippet, and a snippet never carries a secret line.
import { join } from 'node:path';
import type { ContextPolicy, WorkspaceFiles } from '../context/workspace-files';
import { classifyContent, generatedMarker, minifiedReason } from './content-rules';
import { classifyPath } from './path-rules';
import { readRegularFile } from './safe-read';
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

/** The workspace's files for context: listed once by the fine-tune's scan, each read when asked. */
export function workspaceContextFiles(root: string, scan: ScanOptions = {}): WorkspaceFiles {
  let listed: Map<string, ScannedFile> | undefined;
  let resolvedRoot = root;
  const maxBytes = scan.maxFileBytes ?? SCAN_DEFAULTS.maxFileBytes;
  return {
    async list() {
      const result = await scanWorkspace(root, scan);
      resolvedRoot = result.root;
      listed = new Map(result.files.map((f) => [f.path, f]));
      return result.files.map((f) => f.path);
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

// A directory walk that honours .gitignore files at every level (and .git/info/exclude), for
// workspaces that are not git work trees. Symlinks are reported, never followed; FIFOs, sockets and
// devices are reported apart and never opened (an ignore file that is one is not read).
import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { readRegularFile } from './safe-read';

export interface WalkOptions {
  /** Entries (files and folders) visited before the walk stops. */
  maxEntries: number;
  /** Folders not descended into, e.g. vendored ones; given the relative path without trailing '/'. */
  prune?: (dir: string) => boolean;
}

export interface WalkResult {
  /** Relative, '/'-separated paths of files and symlinks. */
  files: string[];
  /** FIFOs, sockets and devices: never opened, never listed as files. */
  special: string[];
  /** Paths the ignore rules excluded; folders end with '/'. */
  ignored: string[];
  /** Folders `prune` cut off, ending with '/'. */
  pruned: string[];
  truncated: boolean;
}

interface Level {
  /** The folder the rules belong to: '' for the root, else 'a/b/'. */
  base: string;
  rules: Ignore;
}

const MAX_IGNORE_FILE_BYTES = 1 << 20;
const caseInsensitive = process.platform === 'darwin' || process.platform === 'win32';

/** An ignore file's text; '' when it is missing, a link, not a regular file or too large. */
async function readRules(file: string): Promise<string> {
  // a hard-linked ignore file is read: its rules only ever leave files out
  const read = await readRegularFile(file, { maxBytes: MAX_IGNORE_FILE_BYTES, allowHardLinks: true });
  return 'bytes' in read ? Buffer.from(read.bytes).toString('utf8') : '';
}

/** Deepest rules first: the first level that ignores or re-includes the path decides, as in git. */
function isIgnored(levels: readonly Level[], path: string, isDir: boolean): boolean {
  for (let i = levels.length - 1; i >= 0; i--) {
    const { base, rules } = levels[i]!;
    const result = rules.test(path.slice(base.length) + (isDir ? '/' : ''));
    if (result.ignored) return true;
    if (result.unignored) return false;
  }
  return false;
}

export async function walkWorkspace(root: string, options: WalkOptions): Promise<WalkResult> {
  const result: WalkResult = { files: [], special: [], ignored: [], pruned: [], truncated: false };
  let visited = 0;
  const rootRules = ignore({ ignorecase: caseInsensitive })
    .add(await readRules(join(root, '.git', 'info', 'exclude')))
    .add(await readRules(join(root, '.gitignore')));

  const visit = async (dir: string, levels: readonly Level[]): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(join(root, dir), { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (result.truncated) return;
      if (++visited > options.maxEntries) {
        result.truncated = true;
        return;
      }
      const path = dir + entry.name;
      const isDir = entry.isDirectory(); // false for a symlink to a folder: never followed
      if (entry.name === '.git' || isIgnored(levels, path, isDir)) {
        if (entry.name !== '.git') result.ignored.push(isDir ? `${path}/` : path);
        continue;
      }
      if (!isDir) {
        if (entry.isFile() || entry.isSymbolicLink()) result.files.push(path);
        else result.special.push(path);
        continue;
      }
      if (options.prune?.(path)) {
        result.pruned.push(`${path}/`);
        continue;
      }
      const text = await readRules(join(root, path, '.gitignore'));
      const nested = text.length > 0 ? [...levels, { base: `${path}/`, rules: ignore({ ignorecase: caseInsensitive }).add(text) }] : levels;
      await visit(`${path}/`, nested);
    }
  };
  await visit('', [{ base: '', rules: rootRules }]);
  return result;
}

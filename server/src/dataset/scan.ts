// Which workspace files may enter the dataset: git's tracked and unignored files (or a walk that
// honours .gitignore), minus what the path rules exclude; nothing here reads a file's contents.
import { lstat, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { type ExcludedFile } from './exclusions';
import { gitIgnoredPaths, gitWorkspaceFiles, isGitWorkTree } from './git-files';
import { walkWorkspace } from './ignore-walk';
import { classifyPath, isVendoredDir, type PathVerdict } from './path-rules';

export interface ScanOptions {
  /** Use git when the root is in a work tree (default); false always walks. */
  useGit?: boolean;
  /** Files accepted before the rest are excluded as 'limit' (default 20,000). */
  maxFiles?: number;
  /** Paths listed or visited before the scan stops (default 200,000). */
  maxEntries?: number;
  /** Larger files are 'oversized' (default 1 MiB). */
  maxFileBytes?: number;
  /** Accepted bytes in all (default 256 MiB); past it files are 'limit'. */
  maxTotalBytes?: number;
  /** Ignored paths listed in the report at most (default 1,000); the rest are not listed. */
  maxIgnoredListed?: number;
  /** Extensions added to the source allowlist, without dots. */
  extraExtensions?: readonly string[];
}

export interface ScannedFile {
  /** Relative to the root, '/'-separated. */
  path: string;
  bytes: number;
}

export interface ScanResult {
  /** The root, symlinks resolved. */
  root: string;
  mode: 'git' | 'walk';
  /** Sorted by path. */
  files: ScannedFile[];
  excluded: ExcludedFile[];
  /** True when a bound cut the listing or the accepted files short. */
  truncated: boolean;
}

export const SCAN_DEFAULTS = {
  maxFiles: 20_000,
  maxEntries: 200_000,
  maxFileBytes: 1 << 20,
  maxTotalBytes: 256 << 20,
  maxIgnoredListed: 1_000,
} as const;

interface Listing {
  mode: 'git' | 'walk';
  paths: string[];
  ignored: string[];
  pruned: string[];
  truncated: boolean;
}

async function listWorkspace(root: string, useGit: boolean, maxEntries: number, maxIgnored: number): Promise<Listing> {
  if (useGit && (await isGitWorkTree(root))) {
    const listed = await gitWorkspaceFiles(root, maxEntries);
    const ignored = await gitIgnoredPaths(root, maxIgnored);
    return { mode: 'git', paths: listed.paths, ignored: ignored.paths, pruned: [], truncated: listed.truncated };
  }
  const walked = await walkWorkspace(root, { maxEntries, prune: isVendoredDir });
  return { mode: 'walk', paths: walked.files, ignored: walked.ignored.slice(0, maxIgnored), pruned: walked.pruned, truncated: walked.truncated };
}

const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

export async function scanWorkspace(root: string, options: ScanOptions = {}): Promise<ScanResult> {
  const o = { ...SCAN_DEFAULTS, ...options };
  const realRoot = await realpath(root);
  const extra = new Set((options.extraExtensions ?? []).map((e) => e.replace(/^\./, '').toLowerCase()));
  const listing = await listWorkspace(realRoot, options.useGit !== false, o.maxEntries, o.maxIgnoredListed);

  const excluded: ExcludedFile[] = listing.ignored.map((path) => ({ path, reason: 'ignored' }));
  const vendored = new Set(listing.pruned);
  const files: ScannedFile[] = [];
  let totalBytes = 0;
  let truncated = listing.truncated;
  for (const path of [...listing.paths].sort()) {
    const verdict: PathVerdict | undefined = path.endsWith('/') ? { reason: 'unreadable', detail: 'a nested repository' } : classifyPath(path, extra);
    if (verdict?.folder !== undefined) vendored.add(verdict.folder);
    else if (verdict !== undefined) excluded.push({ path, reason: verdict.reason, ...(verdict.detail === undefined ? {} : { detail: verdict.detail }) });
    else {
      const problem = await statProblem(realRoot, path, o.maxFileBytes);
      if (typeof problem !== 'number') excluded.push({ path, ...problem });
      else if (files.length >= o.maxFiles || totalBytes + problem > o.maxTotalBytes) {
        excluded.push({ path, reason: 'limit', detail: files.length >= o.maxFiles ? `over ${o.maxFiles} files` : `over ${o.maxTotalBytes} bytes` });
        truncated = true;
      } else {
        files.push({ path, bytes: problem });
        totalBytes += problem;
      }
    }
  }
  for (const path of vendored) excluded.push({ path, reason: 'vendored' });
  excluded.sort(byPath);
  return { root: realRoot, mode: listing.mode, files, excluded, truncated };
}

/** The file's size when it is a regular file inside the root of at most `maxBytes`, else why not. */
async function statProblem(root: string, path: string, maxBytes: number): Promise<number | Omit<ExcludedFile, 'path'>> {
  const abs = join(root, path);
  try {
    const stat = await lstat(abs);
    if (stat.isSymbolicLink()) return { reason: 'symlink' };
    if (!stat.isFile()) return { reason: 'unreadable', detail: 'not a regular file' };
    const real = await realpath(abs); // a parent folder may be a link
    if (!real.startsWith(root + sep)) return { reason: 'unreadable', detail: 'outside the root' };
    if (stat.size > maxBytes) return { reason: 'oversized', detail: `${stat.size} bytes` };
    if (stat.size === 0) return { reason: 'empty', detail: '0 bytes' };
    return stat.size;
  } catch (err) {
    return { reason: 'unreadable', detail: (err as NodeJS.ErrnoException).code ?? 'error' };
  }
}

// Which workspace files may enter the dataset: git's tracked and unignored files (or a walk that
// honours .gitignore), minus what the path rules exclude; nothing here reads a file's contents.
// When git fails or times out on a workspace that is a work tree, the scan walks the folder instead
// (the walk honours the same ignore files and never blocks) and says so in `warnings`.
import { lstat, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { ExcludedFile } from './exclusions';
import { gitIgnoredPaths, gitWorkspaceFiles, isGitWorkTree } from './git-files';
import { walkWorkspace } from './ignore-walk';
import { classifyPath, isVendoredDir, type PathVerdict } from './path-rules';
import { type FileIdentity, identityOf } from './safe-read';

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
  /** Each git child is killed past this (default GIT_TIMEOUT_MS); the scan then walks. */
  gitTimeoutMs?: number;
}

export interface ScannedFile {
  /** Relative to the root, '/'-separated. */
  path: string;
  bytes: number;
  /** Device and inode at scan time: the reader refuses a different file at the path. */
  identity: FileIdentity;
  /** In git's index: a hard-linked file is read only then. */
  tracked: boolean;
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
  /** What the user should know about how the scan went, e.g. git timed out and the folder was walked. */
  warnings: string[];
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
  /** Paths in git's index (empty in a walk). */
  tracked: Set<string>;
  /** FIFOs, sockets and devices the walk found (git lists none untracked). */
  special: string[];
  ignored: string[];
  pruned: string[];
  truncated: boolean;
  warnings: string[];
}

interface ListOptions {
  useGit: boolean;
  maxEntries: number;
  maxIgnored: number;
  gitTimeoutMs: number | undefined;
}

async function gitListing(root: string, o: ListOptions): Promise<Listing | undefined> {
  const git = { ...(o.gitTimeoutMs === undefined ? {} : { timeoutMs: o.gitTimeoutMs }) };
  if (!(await isGitWorkTree(root, git))) return undefined;
  const listed = await gitWorkspaceFiles(root, o.maxEntries, git);
  const ignored = await gitIgnoredPaths(root, o.maxIgnored, git);
  const paths = [...listed.tracked, ...listed.untracked];
  return { mode: 'git', paths, tracked: new Set(listed.tracked), special: [], ignored: ignored.paths, pruned: [], truncated: listed.truncated, warnings: [] };
}

async function listWorkspace(root: string, o: ListOptions): Promise<Listing> {
  const warnings: string[] = [];
  if (o.useGit) {
    try {
      const listing = await gitListing(root, o);
      if (listing) return listing;
    } catch (err) {
      warnings.push(`git could not list the workspace, so the folder was walked instead (honouring .gitignore files): ${(err as Error).message}`);
    }
  }
  const walked = await walkWorkspace(root, { maxEntries: o.maxEntries, prune: isVendoredDir });
  return {
    mode: 'walk',
    paths: walked.files,
    tracked: new Set(),
    special: walked.special,
    ignored: walked.ignored.slice(0, o.maxIgnored),
    pruned: walked.pruned,
    truncated: walked.truncated,
    warnings,
  };
}

const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

export async function scanWorkspace(root: string, options: ScanOptions = {}): Promise<ScanResult> {
  const o = { ...SCAN_DEFAULTS, ...options };
  const realRoot = await realpath(root);
  const extra = new Set((options.extraExtensions ?? []).map((e) => e.replace(/^\./, '').toLowerCase()));
  const listing = await listWorkspace(realRoot, { useGit: options.useGit !== false, maxEntries: o.maxEntries, maxIgnored: o.maxIgnoredListed, gitTimeoutMs: options.gitTimeoutMs });

  const excluded: ExcludedFile[] = listing.ignored.map((path) => ({ path, reason: 'ignored' }));
  for (const path of listing.special) excluded.push({ path, reason: 'unreadable', detail: 'not a regular file' });
  const vendored = new Set(listing.pruned);
  const files: ScannedFile[] = [];
  let totalBytes = 0;
  let truncated = listing.truncated;
  for (const path of [...listing.paths].sort()) {
    const verdict: PathVerdict | undefined = path.endsWith('/') ? { reason: 'unreadable', detail: 'a nested repository' } : classifyPath(path, extra);
    if (verdict?.folder !== undefined) vendored.add(verdict.folder);
    else if (verdict !== undefined) excluded.push({ path, reason: verdict.reason, ...(verdict.detail === undefined ? {} : { detail: verdict.detail }) });
    else {
      const tracked = listing.tracked.has(path);
      const problem = await statProblem(realRoot, path, { maxBytes: o.maxFileBytes, tracked });
      if ('reason' in problem) excluded.push({ path, ...problem });
      else if (files.length >= o.maxFiles || totalBytes + problem.bytes > o.maxTotalBytes) {
        excluded.push({ path, reason: 'limit', detail: files.length >= o.maxFiles ? `over ${o.maxFiles} files` : `over ${o.maxTotalBytes} bytes` });
        truncated = true;
      } else {
        files.push({ path, bytes: problem.bytes, identity: problem.identity, tracked });
        totalBytes += problem.bytes;
      }
    }
  }
  for (const path of vendored) excluded.push({ path, reason: 'vendored' });
  excluded.sort(byPath);
  return { root: realRoot, mode: listing.mode, files, excluded, truncated, warnings: listing.warnings };
}

/**
 * The file's size and identity when it is a regular file inside the root of at most `maxBytes`,
 * with one link or tracked by git, else why not. A hard link git does not track may be a file
 * from anywhere on the disk (a walk has no index, so every hard link is left out there).
 */
async function statProblem(root: string, path: string, o: { maxBytes: number; tracked: boolean }): Promise<{ bytes: number; identity: FileIdentity } | Omit<ExcludedFile, 'path'>> {
  const abs = join(root, path);
  try {
    const stat = await lstat(abs, { bigint: true });
    if (stat.isSymbolicLink()) return { reason: 'symlink' };
    if (!stat.isFile()) return { reason: 'unreadable', detail: 'not a regular file' };
    const real = await realpath(abs); // a parent folder may be a link
    if (!real.startsWith(root + sep)) return { reason: 'unreadable', detail: 'outside the root' };
    if (stat.nlink > 1n && !o.tracked) return { reason: 'hard-link', detail: `${stat.nlink} links, not tracked by git` };
    if (stat.size > BigInt(o.maxBytes)) return { reason: 'oversized', detail: `${stat.size} bytes` };
    if (stat.size === 0n) return { reason: 'empty', detail: '0 bytes' };
    return { bytes: Number(stat.size), identity: identityOf(stat) };
  } catch (err) {
    return { reason: 'unreadable', detail: (err as NodeJS.ErrnoException).code ?? 'error' };
  }
}

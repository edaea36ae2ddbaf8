// Lists a work tree's files through git (execFile-style spawn, no shell), bounded and streamed.
import { spawn } from 'node:child_process';

export interface GitListing {
  /** Paths relative to the directory git ran in, '/'-separated; folders end with '/'. */
  paths: string[];
  /** True when the listing stopped at its bound. */
  truncated: boolean;
}

/** The environment without GIT_* variables: inside a git hook GIT_DIR and GIT_INDEX_FILE point elsewhere. */
export function cleanGitEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GIT_')) env[k] = v;
  env.GIT_OPTIONAL_LOCKS = '0';
  return env;
}

/**
 * Runs `git args` in `cwd`, handing stdout to `onText` as it comes; `onText` returns false to stop
 * reading (git is then killed and the promise resolves).
 */
function runGit(cwd: string, args: readonly string[], onText: (text: string) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd, env: cleanGitEnv(), stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    let stopped = false;
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      if (stopped || onText(chunk)) return;
      stopped = true;
      child.kill();
    });
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < 4096) stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (stopped || code === 0) resolve();
      else reject(new Error(`git ${args.join(' ')} exited with ${code}: ${stderr.trim()}`));
    });
  });
}

/** Runs `git args` in `cwd` and splits its NUL-separated stdout, stopping after `maxPaths` entries. */
export async function gitNulList(cwd: string, args: readonly string[], maxPaths: number): Promise<GitListing> {
  const paths: string[] = [];
  let pending = '';
  let truncated = false;
  await runGit(cwd, args, (chunk) => {
    const parts = (pending + chunk).split('\0');
    pending = parts.pop()!;
    for (const p of parts) {
      if (paths.length >= maxPaths) {
        truncated = true;
        return false;
      }
      if (p.length > 0) paths.push(p);
    }
    return true;
  });
  return { paths, truncated };
}

/**
 * Whether `dir` is a tracked part of a git work tree (false when git is missing). A folder the
 * enclosing repository ignores (a cache, a corpus) is not: git lists nothing useful there.
 */
export async function isGitWorkTree(dir: string): Promise<boolean> {
  let out = '';
  try {
    await runGit(dir, ['rev-parse', '--is-inside-work-tree'], (text) => {
      out += text;
      return out.length < 64;
    });
  } catch {
    return false;
  }
  if (out.trim() !== 'true') return false;
  try {
    await runGit(dir, ['check-ignore', '-q', '.'], () => true);
    return false; // exit 0: the folder itself is ignored
  } catch {
    return true; // exit 1: not ignored
  }
}

/** Tracked files plus untracked ones that the ignore rules let through, under `root`. */
export async function gitWorkspaceFiles(root: string, maxPaths: number): Promise<GitListing> {
  const listing = await gitNulList(root, ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], maxPaths);
  return { paths: [...new Set(listing.paths)], truncated: listing.truncated }; // unmerged paths repeat
}

/** Untracked paths the ignore rules exclude, ignored folders collapsed to 'dir/'. */
export function gitIgnoredPaths(root: string, maxPaths: number): Promise<GitListing> {
  return gitNulList(root, ['ls-files', '-z', '--others', '--ignored', '--exclude-standard', '--directory'], maxPaths);
}

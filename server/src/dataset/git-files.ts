// Lists a work tree's files through git (execFile-style spawn, no shell), bounded, streamed and
// timed. A workspace's .git is not trusted: its config must never make git run a program, so every
// child gets overrides for each setting that could, a scrubbed environment, and a deadline.
import { spawn } from 'node:child_process';
import { findExecutable } from '../find-executable';

export interface GitListing {
  /** Paths relative to the directory git ran in, '/'-separated; folders end with '/'. */
  paths: string[];
  /** True when the listing stopped at its bound. */
  truncated: boolean;
}

/** How long one git child may run before it is killed (a FIFO named .gitignore blocks git forever). */
export const GIT_TIMEOUT_MS = 30_000;

/**
 * `-c` overrides that outrank repository (and worktree) config. Kiln runs only `rev-parse`,
 * `check-ignore` and `ls-files`, which read no file contents; of what those could otherwise run:
 * core.fsmonitor (run by every index read), hooks (post-index-change), the pager. The rest close
 * paths git could take if a future command needed them: external diff and text conversion, any
 * transport (ssh, proxies, credential helpers), and a repository-supplied attributes file.
 */
export const GIT_SAFETY_ARGS: readonly string[] = [
  '--no-pager',
  ...[
    'core.fsmonitor=false',
    'core.useBuiltinFSMonitor=false',
    'core.hooksPath=/dev/null',
    'core.pager=cat',
    'core.attributesFile=/dev/null',
    'core.untrackedCache=false',
    'core.sshCommand=false',
    'core.gitProxy=',
    'core.askPass=',
    'credential.helper=',
    'diff.external=',
    'protocol.allow=never',
    'submodule.recurse=false',
  ].flatMap((setting) => ['-c', setting]),
];

/**
 * The environment without GIT_* variables (inside a git hook GIT_DIR and GIT_INDEX_FILE point
 * elsewhere, and GIT_CONFIG_PARAMETERS, GIT_EXTERNAL_DIFF or GIT_SSH_COMMAND would run things),
 * without the system config, pagers, prompts and askpass programs.
 */
export function cleanGitEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GIT_') && k !== 'SSH_ASKPASS' && k !== 'PAGER') env[k] = v;
  env.GIT_OPTIONAL_LOCKS = '0';
  env.GIT_CONFIG_NOSYSTEM = '1';
  env.GIT_ATTR_NOSYSTEM = '1';
  env.GIT_NO_REPLACE_OBJECTS = '1';
  env.GIT_TERMINAL_PROMPT = '0';
  env.GIT_PAGER = 'cat';
  env.PAGER = 'cat';
  return env;
}

export interface GitRunOptions {
  /** Kills git past this (default GIT_TIMEOUT_MS). */
  timeoutMs?: number;
}

/** git ran past its deadline and was killed. */
export class GitTimeoutError extends Error {
  constructor(args: readonly string[], cwd: string, ms: number) {
    super(`git ${args.join(' ')} did not finish within ${ms / 1000} s in ${cwd} and was stopped (is a .gitignore or other file git reads a FIFO?)`);
    this.name = 'GitTimeoutError';
  }
}

/**
 * Runs `git args` in `cwd`, handing stdout to `onText` as it comes; `onText` returns false to stop
 * reading (git is then killed and the promise resolves). Rejects when git fails or times out.
 */
function runGit(cwd: string, args: readonly string[], onText: (text: string) => boolean, options: GitRunOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? GIT_TIMEOUT_MS;
  const git = findExecutable('git');
  if (git === undefined) return Promise.reject(new Error('git is not on PATH (its absolute entries)'));
  return new Promise((resolve, reject) => {
    const child = spawn(git, [...GIT_SAFETY_ARGS, ...args], { cwd, env: cleanGitEnv(), stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    let stopped = false;
    let timedOut = false;
    let stderr = '';
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
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
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) reject(new GitTimeoutError(args, cwd, timeoutMs));
      else if (stopped || code === 0) resolve();
      else reject(new Error(`git ${args.join(' ')} exited with ${code}: ${stderr.trim()}`));
    });
  });
}

/** Runs `git args` in `cwd` and splits its NUL-separated stdout, stopping after `maxPaths` entries. */
export async function gitNulList(cwd: string, args: readonly string[], maxPaths: number, options: GitRunOptions = {}): Promise<GitListing> {
  const paths: string[] = [];
  let pending = '';
  let truncated = false;
  await runGit(
    cwd,
    args,
    (chunk) => {
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
    },
    options,
  );
  return { paths, truncated };
}

/**
 * Whether `dir` is a tracked part of a git work tree (false when git is missing or refuses the
 * repository; a timeout is thrown, so the caller can say why it walked instead). A folder the
 * enclosing repository ignores (a cache, a corpus) is not: git lists nothing useful there.
 */
export async function isGitWorkTree(dir: string, options: GitRunOptions = {}): Promise<boolean> {
  let out = '';
  try {
    await runGit(
      dir,
      ['rev-parse', '--is-inside-work-tree'],
      (text) => {
        out += text;
        return out.length < 64;
      },
      options,
    );
  } catch (err) {
    if (err instanceof GitTimeoutError) throw err;
    return false;
  }
  if (out.trim() !== 'true') return false;
  try {
    await runGit(dir, ['check-ignore', '-q', '.'], () => true, options);
    return false; // exit 0: the folder itself is ignored
  } catch (err) {
    if (err instanceof GitTimeoutError) throw err;
    return true; // exit 1: not ignored
  }
}

export interface GitWorkspaceListing {
  /** Tracked paths (in the index), unmerged ones once. */
  tracked: string[];
  /** Untracked paths the ignore rules let through. */
  untracked: string[];
  truncated: boolean;
}

/** Tracked files plus untracked ones that the ignore rules let through, under `root`, at most `maxPaths` in all. */
export async function gitWorkspaceFiles(root: string, maxPaths: number, options: GitRunOptions = {}): Promise<GitWorkspaceListing> {
  const cached = await gitNulList(root, ['ls-files', '-z', '--cached'], maxPaths, options);
  const tracked = [...new Set(cached.paths)]; // unmerged paths repeat
  const others = await gitNulList(root, ['ls-files', '-z', '--others', '--exclude-standard'], Math.max(0, maxPaths - tracked.length), options);
  const seen = new Set(tracked);
  return { tracked, untracked: others.paths.filter((p) => !seen.has(p)), truncated: cached.truncated || others.truncated };
}

/** Untracked paths the ignore rules exclude, ignored folders collapsed to 'dir/'. */
export function gitIgnoredPaths(root: string, maxPaths: number, options: GitRunOptions = {}): Promise<GitListing> {
  return gitNulList(root, ['ls-files', '-z', '--others', '--ignored', '--exclude-standard', '--directory'], maxPaths, options);
}

// A real VS Code for `npm start` and the end-to-end tests: code-server 4.139.1 (VS Code 1.139.1)
// installed from npm into `.kiln-dev/` (ignored), then started on 127.0.0.1 in its own process group.
//
// code-server's install compiles native modules and insists on Node 24, so Node 24 comes from npm too
// (the `node` package ships the binary and its headers). The two live in separate npm prefixes:
// installed into one prefix, npm prunes node's nested headers mid-install and node-gyp fails.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';

export const NODE_VERSION = '24.9.0';
export const CODE_SERVER_VERSION = '4.139.1';
export const REPO = resolve(__dirname, '..');
/** Where development tools are installed (`KILN_DEV_DIR` moves it, e.g. to a CI cache). */
export const DEV_DIR = process.env.KILN_DEV_DIR ?? join(REPO, '.kiln-dev');

const INSTALL_DIR = join(DEV_DIR, 'code-server');
const MARKER = join(INSTALL_DIR, 'installed.json');
const NODE_PREFIX = join(INSTALL_DIR, 'node24');
const CODE_PREFIX = join(INSTALL_DIR, 'code');

export interface CodeServerInstall {
  /** The Node 24 binary code-server runs on. */
  node: string;
  /** code-server's entry script (run as `node entry …`). */
  entry: string;
}

const install: CodeServerInstall = {
  node: join(NODE_PREFIX, 'node_modules', 'node', 'bin', 'node'),
  entry: join(CODE_PREFIX, 'node_modules', 'code-server', 'out', 'node', 'entry.js'),
};
const wanted = JSON.stringify({ node: NODE_VERSION, codeServer: CODE_SERVER_VERSION });

/** The install, when a previous run completed it (the marker is written last). */
export function installedCodeServer(): CodeServerInstall | undefined {
  try {
    if (readFileSync(MARKER, 'utf8') === wanted && existsSync(install.node) && existsSync(install.entry)) return install;
  } catch {
    // no marker: not installed
  }
  return undefined;
}

/** The first `command` on PATH, if any. */
export function findOnPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, command))) return join(dir, command);
  }
  return undefined;
}

/** What the native build needs from the system, as one actionable message (undefined when all is there). */
export function missingBuildPrerequisites(): string | undefined {
  const missing: string[] = [];
  if (!existsSync('/usr/include/gssapi/gssapi.h') || !findOnPath('krb5-config')) missing.push('libkrb5-dev');
  if (!findOnPath('make') || !findOnPath('g++')) missing.push('build-essential');
  if (!findOnPath('python3')) missing.push('python3');
  if (missing.length === 0) return undefined;
  return (
    `code-server ${CODE_SERVER_VERSION} compiles native modules at install and needs ${missing.join(', ')}.\n` +
    `On Debian or Ubuntu: sudo apt-get update && sudo apt-get install -y ${missing.join(' ')}`
  );
}

/** Runs npm in `prefix` with `env`, appending its output to the install log; rejects with the log's tail. */
function npmInstall(prefix: string, pkg: string, version: string, env: NodeJS.ProcessEnv, logFile: string): Promise<void> {
  rmSync(prefix, { recursive: true, force: true });
  mkdirSync(prefix, { recursive: true });
  writeFileSync(join(prefix, 'package.json'), JSON.stringify({ name: `kiln-dev-${pkg}`, private: true, dependencies: { [pkg]: version } }));
  return new Promise((resolvePromise, reject) => {
    const log: Buffer[] = [];
    const child = spawn('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: prefix, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => log.push(d));
    child.stderr.on('data', (d: Buffer) => log.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      const text = Buffer.concat(log).toString('utf8');
      writeFileSync(logFile, text, { flag: 'a' });
      if (code === 0) resolvePromise();
      else reject(new Error(`npm install ${pkg}@${version} failed (exit ${code}); full log: ${logFile}\n${text.slice(-4000)}`));
    });
  });
}

/**
 * Installs Node 24 and code-server into `.kiln-dev/code-server/` unless a completed install is there
 * (then it returns at once). The first install takes 2.5–4 minutes and ~800 MB.
 */
export async function ensureCodeServer(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<CodeServerInstall> {
  const done = installedCodeServer();
  if (done) return done;
  const missing = missingBuildPrerequisites();
  if (missing) throw new Error(missing);
  mkdirSync(INSTALL_DIR, { recursive: true });
  rmSync(MARKER, { force: true });
  const logFile = join(INSTALL_DIR, 'install.log');
  writeFileSync(logFile, '');
  log(`Installing Node ${NODE_VERSION} and code-server ${CODE_SERVER_VERSION} into ${INSTALL_DIR} (once; 2.5–4 minutes)…`);
  // Without the npm_* variables of an enclosing `npm test`: its user agent names the Node running it,
  // and code-server's install script reads the Node version from there and wants 24.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
  await npmInstall(NODE_PREFIX, 'node', NODE_VERSION, env, logFile);
  const nodeBin = join(NODE_PREFIX, 'node_modules', 'node', 'bin');
  const headers = join(NODE_PREFIX, 'node_modules', 'node', 'node_modules', `node-${process.platform}-${process.arch}`);
  if (!existsSync(install.node) || !existsSync(join(headers, 'include', 'node', 'node.h'))) {
    throw new Error(`npm installed node@${NODE_VERSION} without its binary or headers (looked for ${install.node} and ${headers}); see ${logFile}`);
  }
  // npm is a Node script (`#!/usr/bin/env node`): Node 24 first on PATH runs it on Node 24, which
  // code-server's postinstall checks; npm_config_nodedir points node-gyp at the matching headers.
  const codeEnv = { ...env, PATH: `${nodeBin}${delimiter}${process.env.PATH ?? ''}`, npm_config_nodedir: headers };
  await npmInstall(CODE_PREFIX, 'code-server', CODE_SERVER_VERSION, codeEnv, logFile);
  if (!existsSync(install.entry)) throw new Error(`code-server installed without ${install.entry}; see ${logFile}`);
  writeFileSync(MARKER, wanted);
  log('code-server installed.');
  return install;
}

/** A port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePromise(port));
    });
  });
}

/** User settings that keep focus in the editor and keep VS Code's own suggestions out of the way. */
export const QUIET_USER_SETTINGS: Record<string, unknown> = {
  'workbench.startupEditor': 'none',
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'workbench.tips.enabled': false,
  'chat.disableAIFeatures': true,
  'security.workspace.trust.enabled': false,
  'editor.quickSuggestions': { other: false, comments: false, strings: false },
  'editor.suggestOnTriggerCharacters': false,
  'editor.wordBasedSuggestions': 'off',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
};

export interface CodeServerDirs {
  root: string;
  userData: string;
  extensions: string;
  xdg: string;
}

/** A fresh temp folder with user data, extensions and XDG dirs; user settings written into it. */
export function makeCodeServerDirs(userSettings: Record<string, unknown> = {}, prefix = 'kiln-code-server-'): CodeServerDirs {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const dirs = { root, userData: join(root, 'user-data'), extensions: join(root, 'extensions'), xdg: join(root, 'xdg') };
  for (const sub of ['config', 'data', 'cache']) mkdirSync(join(dirs.xdg, sub), { recursive: true });
  mkdirSync(join(dirs.userData, 'User'), { recursive: true });
  mkdirSync(dirs.extensions, { recursive: true });
  writeFileSync(join(dirs.userData, 'User', 'settings.json'), JSON.stringify({ ...QUIET_USER_SETTINGS, ...userSettings }, null, 2));
  writeFileSync(join(root, 'config.yaml'), 'auth: none\n');
  return dirs;
}

function codeServerEnv(dirs: CodeServerDirs, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    XDG_CONFIG_HOME: join(dirs.xdg, 'config'),
    XDG_DATA_HOME: join(dirs.xdg, 'data'),
    XDG_CACHE_HOME: join(dirs.xdg, 'cache'),
    ...extra,
  };
}

function dirFlags(dirs: CodeServerDirs): string[] {
  return ['--user-data-dir', dirs.userData, '--extensions-dir', dirs.extensions, '--config', join(dirs.root, 'config.yaml')];
}

/** Installs a VSIX into `dirs` with code-server's CLI; rejects with its output when that fails. */
export function installVsix(cs: CodeServerInstall, dirs: CodeServerDirs, vsix: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cs.node, [cs.entry, ...dirFlags(dirs), '--install-extension', vsix], { env: codeServerEnv(dirs), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 && /successfully installed/i.test(out) ? resolvePromise(out) : reject(new Error(`installing ${vsix} failed (exit ${code}):\n${out}`))));
  });
}

/** Links an unpacked extension folder (e.g. this repository) into `dirs` as `<publisher>.<name>-<version>`. */
export function linkExtension(dirs: CodeServerDirs, folder: string): string {
  const manifest = JSON.parse(readFileSync(join(folder, 'package.json'), 'utf8')) as { publisher: string; name: string; version: string };
  const link = join(dirs.extensions, `${manifest.publisher}.${manifest.name}-${manifest.version}`);
  symlinkSync(folder, link, 'dir');
  return link;
}

export interface RunningCodeServer {
  url: string;
  /** The workbench URL with the folder open. */
  folderUrl: string;
  dirs: CodeServerDirs;
  child: ChildProcess;
  /** Everything code-server printed so far. */
  output(): string;
  /** Stops the whole process group (file watchers and extension hosts included). */
  stop(): Promise<void>;
}

export interface StartOptions {
  folder: string;
  dirs: CodeServerDirs;
  env?: NodeJS.ProcessEnv;
  /** Echo code-server's output (for `npm start`). */
  echo?: boolean;
  /** Keep VS Code's workspace trust on (off by default), so an untrusted folder opens in Restricted Mode. */
  workspaceTrust?: boolean;
  readyTimeoutMs?: number;
}

/** Starts code-server on a free 127.0.0.1 port, in a new session and process group, and waits until it answers. */
export async function startCodeServer(cs: CodeServerInstall, options: StartOptions): Promise<RunningCodeServer> {
  const port = await freePort();
  const flags = [
    '--auth',
    'none',
    '--bind-addr',
    `127.0.0.1:${port}`,
    ...dirFlags(options.dirs),
    '--disable-telemetry',
    '--disable-update-check',
    ...(options.workspaceTrust ? [] : ['--disable-workspace-trust']),
    '--disable-getting-started-override',
    '--ignore-last-opened',
    '--reconnection-grace-time',
    '5',
    options.folder,
  ];
  // detached: setsid(), so the server and everything it forks share one process group we can end.
  const child = spawn(cs.node, [cs.entry, ...flags], { env: codeServerEnv(options.dirs, options.env), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (d: Buffer) => {
    output += d.toString('utf8');
    if (options.echo) process.stderr.write(d);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  // Should this process die without stopping it, the group still goes with it.
  const killOnExit = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.on('exit', killOnExit);
  const url = `http://127.0.0.1:${port}/`;
  const running: RunningCodeServer = {
    url,
    folderUrl: `${url}?folder=${encodeURIComponent(options.folder)}`,
    dirs: options.dirs,
    child,
    output: () => output,
    stop: async () => {
      await stopProcessGroup(child);
      process.off('exit', killOnExit);
    },
  };
  try {
    await waitUntilUp(`${url}healthz`, child, options.readyTimeoutMs ?? 60_000, () => output);
  } catch (err) {
    await running.stop();
    throw err;
  }
  return running;
}

async function waitUntilUp(healthz: string, child: ChildProcess, timeoutMs: number, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`code-server exited (${child.exitCode ?? child.signalCode}) before it answered:\n${output()}`);
    try {
      if ((await fetch(healthz)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`code-server did not answer ${healthz} within ${timeoutMs} ms:\n${output()}`);
}

/** Whether any process of the group `pgid` is still running. */
export function processGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to the child's process group, then SIGKILL to whatever is left after `graceMs`. */
export async function stopProcessGroup(child: ChildProcess, graceMs = 5000): Promise<void> {
  const pgid = child.pid;
  if (pgid === undefined) return;
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-pgid, s);
    } catch {
      // the group is gone
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (processGroupAlive(pgid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (processGroupAlive(pgid)) signal('SIGKILL');
  while (processGroupAlive(pgid) && Date.now() < deadline + 2000) await new Promise((r) => setTimeout(r, 50));
}

/** Removes a temp tree made by makeCodeServerDirs. */
export function removeCodeServerDirs(dirs: CodeServerDirs): void {
  rmSync(dirs.root, { recursive: true, force: true });
}

// `node --import tsx scripts/code-server.ts install`: install (or confirm) the dev copy of code-server.
if (require.main === module && process.argv[2] === 'install') {
  ensureCodeServer().then(
    (cs) => console.log(`code-server ${CODE_SERVER_VERSION}: ${cs.entry}\nNode ${NODE_VERSION}: ${cs.node}`),
    (err: unknown) => {
      console.error((err as Error).message);
      process.exit(1);
    },
  );
}

// The held-out files of `kiln eval <dir>`: source files of common code languages under a folder,
// walked in sorted order (deterministic), bounded in entries visited, files kept and bytes per file.
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { EvalFile } from './evaluate';

export interface EvalFilesOptions {
  /** Files kept, picked evenly over the sorted list (default 200). */
  maxFiles?: number;
  /** Larger files are skipped (default 1 MiB). */
  maxBytes?: number;
}

const CODE_EXTENSIONS = new Set(
  (
    'ts tsx mts cts js jsx mjs cjs py pyi go rs java kt kts scala c h cc cpp cxx hpp hh cs fs swift m mm ' +
    'rb php lua pl r jl dart ex exs erl hs ml clj sh bash zsh ps1 sql vue svelte zig nim'
  )
    .split(' ')
    .map((e) => `.${e}`),
);
/** Dependency, build-output and cache folders (dot-folders such as .git are skipped too). */
const SKIP_DIRS = new Set(['node_modules', 'dist', 'out', 'build', 'target', 'vendor', 'coverage', '__pycache__', 'venv']);
/** Directory entries looked at before the walk stops. */
const MAX_ENTRIES = 100_000;
const SNIFF_BYTES = 8192;

function isCodeFile(name: string): boolean {
  return CODE_EXTENSIONS.has(extname(name).toLowerCase()) && !/\.min\.[cm]?js$/i.test(name);
}

/** Relative POSIX paths of code files no larger than `maxBytes`, sorted; links are not followed. */
function listCodeFiles(root: string, maxBytes: number): string[] {
  const found: string[] = [];
  let visited = 0;
  const walk = (rel: string): void => {
    const entries = readdirSync(join(root, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (++visited > MAX_ENTRIES) return;
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory() && !entry.name.startsWith('.') && !SKIP_DIRS.has(entry.name)) walk(path);
      else if (entry.isFile() && isCodeFile(entry.name) && statSync(join(root, path)).size <= maxBytes) found.push(path);
    }
  };
  walk('');
  return found;
}

/** True when the first bytes hold a NUL: a binary file with a code extension. */
function looksBinary(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(SNIFF_BYTES);
    return head.subarray(0, readSync(fd, head, 0, SNIFF_BYTES, 0)).includes(0);
  } finally {
    closeSync(fd);
  }
}

/** Source files under `dir` for evaluation; `path` is relative to `dir`, with "/" separators. */
export function collectEvalFiles(dir: string, options: EvalFilesOptions = {}): EvalFile[] {
  if (!statSync(dir).isDirectory()) throw new Error(`${dir} is not a directory`);
  const maxFiles = options.maxFiles ?? 200;
  const paths = listCodeFiles(dir, options.maxBytes ?? 2 ** 20);
  const picked = paths.length <= maxFiles ? paths : Array.from({ length: maxFiles }, (_, i) => paths[Math.floor((i * paths.length) / maxFiles)]!);
  return picked.filter((path) => !looksBinary(join(dir, path))).map((path) => ({ path, text: readFileSync(join(dir, path), 'utf8') }));
}

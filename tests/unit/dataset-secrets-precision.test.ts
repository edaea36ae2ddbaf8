// Precision of the secret scrubber on ordinary source: a fixed selection of files that `npm ci`
// installs (TypeScript's lib declarations, Node's types, HTTP and credential client code, the
// packages' Markdown, YAML and manifests),
// held out from any tuning by being third-party code. At most 0.5% of its lines may be blanked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { scrubSecrets } from '../../server/src/dataset/secrets';

const MAX_BLANKED_FRACTION = 0.005;
const MIN_CORPUS_BYTES = 4_000_000;

interface CorpusGroup {
  dir: string;
  /** File names taken, searched recursively under `dir`. */
  include: RegExp;
}

const CORPUS: CorpusGroup[] = [
  { dir: 'node_modules/typescript/lib', include: /^lib\.[\w.]+\.d\.ts$/ },
  { dir: 'node_modules/@types/node', include: /\.d\.ts$/ },
  { dir: 'node_modules/vscode-languageserver-protocol/lib/common', include: /\.js$/ },
  { dir: 'node_modules/vscode-languageserver/lib/common', include: /\.js$/ },
  { dir: 'node_modules/undici/lib/core', include: /\.js$/ },
  { dir: 'node_modules/undici/lib/web/fetch', include: /\.js$/ },
  { dir: 'node_modules/@azure/identity/dist/commonjs/credentials', include: /\.js$/ },
  { dir: 'node_modules/@azure/msal-node/dist', include: /\.(cjs|js)$/ },
  { dir: 'node_modules/jsonwebtoken', include: /\.js$/ },
];

function walk(dir: string, include: RegExp, out: string[]): void {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return; // a group that is not installed counts toward the minimum size below
  }
  for (const name of names) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, include, out);
    else if (include.test(name)) out.push(path);
  }
}

/** Documents and configuration, where bare `key: value` lines are read as literals. */
const DOCS_AND_CONFIG = /\.(md|ya?ml)$|^package\.json$/;

/** Each installed package's documents and configuration, three folders deep at most, nested packages left out. */
function docsAndConfig(dir: string, depth: number, out: string[]): void {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat?.isFile() && DOCS_AND_CONFIG.test(name)) out.push(path);
    else if (stat?.isDirectory() && depth < 3 && name !== 'node_modules') docsAndConfig(path, depth + 1, out);
  }
}

function corpusFiles(): string[] {
  const files: string[] = [];
  for (const group of CORPUS) walk(group.dir, group.include, files);
  for (const name of readdirSync('node_modules').sort()) {
    if (name.startsWith('.')) continue;
    const packages = name.startsWith('@') ? readdirSync(join('node_modules', name)).map((p) => join(name, p)) : [name];
    for (const pkg of packages) docsAndConfig(join('node_modules', pkg), 0, files);
  }
  return files;
}

test('on a held-out corpus of ordinary source at most 0.5% of lines are blanked', () => {
  const files = corpusFiles();
  let bytes = 0;
  let lines = 0;
  let blanked = 0;
  const byRule: Record<string, number> = {};
  const examples: string[] = [];
  for (const path of files) {
    const text = readFileSync(path, 'utf8');
    bytes += text.length;
    const result = scrubSecrets(text, { path });
    const original = text.split(/\r?\n/);
    lines += original.length;
    blanked += result.lines.length;
    for (const [rule, n] of Object.entries(result.byKind)) byRule[rule] = (byRule[rule] ?? 0) + (n ?? 0);
    for (const n of result.lines.slice(0, 3)) examples.push(`  ${path}:${n}: ${original[n - 1]!.trim().slice(0, 120)}`);
  }
  const fraction = blanked / Math.max(1, lines);
  console.log(`corpus: ${files.length} files, ${(bytes / 1e6).toFixed(2)} MB, ${lines} lines; blanked ${blanked} (${(fraction * 100).toFixed(3)}%)`);
  console.log(`by rule: ${JSON.stringify(byRule)}`);
  console.log(`blanked lines (first 3 per file):\n${examples.slice(0, 40).join('\n')}`);
  assert.ok(bytes >= MIN_CORPUS_BYTES, `corpus is ${bytes} bytes; run npm ci so the packages it reads are installed`);
  assert.ok(fraction <= MAX_BLANKED_FRACTION, `${blanked} of ${lines} lines blanked (${(fraction * 100).toFixed(3)}%)`);
});

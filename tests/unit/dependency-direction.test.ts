// The dependency direction docs/ARCHITECTURE.md describes, checked on the import statements: nothing
// under server/ imports `vscode`; the lower layers never reach up into the LSP, completion, training or
// command code; the client takes from the server only the protocol and the Node-only downloader.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, it } from 'node:test';

const REPO = join(__dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(join(REPO, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(REPO, path)).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Every module a file imports (static, dynamic, type-only), relative ones resolved to repository paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(REPO, file), 'utf8');
  const specs = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
  return specs.map((spec) => (spec.startsWith('.') ? normalize(join(dirname(file), spec)) : spec));
}

/** The layer of a repository path under server/src: its first folder, or the file itself at the top. */
function serverLayer(path: string): string {
  const rest = relative('server/src', path).split('/');
  return rest.length > 1 ? rest[0]! : rest[0]!.replace(/\.ts$/, '');
}

const LOWER_LAYERS = new Set(['model', 'runtime', 'kvcache', 'dataset', 'telemetry']);
const UPPER_LAYERS = new Set(['lsp', 'completion', 'training', 'commands', 'cli', 'main']);

describe('dependency direction', () => {
  const server = sourceFiles('server/src');
  const client = sourceFiles('client/src');

  it('nothing under server/ imports vscode', () => {
    const offenders = server.filter((f) => importsOf(f).includes('vscode'));
    assert.deepEqual(offenders, []);
  });

  it('model, runtime, kvcache, dataset and telemetry never import lsp, completion, training or commands', () => {
    const offenders = server.flatMap((file) => {
      if (!LOWER_LAYERS.has(serverLayer(file))) return [];
      return importsOf(file)
        .filter((target) => target.startsWith('server/src/') && UPPER_LAYERS.has(serverLayer(target)))
        .map((target) => `${file} -> ${target}`);
    });
    assert.deepEqual(offenders, []);
  });

  it('the client imports from the server only protocol.ts and the Node-only downloader (never onnxruntime)', () => {
    const offenders = client.flatMap((file) =>
      importsOf(file)
        .filter((target) => target === 'onnxruntime-node' || (target.startsWith('server/src/') && target !== 'server/src/protocol' && !target.startsWith('server/src/model/download/')))
        .map((target) => `${file} -> ${target}`),
    );
    assert.deepEqual(offenders, []);
  });

  it('the import scan sees the imports it checks (a scan that found nothing would pass everything)', () => {
    assert.ok(importsOf('client/src/status-bar.ts').includes('vscode'));
    assert.ok(importsOf('server/src/runtime/execution-provider.ts').includes('server/src/runtime/gpu-probe'));
    assert.ok(importsOf('client/src/download-command.ts').some((t) => t.startsWith('server/src/model/download/')));
  });
});

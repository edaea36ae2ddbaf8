// The dependency direction docs/ARCHITECTURE.md describes, checked on the import statements: every
// server layer imports only the layers its row of MAY_IMPORT names (so no arrow points up or sideways),
// nothing under server/ imports `vscode`, and the client takes from the server only the protocol and
// the Node-only downloader. The checker is a plain function, so a planted wrong-way import is shown
// to fail it without writing any file.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, it } from 'node:test';

const REPO = join(__dirname, '..', '..');

/**
 * The layers of server/src (a folder, or a file at the top) and the other layers each may import.
 * The arrows of docs/ARCHITECTURE.md: lsp → completion → runtime → kvcache → model (the runtime owns
 * the KV slots, so the KV states and their pool sit below it); completion → context and dataset →
 * context (the snippets of other files; context reads them through interfaces dataset implements,
 * so it imports only model); training (the
 * trainer) → dataset, model, runtime; evaluation → completion; finetune (the "fine-tune on this
 * repository" run) → dataset, evaluation, training; commands and lsp above them all.
 */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  main: ['commands'],
  cli: ['commands', 'model'], // model/export owns `kiln export`
  commands: [
    'lsp',
    'finetune',
    'evaluation',
    'training',
    'completion',
    'context',
    'dataset',
    'kvcache',
    'runtime',
    'remote',
    'model',
    'telemetry',
    'protocol',
    'default-model',
    'random',
  ],
  lsp: ['finetune', 'evaluation', 'completion', 'context', 'dataset', 'runtime', 'remote', 'model', 'telemetry', 'protocol', 'default-model', 'start-worker'],
  finetune: ['evaluation', 'training', 'completion', 'context', 'dataset', 'runtime', 'model', 'telemetry'],
  evaluation: ['completion', 'context', 'runtime', 'model', 'telemetry'],
  training: ['dataset', 'runtime', 'model'],
  completion: ['kvcache', 'context', 'runtime', 'remote', 'model', 'telemetry', 'random'],
  kvcache: ['model'],
  dataset: ['context', 'model', 'find-executable', 'start-worker'],
  context: ['model'],
  runtime: ['kvcache', 'model', 'find-executable', 'start-worker'],
  remote: ['telemetry'], // text-level remote backends: beside the runtime, below completion
  model: ['random', 'start-worker'], // a graph build's second quantizing thread (model/graph/parallel-quantize.ts)
  protocol: ['telemetry'],
  telemetry: [],
  random: [],
  'default-model': [],
  'find-executable': [],
  'start-worker': [],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(join(REPO, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(REPO, path)).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Every module a file imports or re-exports (static, dynamic, type-only), relative ones resolved to repository paths. */
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

/** `file -> target` for every import of a server file that its layer's row does not allow (and for layers with no row). */
function wrongWayImports(imports: ReadonlyMap<string, readonly string[]>, mayImport: Readonly<Record<string, readonly string[]>>): string[] {
  return [...imports].flatMap(([file, targets]) => {
    const layer = serverLayer(file);
    const allowed = mayImport[layer];
    if (allowed === undefined) return [`${file}: layer "${layer}" has no row in the allowed-imports table`];
    return targets
      .filter((target) => target.startsWith('server/src/'))
      .filter((target) => serverLayer(target) !== layer && !allowed.includes(serverLayer(target)))
      .map((target) => `${file} -> ${target}`);
  });
}

/** The layers in an order where each imports only later ones; throws on a cycle in the table. */
function layerOrder(mayImport: Readonly<Record<string, readonly string[]>>): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (layer: string, path: string[]): void => {
    if (state.get(layer) === 'done') return;
    if (state.get(layer) === 'visiting') throw new Error(`the table has a cycle: ${[...path, layer].join(' -> ')}`);
    state.set(layer, 'visiting');
    for (const below of mayImport[layer] ?? []) visit(below, [...path, layer]);
    state.set(layer, 'done');
    order.unshift(layer);
  };
  for (const layer of Object.keys(mayImport)) visit(layer, []);
  return order;
}

describe('dependency direction', () => {
  const server = sourceFiles('server/src');
  const client = sourceFiles('client/src');

  it('nothing under server/ imports vscode', () => {
    const offenders = server.filter((f) => importsOf(f).includes('vscode'));
    assert.deepEqual(offenders, []);
  });

  it('every server file imports only the layers its row of the table allows', () => {
    assert.deepEqual(wrongWayImports(new Map(server.map((f) => [f, importsOf(f)])), MAY_IMPORT), []);
  });

  it('the table has no cycle: the layers stack, each importing only those below it', () => {
    const order = layerOrder(MAY_IMPORT);
    for (const chain of [
      ['lsp', 'completion', 'runtime', 'kvcache', 'model'],
      ['finetune', 'training', 'dataset', 'model'],
      ['finetune', 'evaluation', 'completion'],
      ['completion', 'context', 'model'],
      ['dataset', 'context', 'model'],
    ]) {
      const positions = chain.map((layer) => order.indexOf(layer));
      assert.deepEqual(
        positions,
        [...positions].sort((a, b) => a - b),
        `${chain.join(' → ')} in ${order.join(', ')}`,
      );
    }
  });

  it('a planted wrong-way import fails the check (and a right-way one beside it does not)', () => {
    const planted = new Map<string, string[]>([
      ['server/src/runtime/planted.ts', ['server/src/completion/engine', 'server/src/model/config']],
      ['server/src/training/planted.ts', ['server/src/evaluation/evaluate', 'server/src/dataset/pack']],
      ['server/src/evaluation/planted.ts', ['server/src/finetune/fine-tune']],
      ['server/src/completion/planted.ts', ['server/src/lsp/settings', './same-layer', 'node:fs']],
      ['server/src/kvcache/planted.ts', ['server/src/dataset/pack']],
      ['server/src/lsp/planted.ts', ['server/src/completion/engine']],
      ['server/src/context/planted.ts', ['server/src/dataset/secrets', 'server/src/model/tokenizer']],
    ]);
    assert.deepEqual(wrongWayImports(planted, MAY_IMPORT), [
      'server/src/runtime/planted.ts -> server/src/completion/engine',
      'server/src/training/planted.ts -> server/src/evaluation/evaluate',
      'server/src/evaluation/planted.ts -> server/src/finetune/fine-tune',
      'server/src/completion/planted.ts -> server/src/lsp/settings',
      'server/src/kvcache/planted.ts -> server/src/dataset/pack',
      'server/src/context/planted.ts -> server/src/dataset/secrets',
    ]);
  });

  it('a new server folder without a row in the table fails the check', () => {
    const offenders = wrongWayImports(new Map([['server/src/newlayer/file.ts', ['server/src/model/config']]]), MAY_IMPORT);
    assert.deepEqual(offenders, ['server/src/newlayer/file.ts: layer "newlayer" has no row in the allowed-imports table']);
  });

  it('the client imports from the server only protocol.ts and the Node-only downloader (never onnxruntime)', () => {
    const offenders = client.flatMap((file) =>
      importsOf(file)
        .filter(
          (target) => target === 'onnxruntime-node' || (target.startsWith('server/src/') && target !== 'server/src/protocol' && !target.startsWith('server/src/model/download/')),
        )
        .map((target) => `${file} -> ${target}`),
    );
    assert.deepEqual(offenders, []);
  });

  it('the import scan sees the imports it checks (a scan that found nothing would pass everything)', () => {
    assert.ok(importsOf('client/src/status-bar.ts').includes('vscode'));
    assert.ok(importsOf('server/src/runtime/execution-provider.ts').includes('server/src/runtime/gpu-probe'));
    assert.ok(importsOf('server/src/finetune/fine-tune.ts').includes('server/src/evaluation/evaluate'));
    assert.ok(importsOf('client/src/download-command.ts').some((t) => t.startsWith('server/src/model/download/')));
  });
});

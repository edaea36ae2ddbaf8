// Bundles the CLI (and, as they land, the language server and the VS Code client) into dist/.
// Native packages stay external: onnxruntime-node loads its .node binding from its own folder.
import { build } from 'esbuild';

const entryPoints: Record<string, string> = {
  cli: 'server/src/cli.ts',
  server: 'server/src/main.ts',
  client: 'client/src/extension.ts',
  'train-worker': 'server/src/finetune/worker.ts',
  'dataset-worker': 'server/src/dataset/tokenize-worker.ts',
  'model-worker': 'server/src/lsp/model-worker.ts',
  'session-worker': 'server/src/runtime/session-worker.ts',
  'quantize-worker': 'server/src/model/graph/quantize-worker.ts',
};

build({
  entryPoints,
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  external: ['onnxruntime-node', 'vscode'],
  logLevel: 'warning',
}).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

// A healthy start on a machine without a GPU writes nothing to stderr: under `auto`, onnxruntime's
// WebGPU provider (Dawn) used to print Vulkan warnings there on every model load, which editors show
// as errors. The built CLI loads a seeded tiny model as the language server would.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { webgpuUnavailableReason } from '../../server/src/runtime/gpu-probe';
import { ensureBuilt, runKiln } from '../helpers/built-cli';
import { makeTinyWeights, TINY_QWEN2, writeTinyCheckpoint } from '../helpers/tiny-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-quiet-');
const modelDir = join(root, 'model');
after(() => rmSync(root, { recursive: true, force: true }));
before(() => {
  ensureBuilt();
  writeTinyCheckpoint(modelDir, makeTinyWeights(TINY_QWEN2, 3));
});

describe('a model load under auto on a CPU-only machine', () => {
  const noGpu = webgpuUnavailableReason();
  it('ends on the CPU with an empty stderr, and says why WebGPU was passed over', { skip: noGpu === undefined ? 'this machine has a GPU and Vulkan' : false }, async () => {
    const r = await runKiln('model', 'info', modelDir, '--json', '--ep', 'auto', '--threads', '1', '--cache', join(root, 'cache'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'nothing on stderr');
    const info = JSON.parse(r.stdout) as { executionProvider: string; providerAttempts: { provider: string; error: string }[] };
    assert.equal(info.executionProvider, 'cpu');
    assert.deepEqual(info.providerAttempts.find((a) => a.provider === 'webgpu')?.error, noGpu);
  });
});

// Execution-provider fallback: the policy with injected failures (any machine), then a real 'auto'
// load that must end on a provider that works, with every provider passed over recorded and why.
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { InferenceSession } from 'onnxruntime-node';
import {
  createWithFallback,
  type ExecutionProvider,
  type ExecutionProviderChoice,
  providerOrder,
  providerUnavailableReason,
  sessionOptions,
} from '../../server/src/runtime/execution-provider';
import { loadModel } from '../../server/src/runtime/load-model';
import { parseNvidiaSmiProcessMemory } from '../../server/src/runtime/memory';
import { makeTinyWeights, TINY_QWEN2, writeTinyCheckpoint } from '../helpers/tiny-model';
import { forwardRows, tempDir } from '../helpers/tiny-session';

/** Runs the fallback with `failures` (provider -> what create throws) and records every create call. */
async function fallback(choice: ExecutionProviderChoice, failures: Partial<Record<ExecutionProvider, unknown>>, unavailable: Partial<Record<ExecutionProvider, string>> = {}) {
  const calls: { provider: ExecutionProvider; options: InferenceSession.SessionOptions }[] = [];
  const log: string[] = [];
  const create = async (provider: ExecutionProvider, options: InferenceSession.SessionOptions) => {
    calls.push({ provider, options });
    if (provider in failures) throw failures[provider];
    return `session on ${provider}`;
  };
  const result = createWithFallback({ executionProvider: choice, threads: 2, log: (m) => log.push(m) }, create, (p) => unavailable[p]);
  return { result, calls, log };
}

describe('createWithFallback', () => {
  it('auto tries cuda, then webgpu, then the CPU, recording each failure with its reason', async () => {
    const { result, calls, log } = await fallback('auto', {
      cuda: new Error('Failed to load shared library libonnxruntime_providers_cuda.so\n'),
      webgpu: new Error('Failed to get a WebGPU adapter: No supported adapters'),
    });
    const r = await result;
    assert.equal(r.session, 'session on cpu');
    assert.equal(r.provider, 'cpu');
    assert.deepEqual(
      calls.map((c) => c.provider),
      ['cuda', 'webgpu', 'cpu'],
    );
    assert.deepEqual(r.attempts, [
      { provider: 'cuda', error: 'Failed to load shared library libonnxruntime_providers_cuda.so' }, // trailing newline trimmed
      { provider: 'webgpu', error: 'Failed to get a WebGPU adapter: No supported adapters' },
    ]);
    for (const { provider, options } of calls) {
      assert.deepEqual(options.executionProviders, [provider], 'one provider per session: ORT does not fall back by itself');
      assert.equal(options.intraOpNumThreads, 2);
    }
    assert.deepEqual(log, [
      'execution provider cuda failed: Failed to load shared library libonnxruntime_providers_cuda.so',
      'execution provider webgpu failed: Failed to get a WebGPU adapter: No supported adapters',
      'execution provider cpu in use',
    ]);
  });

  it('auto stops at the first provider that works', async () => {
    const { result, calls } = await fallback('auto', { cuda: new Error('no CUDA') });
    const r = await result;
    assert.equal(r.provider, 'webgpu');
    assert.deepEqual(
      calls.map((c) => c.provider),
      ['cuda', 'webgpu'],
    );
    assert.deepEqual(r.attempts, [{ provider: 'cuda', error: 'no CUDA' }]);
  });

  it('a provider that cannot be tried on this install is recorded without a create call', async () => {
    const { result, calls } = await fallback('auto', { webgpu: 'thrown string, not an Error' }, { cuda: 'library not installed' });
    const r = await result;
    assert.equal(r.provider, 'cpu');
    assert.deepEqual(
      calls.map((c) => c.provider),
      ['webgpu', 'cpu'],
    );
    assert.deepEqual(r.attempts, [
      { provider: 'cuda', error: 'library not installed' },
      { provider: 'webgpu', error: 'thrown string, not an Error' },
    ]);
  });

  it("explicit 'webgpu' falls back to the CPU; explicit 'cpu' tries only the CPU", async () => {
    const webgpu = await fallback('webgpu', { webgpu: new Error('no adapter') });
    const r = await webgpu.result;
    assert.equal(r.provider, 'cpu');
    assert.deepEqual(
      webgpu.calls.map((c) => c.provider),
      ['webgpu', 'cpu'],
    );
    assert.deepEqual(r.attempts, [{ provider: 'webgpu', error: 'no adapter' }]);
    const cpu = await fallback('cpu', {});
    assert.equal((await cpu.result).provider, 'cpu');
    assert.deepEqual(
      cpu.calls.map((c) => c.provider),
      ['cpu'],
    );
  });

  it('when every provider fails, the error lists every reason', async () => {
    const { result } = await fallback('auto', { webgpu: new Error('no adapter'), cpu: new Error('out of memory') }, { cuda: 'not installed' });
    await assert.rejects(result, {
      message: 'no execution provider could load the model: cuda: not installed; webgpu: no adapter; cpu: out of memory',
    });
    const { result: explicit } = await fallback('cuda', { cuda: undefined, cpu: null });
    await assert.rejects(explicit, { message: 'no execution provider could load the model: cuda: undefined; cpu: null' });
  });

  it('orders and options', () => {
    assert.deepEqual(providerOrder('auto'), ['cuda', 'webgpu', 'cpu']);
    assert.deepEqual(providerOrder('cuda'), ['cuda', 'cpu']);
    assert.deepEqual(providerOrder('webgpu'), ['webgpu', 'cpu']);
    assert.deepEqual(providerOrder('cpu'), ['cpu']);
    assert.ok(!('intraOpNumThreads' in sessionOptions('cpu', 0)), '0 threads leaves the choice to ORT');
    assert.equal(providerUnavailableReason('cpu'), undefined);
    assert.equal(providerUnavailableReason('webgpu', 'webgpu'), undefined, 'asked for by name, WebGPU is always tried');
    const cuda = providerUnavailableReason('cuda');
    if (cuda !== undefined) assert.match(cuda, /CUDA provider library is not installed.*script\/install --onnxruntime-node-install=cuda12/);
  });
});

describe("loadModel with executionProvider 'auto'", () => {
  const root = tempDir('kiln-ep-');
  after(() => rmSync(root, { recursive: true, force: true }));

  it('ends on a provider that works, with every provider before it recorded', async () => {
    const modelDir = join(root, 'model');
    writeTinyCheckpoint(modelDir, makeTinyWeights(TINY_QWEN2, 5));
    const loaded = await loadModel(modelDir, { executionProvider: 'auto', threads: 1, cacheDir: join(root, 'cache') });
    try {
      const order = providerOrder('auto');
      assert.deepEqual(
        loaded.attempts.map((a) => a.provider),
        order.slice(0, order.indexOf(loaded.session.provider)),
      );
      for (const a of loaded.attempts) assert.ok(a.error.length > 0 && a.error === a.error.trim(), `${a.provider}: a reason, trimmed`);
      const gpuLess = !existsSync('/dev/nvidiactl') && !existsSync('/dev/dri');
      if (gpuLess) {
        assert.equal(loaded.session.provider, 'cpu');
        assert.match(loaded.attempts[0]!.error, /CUDA provider library is not installed|Failed to load shared library/);
        assert.match(loaded.attempts[1]!.error, /no GPU device/, 'WebGPU is not even tried without a GPU');
      }
      const rows = await forwardRows(loaded, [1, 2, 3]);
      assert.ok(
        rows.every((r) => r.every(Number.isFinite)),
        'the chosen provider runs the model',
      );
    } finally {
      await loaded.session.release();
    }
  });
});

describe('parseNvidiaSmiProcessMemory', () => {
  const MiB = 1024 * 1024;
  it('sums the rows of one pid, in bytes', () => {
    const text = '1234, 512\n999, 100\n1234, 256\n';
    assert.equal(parseNvidiaSmiProcessMemory(text, 1234), 768 * MiB);
    assert.equal(parseNvidiaSmiProcessMemory(text, 999), 100 * MiB);
  });
  it('tolerates CRLF, spaces, headers and [N/A]; absent pid or empty output is undefined', () => {
    assert.equal(parseNvidiaSmiProcessMemory('pid, used_gpu_memory [MiB]\r\n  42 ,  10 \r\n42, [N/A]\r\n', 42), 10 * MiB);
    assert.equal(parseNvidiaSmiProcessMemory('42, [N/A]\n', 42), undefined);
    assert.equal(parseNvidiaSmiProcessMemory('7, 10\n', 42), undefined);
    assert.equal(parseNvidiaSmiProcessMemory('', 42), undefined);
    assert.equal(parseNvidiaSmiProcessMemory('No running processes found\n', 42), undefined);
    assert.equal(parseNvidiaSmiProcessMemory('42, 0\n', 42), 0, 'a process holding 0 MiB is listed, not absent');
  });
});

// The GPU probe that keeps `auto` from asking onnxruntime for WebGPU where it cannot work (Dawn
// writes Vulkan warnings to stderr before failing): each missing piece named, a complete Vulkan
// stack tried, and the provider order on a machine without a GPU reduced to the CPU.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { InferenceSession } from 'onnxruntime-node';
import { createWithFallback, type ExecutionProvider, providerUnavailableReason } from '../../server/src/runtime/execution-provider';
import { type GpuProbeHost, webgpuUnavailableReason } from '../../server/src/runtime/gpu-probe';

/** A fake machine: `files` are the paths that exist (folders are implied by their files). */
function machine(files: string[], options: { platform?: NodeJS.Platform; env?: NodeJS.ProcessEnv; ldCache?: string } = {}): GpuProbeHost {
  const set = new Set(files);
  return {
    platform: options.platform ?? 'linux',
    env: options.env ?? {},
    exists: (path) => set.has(path),
    list: (dir) => files.filter((f) => f.startsWith(`${dir}/`)).map((f) => f.slice(dir.length + 1).split('/')[0]!),
    read: (path) => (path === '/etc/ld.so.cache' && options.ldCache !== undefined ? Buffer.from(options.ldCache, 'latin1') : undefined),
  };
}

const NVIDIA_DEVICE = ['/dev/nvidia0', '/dev/nvidiactl'];
const LOADER = '/usr/lib/x86_64-linux-gnu/libvulkan.so.1';
const ICD = '/usr/share/vulkan/icd.d/nvidia_icd.json';

describe('webgpuUnavailableReason', () => {
  it('a machine with no GPU device node is ruled out, whatever Vulkan files it has', () => {
    const reason = webgpuUnavailableReason(machine([LOADER, '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json', '/dev/null', '/dev/dri/card0']));
    assert.match(reason ?? '', /no GPU device/);
  });

  it('a GPU without the Vulkan loader, or without a Vulkan driver, is ruled out with that reason', () => {
    assert.match(webgpuUnavailableReason(machine([...NVIDIA_DEVICE, ICD])) ?? '', /no Vulkan loader \(libvulkan\.so\.1\)/);
    assert.match(webgpuUnavailableReason(machine(['/dev/dri/renderD128', LOADER])) ?? '', /no Vulkan driver/);
  });

  it('a GPU with the loader and a driver manifest is tried, wherever the loader finds them', () => {
    assert.equal(webgpuUnavailableReason(machine([...NVIDIA_DEVICE, LOADER, ICD])), undefined);
    assert.equal(webgpuUnavailableReason(machine(['/dev/dri/renderD128', LOADER, '/etc/vulkan/icd.d/radeon_icd.x86_64.json'])), undefined);
    // the loader known only to the linker cache, the manifest named by an environment variable
    const custom = '/opt/driver/icd.json';
    assert.equal(
      webgpuUnavailableReason(machine(['/dev/dxg', custom], { ldCache: `\0ld.so-1.7.0\0libvulkan.so.1\0/opt/lib/libvulkan.so.1\0`, env: { VK_ICD_FILENAMES: custom } })),
      undefined,
    );
    // a loader on LD_LIBRARY_PATH, a manifest under XDG_DATA_HOME
    const home = '/home/u/.local/share';
    assert.equal(
      webgpuUnavailableReason(
        machine([...NVIDIA_DEVICE, '/opt/vk/libvulkan.so.1', join(home, 'vulkan/icd.d/x.json')], { env: { LD_LIBRARY_PATH: '/opt/vk', XDG_DATA_HOME: home } }),
      ),
      undefined,
    );
  });

  it('Windows and macOS are never probed (D3D12 and Metal are always there)', () => {
    assert.equal(webgpuUnavailableReason(machine([], { platform: 'win32' })), undefined);
    assert.equal(webgpuUnavailableReason(machine([], { platform: 'darwin' })), undefined);
  });
});

describe('auto on a machine without a GPU', () => {
  const noGpu = machine([LOADER]);

  it('creates only a CPU session, recording why WebGPU was not tried', async () => {
    const created: ExecutionProvider[] = [];
    const create = async (provider: ExecutionProvider, _options: InferenceSession.SessionOptions) => {
      created.push(provider);
      return provider;
    };
    // the CUDA library check reads the real install, so it is pinned to "not installed" here
    const unavailable = (p: ExecutionProvider) => (p === 'cuda' ? 'not installed' : providerUnavailableReason(p, 'auto', noGpu));
    const r = await createWithFallback({ executionProvider: 'auto', threads: 1 }, create, unavailable);
    assert.deepEqual(created, ['cpu']);
    assert.equal(r.provider, 'cpu');
    assert.deepEqual(
      r.attempts.map((a) => a.provider),
      ['cuda', 'webgpu'],
    );
    assert.match(r.attempts[1]!.error, /no GPU device/);
  });

  it('webgpu asked for by name is still tried (the probe only looks in the usual places)', () => {
    assert.equal(providerUnavailableReason('webgpu', 'webgpu', noGpu), undefined);
    assert.match(providerUnavailableReason('webgpu', 'auto', noGpu) ?? '', /no GPU device/);
  });
});

// A cheap look for what WebGPU needs before onnxruntime is asked for it. On Linux, Dawn (the WebGPU
// implementation inside onnxruntime-node) runs on Vulkan; on a machine without a GPU or without
// Vulkan, creating a WebGPU session fails after Dawn has written warnings straight to stderr, which
// editors show as errors on every model load. Looking at the file system first avoids that.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The little of the machine the probe reads; injected in tests. */
export interface GpuProbeHost {
  platform: NodeJS.Platform;
  env: NodeJS.ProcessEnv;
  exists(path: string): boolean;
  /** Entry names of a folder; empty when it is missing or unreadable. */
  list(dir: string): string[];
  /** A file's bytes, or undefined when it cannot be read. */
  read(path: string): Buffer | undefined;
}

export const SYSTEM_GPU_PROBE_HOST: GpuProbeHost = {
  platform: process.platform,
  env: process.env,
  exists: (path) => existsSync(path),
  list: (dir) => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  },
  read: (path) => {
    try {
      return readFileSync(path);
    } catch {
      return undefined;
    }
  },
};

const VULKAN_LOADER = 'libvulkan.so.1';
const LIBRARY_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/lib64', '/lib', '/usr/local/lib'];

/** Device nodes a GPU driver creates: DRM render nodes, NVIDIA's own nodes, WSL's GPU bridge. */
function hasGpuDevice(host: GpuProbeHost): boolean {
  if (host.list('/dev/dri').some((name) => name.startsWith('renderD'))) return true;
  if (host.list('/dev').some((name) => /^nvidia\d+$/.test(name))) return true;
  return host.exists('/dev/dxg');
}

/** The Vulkan loader, found the way the dynamic linker would: LD_LIBRARY_PATH, its cache, the usual folders. */
function hasVulkanLoader(host: GpuProbeHost): boolean {
  const fromEnv = (host.env.LD_LIBRARY_PATH ?? '').split(':').filter((d) => d !== '');
  if ([...fromEnv, ...LIBRARY_DIRS].some((dir) => host.exists(join(dir, VULKAN_LOADER)))) return true;
  return host.read('/etc/ld.so.cache')?.includes(VULKAN_LOADER) ?? false;
}

/** Vulkan driver manifests (ICDs), in the places and variables the Vulkan loader reads. */
function hasVulkanDriver(host: GpuProbeHost): boolean {
  const env = host.env;
  const files = [env.VK_DRIVER_FILES, env.VK_ICD_FILENAMES, env.VK_ADD_DRIVER_FILES].flatMap((list) => (list ?? '').split(':')).filter((f) => f !== '');
  if (files.some((f) => host.exists(f))) return true;
  const home = env.HOME ?? '';
  const dataDirs = [env.XDG_DATA_HOME ?? (home ? join(home, '.local/share') : ''), ...(env.XDG_DATA_DIRS ?? '/usr/local/share:/usr/share').split(':')];
  const configDirs = [env.XDG_CONFIG_HOME ?? (home ? join(home, '.config') : ''), ...(env.XDG_CONFIG_DIRS ?? '/etc/xdg').split(':'), '/etc'];
  return [...configDirs, ...dataDirs].filter((d) => d !== '').some((dir) => host.list(join(dir, 'vulkan', 'icd.d')).some((name) => name.endsWith('.json')));
}

/**
 * Why WebGPU cannot work here, or undefined when it might. Only Linux is probed: on Windows and
 * macOS Dawn runs on D3D12 and Metal, which every machine has.
 */
export function webgpuUnavailableReason(host: GpuProbeHost = SYSTEM_GPU_PROBE_HOST): string | undefined {
  if (host.platform !== 'linux') return undefined;
  if (!hasGpuDevice(host)) return 'no GPU device on this machine (no /dev/dri/renderD*, /dev/nvidia* or /dev/dxg)';
  if (!hasVulkanLoader(host)) return `no Vulkan loader (${VULKAN_LOADER}), which WebGPU needs on Linux`;
  if (!hasVulkanDriver(host)) return 'no Vulkan driver installed (no ICD manifest in any vulkan/icd.d folder)';
  return undefined;
}

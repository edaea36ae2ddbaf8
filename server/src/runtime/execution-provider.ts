// Execution-provider choice with fallback. onnxruntime-node does not fall back by itself: a session
// asked for ['webgpu', 'cpu'] with no GPU throws instead of running on the CPU, so Kiln tries each
// provider in turn, records why each failed, and reports the one actually used.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { InferenceSession } from 'onnxruntime-node';
import { type GpuProbeHost, SYSTEM_GPU_PROBE_HOST, webgpuUnavailableReason } from './gpu-probe';

export type ExecutionProviderChoice = 'auto' | 'cpu' | 'webgpu' | 'cuda';
export type ExecutionProvider = 'cpu' | 'webgpu' | 'cuda';
export const EXECUTION_PROVIDER_CHOICES: readonly ExecutionProviderChoice[] = ['auto', 'cpu', 'webgpu', 'cuda'];

export interface ProviderAttempt {
  provider: ExecutionProvider;
  error: string;
}

export interface SessionRuntimeOptions {
  executionProvider: ExecutionProviderChoice;
  /** Intra-op threads; 0 lets ORT pick. */
  threads: number;
  log?: (message: string) => void;
}

/** Folder of onnxruntime-node's native binding (where the optional CUDA provider library lands). */
function ortBinaryFolder(): string | undefined {
  try {
    const pkg = require.resolve('onnxruntime-node/package.json');
    return join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return undefined;
  }
}

/**
 * Why a provider cannot even be tried on this install, or undefined when it can. Under `auto`,
 * WebGPU is tried only where a GPU and Vulkan are found, so a CPU-only machine loads quietly; asked
 * for by name it is always tried (the probe only looks in the usual places).
 */
export function providerUnavailableReason(provider: ExecutionProvider, choice: ExecutionProviderChoice = 'auto', host: GpuProbeHost = SYSTEM_GPU_PROBE_HOST): string | undefined {
  if (provider === 'webgpu') return choice === 'auto' ? webgpuUnavailableReason(host) : undefined;
  if (provider !== 'cuda') return undefined;
  const dir = ortBinaryFolder();
  const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  if (!dir || !existsSync(join(dir, lib))) {
    return 'the CUDA provider library is not installed (with network access and CUDA 12: node node_modules/onnxruntime-node/script/install --onnxruntime-node-install=cuda12)';
  }
  return undefined;
}

/** Providers to try, in order, for a choice; the CPU always comes last so a model always loads. */
export function providerOrder(choice: ExecutionProviderChoice): ExecutionProvider[] {
  if (choice === 'auto') return ['cuda', 'webgpu', 'cpu'];
  return choice === 'cpu' ? ['cpu'] : [choice, 'cpu'];
}

export function sessionOptions(provider: ExecutionProvider, threads: number): InferenceSession.SessionOptions {
  return {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    ...(threads > 0 ? { intraOpNumThreads: threads } : {}), // the binding rejects an explicit undefined
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
}

/**
 * Creates a session on the first provider of the choice that works.
 * `create` and `unavailableReason` are injected so this policy is testable on any machine.
 */
export async function createWithFallback<S>(
  options: SessionRuntimeOptions,
  create: (provider: ExecutionProvider, sessionOptions: InferenceSession.SessionOptions) => Promise<S>,
  unavailableReason: (provider: ExecutionProvider) => string | undefined = (provider) => providerUnavailableReason(provider, options.executionProvider),
): Promise<{ session: S; provider: ExecutionProvider; attempts: ProviderAttempt[] }> {
  const attempts: ProviderAttempt[] = [];
  for (const provider of providerOrder(options.executionProvider)) {
    const unavailable = unavailableReason(provider);
    if (unavailable) {
      attempts.push({ provider, error: unavailable });
      options.log?.(`execution provider ${provider} skipped: ${unavailable}`);
      continue;
    }
    try {
      const session = await create(provider, sessionOptions(provider, options.threads));
      options.log?.(`execution provider ${provider} in use`);
      return { session, provider, attempts };
    } catch (err) {
      // ORT's messages end in a newline; a throw need not be an Error at all
      const error = (err instanceof Error ? err.message : String(err)).trim();
      attempts.push({ provider, error });
      options.log?.(`execution provider ${provider} failed: ${error}`);
    }
  }
  throw new Error(`no execution provider could load the model: ${attempts.map((a) => `${a.provider}: ${a.error}`).join('; ')}`);
}

// OpenBLAS (Debian's PyTorch multiplies through it) picks its kernels from the CPU's model number. On
// a virtual machine that hides it ("Intel(R) Xeon(R) Processor") it falls back to Prescott's SSE3
// kernels: on this project's machine 1024³ fp32 GEMM ran at ~40 GFLOP/s on 2 threads with those and
// ~190 with SkylakeX's, on the same CPU. A fair PyTorch row names the kernels the CPU's flags allow.
import { readFileSync } from 'node:fs';

/** The CPU's feature flags from /proc/cpuinfo (empty where there is none). */
export function cpuFlags(cpuinfo = readCpuinfo()): Set<string> {
  const line = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? '';
  return new Set(line.trim().split(/\s+/).filter(Boolean));
}

function readCpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

/** OPENBLAS_CORETYPE for x86 flags: SkylakeX with AVX-512 (F, BW, DQ, VL), Haswell with AVX2 + FMA, else none (OpenBLAS's own detection). */
export function openblasCoreFor(flags: Set<string>): string | undefined {
  if (['avx512f', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => flags.has(f))) return 'SkylakeX';
  if (flags.has('avx2') && flags.has('fma')) return 'Haswell';
  return undefined;
}

/** The environment's OPENBLAS_CORETYPE if set, else the one the flags allow. */
export function openblasCoreEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const core = env.OPENBLAS_CORETYPE ?? openblasCoreFor(cpuFlags());
  return core ? { OPENBLAS_CORETYPE: core } : {};
}

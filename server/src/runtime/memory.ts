// Memory accounting: what Kiln holds (weights, KV) and what the process uses (RSS; VRAM on NVIDIA).
import { execFile } from 'node:child_process';
import { findExecutable } from '../find-executable';

export interface MemoryReport {
  /** Bytes of model weights loaded into the session (as built: fp32 or fp16). */
  weightBytes: number;
  /** Bytes held by live KV states. */
  kvBytes: number;
  rssBytes: number;
  /** This process's GPU memory on NVIDIA GPUs (from nvidia-smi); undefined elsewhere. */
  vramBytes?: number;
}

/**
 * Parses `nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits`
 * and sums the MiB used by `pid`.
 */
export function parseNvidiaSmiProcessMemory(text: string, pid: number): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    const [p, mib] = line.split(',').map((s) => s.trim());
    if (p && mib && Number(p) === pid && Number.isFinite(Number(mib))) total = (total ?? 0) + Number(mib) * 1024 * 1024;
  }
  return total;
}

/** This process's VRAM on NVIDIA GPUs, or undefined when nvidia-smi is absent or lists nothing. */
export function nvidiaProcessVram(pid = process.pid): Promise<number | undefined> {
  const smi = findExecutable('nvidia-smi');
  if (smi === undefined) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    execFile(smi, ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'], { timeout: 2000 }, (err, stdout) => {
      resolve(err ? undefined : parseNvidiaSmiProcessMemory(stdout, pid));
    });
  });
}

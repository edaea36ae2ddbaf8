// Starts a worker thread from its bundled entry (dist/<name>.js beside the bundle) or, in tests and
// tsx runs, from its TypeScript source. Node 20's workers do not take `--import tsx` for a .ts entry,
// so the source entry registers tsx's require hook itself.
import { existsSync } from 'node:fs';
import { type Transferable, Worker } from 'node:worker_threads';

export interface WorkerEntry {
  /** The bundled entry's path (used when it exists). */
  bundled: string;
  /** The TypeScript source's path. */
  source: string;
}

export function startWorker(entry: WorkerEntry, workerData: unknown, transferList: Transferable[] = []): Worker {
  if (existsSync(entry.bundled)) return new Worker(entry.bundled, { workerData, transferList });
  return new Worker(`require('tsx/cjs/api').register(); require(${JSON.stringify(entry.source)});`, { eval: true, workerData, transferList });
}

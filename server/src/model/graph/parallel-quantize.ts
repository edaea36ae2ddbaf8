// A graph build's quantization on two threads: the graph is written synchronously, one weight
// after another, so each large weight is split in two — this thread codes the first rows while a
// helper thread reads the others from the checkpoint itself and codes them into the same shared
// buffers — and this thread then waits (Atomics.wait) for the helper. The bytes are those of
// quantizePerChannelRows / quantizeBlockwiseRows: a row's codes depend on that row alone. Any failure of the helper (an
// error, a worker that never answers) is logged and its rows are coded here; later weights stay here.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel, type MessagePort, receiveMessageOnPort, type Worker } from 'node:worker_threads';
import { startWorker } from '../../start-worker';
import {
  type BlockQuantization,
  type BlockQuantized,
  type ChannelQuantized,
  emptyBlockQuantized,
  quantizeBlockwiseInto,
  quantizeBlockwiseRows,
  quantizePerChannelInto,
  quantizePerChannelRows,
  type RowReader,
} from '../quantize';

/** The HF tensors a weight's rows are stacked from (decoder-parts.ts stackedRowReader), as the helper reopens them. */
export interface StackedRows {
  names: string[];
  rows: number[];
}

/** What a job fills: typed arrays over SharedArrayBuffers (a message shares them rather than copying). */
export type QuantizeTarget = { kind: 'channel'; out: ChannelQuantized } | { kind: 'block'; out: BlockQuantized };

/** One half of a weight for the helper thread. */
export interface QuantizeJob {
  names: string[];
  rows: number[];
  /** Rows [first, end) of the stacked weight. */
  first: number;
  end: number;
  target: QuantizeTarget;
  /** int32 [1] over shared memory: 0 while running, 1 done, −1 failed (the reason then waits on the port). */
  done: Int32Array;
}

/** Rows [first, end) of the target from `readRows` (both threads run this). */
export function quantizeTargetRows(target: QuantizeTarget, readRows: RowReader, first: number, end: number): void {
  if (target.kind === 'channel') quantizePerChannelInto(readRows, target.out, first, end);
  else quantizeBlockwiseInto(readRows, target.out, first, end);
}

/** A weights file as this thread saw it: the helper refuses a checkpoint whose files were replaced since. */
export interface FileIdentity {
  path: string;
  ino: number;
  size: number;
  mtimeMs: number;
}

export function fileIdentity(path: string): FileIdentity {
  const st = statSync(path);
  return { path, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
}

export interface QuantizeWorkerData {
  modelDir: string;
  files: FileIdentity[];
  /** Where the helper's failures are posted, read here without an event loop (receiveMessageOnPort). */
  port: MessagePort;
}

/** Weights under this many values are coded here (by default): a job's hand-off (~0.1 ms) would outweigh the split. */
const MIN_SPLIT_VALUES = 1 << 20;
/** How long a job may take before the helper is given up on (a 1.5B head codes in ~1.5 s). */
const JOB_TIMEOUT_MS = 60_000;
/** Rows per transpose tile: the split keeps the helper's first row on a tile and word boundary. */
const SPLIT_ALIGN = 64;

export class ParallelQuantizer {
  private worker: Worker | undefined;
  private port: MessagePort | undefined;
  /** Set once the helper failed: how it is ended (one that never answered cannot be asked to close). */
  private failed: 'close' | 'terminate' | undefined;

  private readonly files: FileIdentity[];

  private readonly log: ((message: string) => void) | undefined;
  private readonly minSplitValues: number;

  /** For the checkpoint in `modelDir` whose weights files are `weightFiles` (their identity is taken now). */
  constructor(
    private readonly modelDir: string,
    weightFiles: readonly string[],
    options: { log?: (message: string) => void; minSplitValues?: number } = {},
  ) {
    this.files = weightFiles.map(fileIdentity);
    this.log = options.log;
    this.minSplitValues = options.minSplitValues ?? MIN_SPLIT_VALUES;
  }

  /** quantizePerChannelRows of the stacked weight; `local` reads its rows on this thread. */
  perChannel(stacked: StackedRows, n: number, k: number, local: RowReader): ChannelQuantized {
    if (!this.splits(n, k)) return quantizePerChannelRows(local, { n, k });
    const out: ChannelQuantized = { n, k, codes: new Int8Array(new SharedArrayBuffer(n * k)), scales: new Float32Array(new SharedArrayBuffer(4 * n)) };
    this.split(stacked, { kind: 'channel', out }, local);
    return out;
  }

  /** quantizeBlockwiseRows of the stacked weight; `local` reads its rows on this thread. */
  blockwise(stacked: StackedRows, spec: BlockQuantization, local: RowReader): BlockQuantized {
    if (!this.splits(spec.n, spec.k)) return quantizeBlockwiseRows(local, spec);
    const out = emptyBlockQuantized(spec, (bytes) => new SharedArrayBuffer(bytes));
    this.split(stacked, { kind: 'block', out }, local);
    return out;
  }

  private splits(n: number, k: number): boolean {
    return this.failed === undefined && n * k >= this.minSplitValues && n >= 2 * SPLIT_ALIGN;
  }

  /** The helper codes the second half of the rows while this thread codes the first; then waits for it. */
  private split(stacked: StackedRows, target: QuantizeTarget, local: RowReader): void {
    const n = target.out.n;
    const job: QuantizeJob = { ...stacked, first: Math.round(n / 2 / SPLIT_ALIGN) * SPLIT_ALIGN, end: n, target, done: new Int32Array(new SharedArrayBuffer(4)) };
    this.helper().postMessage(job);
    quantizeTargetRows(target, local, 0, job.first);
    if (!this.waitFor(job)) quantizeTargetRows(target, local, job.first, job.end);
  }

  /** Ends the helper thread (a build's end); one that stopped answering is terminated. */
  close(): void {
    if (this.failed === 'terminate') void this.worker?.terminate();
    else this.worker?.postMessage('close');
    this.port?.close();
    this.worker = undefined;
    this.port = undefined;
  }

  private helper(): Worker {
    if (!this.worker) {
      const { port1, port2 } = new MessageChannel();
      const data: QuantizeWorkerData = { modelDir: this.modelDir, files: this.files, port: port2 };
      this.worker = startWorker({ bundled: join(__dirname, 'quantize-worker.js'), source: join(__dirname, 'quantize-worker.ts') }, data, [port2]);
      this.worker.unref(); // a build that throws before close() must not keep the process alive
      this.port = port1;
    }
    return this.worker;
  }

  /** Whether the helper coded its rows; on failure, says why and stops using it. */
  private waitFor(job: QuantizeJob): boolean {
    const { done } = job;
    const waited = Atomics.wait(done, 0, 0, JOB_TIMEOUT_MS);
    if (Atomics.load(done, 0) === 1) return true;
    const reason =
      waited === 'timed-out'
        ? `no answer in ${JOB_TIMEOUT_MS / 1000} s`
        : String((receiveMessageOnPort(this.port!)?.message as { error?: string } | undefined)?.error ?? 'unknown error');
    this.log?.(`quantizing on a second thread failed (${reason}); quantizing on this one`);
    this.failed = waited === 'timed-out' ? 'terminate' : 'close';
    this.close();
    return false;
  }
}

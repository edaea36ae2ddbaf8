// An ORT session hosted in its own worker thread. onnxruntime-node creates sessions and runs them
// synchronously on the calling thread (its promises only defer to setImmediate), so a session in the
// language server's thread stalls every request while ORT prepacks a real-size model (seconds) and
// for the length of every forward. Here the thread that serves requests only posts feeds and reads
// results: the KV past is moved to the worker and back without a copy (ArrayBuffer transfer; ORT
// refuses SharedArrayBuffer-backed tensors), logits and new KV rows are moved back the same way.
import { startWorker } from '../start-worker';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { KvBuffers } from '../kvcache/kv-layout';
import type { SessionRunner } from './decoder-session';
import type { ExecutionProvider, ProviderAttempt, SessionRuntimeOptions } from './execution-provider';

/** A tensor as it crosses threads: its type, dims and data (moved or copied). */
export interface WireTensor {
  type: ort.Tensor.Type;
  dims: readonly number[];
  data: ort.Tensor.DataType;
}

export interface SessionWorkerData {
  modelPath: string;
  runtime: Omit<SessionRuntimeOptions, 'log'>;
}

export type SessionWorkerRequest = { type: 'run'; id: number; feeds: Record<string, WireTensor>; lent: string[] } | { type: 'release' };

export type SessionWorkerReply =
  | { type: 'log'; message: string }
  | { type: 'ready'; provider: ExecutionProvider; attempts: ProviderAttempt[] }
  | { type: 'failed'; message: string }
  /** `returned` holds the lent feeds' arrays, moved back whether or not the run succeeded. */
  | { type: 'result'; id: number; outputs?: Record<string, WireTensor>; error?: string; returned: Record<string, Float32Array> };

/** The array's buffer when the array covers all of it (so moving the buffer moves exactly the array). */
export function wholeBuffer(data: ArrayBufferView): ArrayBuffer | undefined {
  const buffer = data.buffer;
  return buffer instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === buffer.byteLength && data.byteLength > 0 ? buffer : undefined;
}

/** Buffers to move with a message: each whole-buffer array once (a buffer listed twice fails the post). */
export function transferList(arrays: Iterable<ArrayBufferView>): ArrayBuffer[] {
  const list = new Set<ArrayBuffer>();
  for (const a of arrays) {
    const buffer = wholeBuffer(a);
    if (buffer) list.add(buffer);
  }
  return [...list];
}

/** dist/session-worker.js next to the bundle; else the TypeScript source (tests). */
function startSessionWorker(data: SessionWorkerData): Worker {
  return startWorker({ bundled: join(__dirname, 'session-worker.js'), source: join(__dirname, 'session-worker.ts') }, data);
}

interface PendingRun {
  resolve: (outputs: Record<string, ort.OnnxValue>) => void;
  reject: (err: Error) => void;
  /** Which lent buffer each moved feed came from, to hand the arrays back to their owner. */
  owners: Map<string, { buffers: KvBuffers; field: 'key' | 'value' }>;
}

class WorkerSessionRunner implements SessionRunner {
  private readonly pending = new Map<number, PendingRun>();
  private nextId = 0;
  private stopped: string | undefined;
  private readonly exited: Promise<void>;

  constructor(private readonly worker: Worker) {
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (m: SessionWorkerReply) => {
      if (m.type === 'result') this.settle(m);
    });
    worker.on('error', (err) => this.stop(`the inference worker failed: ${err.message}`));
    worker.on('exit', (code) => this.stop(`the inference worker ended (exit code ${code})`));
    worker.unref(); // an idle session never keeps the process alive; a pending run does (see run)
  }

  run(feeds: Record<string, ort.Tensor>, lent: readonly KvBuffers[] = []): Promise<Record<string, ort.OnnxValue>> {
    if (this.stopped) return Promise.reject(new Error(`${this.stopped}; reload the model`));
    const id = this.nextId++;
    const owners = new Map<string, { buffers: KvBuffers; field: 'key' | 'value' }>();
    const byArray = new Map<Float32Array, { buffers: KvBuffers; field: 'key' | 'value' }>();
    for (const buffers of lent) {
      if (wholeBuffer(buffers.key)) byArray.set(buffers.key, { buffers, field: 'key' });
      if (wholeBuffer(buffers.value)) byArray.set(buffers.value, { buffers, field: 'value' });
    }
    const wire: Record<string, WireTensor> = {};
    const moved: Float32Array[] = [];
    for (const [name, t] of Object.entries(feeds)) {
      wire[name] = { type: t.type, dims: t.dims, data: t.data };
      const owner = t.data instanceof Float32Array ? byArray.get(t.data) : undefined;
      if (owner && !moved.includes(t.data as Float32Array)) {
        owners.set(name, owner);
        moved.push(t.data as Float32Array);
      }
    }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, owners });
      this.worker.ref();
      // every other feed (token ids, lengths) is small and copied
      this.worker.postMessage({ type: 'run', id, feeds: wire, lent: [...owners.keys()] } satisfies SessionWorkerRequest, transferList(moved));
    });
  }

  async release(): Promise<void> {
    if (!this.stopped) this.worker.postMessage({ type: 'release' } satisfies SessionWorkerRequest);
    this.worker.ref();
    await this.exited;
  }

  private settle(m: Extract<SessionWorkerReply, { type: 'result' }>): void {
    const run = this.pending.get(m.id);
    if (!run) return;
    this.pending.delete(m.id);
    if (this.pending.size === 0) this.worker.unref();
    for (const [name, owner] of run.owners) {
      const back = m.returned[name];
      if (back) owner.buffers[owner.field] = back;
    }
    if (m.error !== undefined || !m.outputs) {
      run.reject(new Error(m.error ?? 'the inference worker returned no outputs'));
      return;
    }
    const outputs: Record<string, ort.OnnxValue> = {};
    for (const [name, t] of Object.entries(m.outputs)) outputs[name] = new ort.Tensor(t.type, t.data, t.dims);
    run.resolve(outputs);
  }

  /** The worker is gone: every waiting run fails (its lent KV went with it), and so does every later one. */
  private stop(reason: string): void {
    this.stopped ??= reason;
    for (const run of this.pending.values()) run.reject(new Error(`${reason}; reload the model`));
    this.pending.clear();
  }
}

export interface WorkerSession {
  runner: SessionRunner;
  provider: ExecutionProvider;
  attempts: ProviderAttempt[];
}

/**
 * Creates the session for `modelPath` in a new worker thread, on the first execution provider of the
 * choice that works (the same fallback as in this thread). Rejects with the worker's error when none does.
 */
export function createSessionInWorker(modelPath: string, options: SessionRuntimeOptions): Promise<WorkerSession> {
  const { log, ...runtime } = options;
  const worker = startSessionWorker({ modelPath, runtime });
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (message: string) => {
      if (settled) return;
      settled = true;
      reject(new Error(message));
    };
    const onMessage = (m: SessionWorkerReply) => {
      if (m.type === 'log') log?.(m.message);
      else if (m.type === 'failed') fail(m.message);
      else if (m.type === 'ready' && !settled) {
        settled = true;
        resolve({ runner: new WorkerSessionRunner(worker), provider: m.provider, attempts: m.attempts });
      }
    };
    worker.on('message', onMessage);
    worker.once('error', (err) => fail(`the inference worker failed while creating the session: ${err.message}`));
    worker.once('exit', (code) => fail(`the inference worker ended (exit code ${code}) before its session was ready`));
  });
}

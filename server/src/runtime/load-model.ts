// From a Hugging Face checkpoint folder to a ready DecoderSession: validate and build the graph (or
// reuse the cached build; see prepare-graph.ts, which may run in a worker), then create the session
// from the graph file on the best execution provider that works.
import * as ort from 'onnxruntime-node';
import { performance } from 'node:perf_hooks';
import type { ModelConfig } from '../model/config';
import type { QuantBits } from '../model/quantize';
import { DecoderSession, threadRunner } from './decoder-session';
import { createWithFallback, type ExecutionProviderChoice, type ProviderAttempt } from './execution-provider';
import { type AdapterIdentity, type GraphPreparer, prepareGraph, type PrepareGraphOptions } from './prepare-graph';
import { createSessionInWorker } from './worker-session';

export { type AdapterIdentity, DEFAULT_ATTENTION, type GraphPreparer, prepareGraph, type PrepareGraphOptions, type PreparedGraph } from './prepare-graph';

export interface LoadModelOptions extends PrepareGraphOptions {
  executionProvider?: ExecutionProviderChoice;
  threads?: number;
  /**
   * Validates the folder and builds (or finds) the graph; by default in this thread. The language
   * server passes one that runs in a worker, so a huge or hostile model never blocks its requests.
   */
  prepare?: GraphPreparer;
  /**
   * Where the ORT session lives: the main thread (default), its own worker thread (worker-session.ts, so
   * neither its creation nor its forwards ever stall this thread), or `auto`: by the graph's weights.
   */
  sessionThread?: SessionThreadChoice;
}

export type SessionThread = 'main' | 'worker';
export type SessionThreadChoice = SessionThread | 'auto';
export const SESSION_THREAD_CHOICES: readonly SessionThreadChoice[] = ['auto', 'main', 'worker'];

/**
 * `auto`'s line: graphs with at least this many bytes of weights get a worker. A run through the worker
 * costs ~0.2 ms more (two messages; measured with tests/bench/session-thread.bench.ts: the embedded 4M
 * model's keystroke p50 ×1.13–1.23 in the worker, its session created in 130–150 ms either way), noise
 * next to a real-size forward (≥ 20 ms) but not next to a tiny model's (~1 ms); a real-size session's
 * creation stalls the thread for seconds (ORT prepacking), a tiny one's for ~150 ms.
 */
export const WORKER_SESSION_MIN_WEIGHT_BYTES = 64 * 2 ** 20;

export function chooseSessionThread(choice: SessionThreadChoice, weightBytes: number): SessionThread {
  if (choice !== 'auto') return choice;
  return weightBytes >= WORKER_SESSION_MIN_WEIGHT_BYTES ? 'worker' : 'main';
}

export interface LoadedModel {
  dir: string;
  config: ModelConfig;
  session: DecoderSession;
  attempts: ProviderAttempt[];
  /** True when the graph came from the cache rather than being built now. */
  cacheHit: boolean;
  buildMs: number;
  sessionCreateMs: number;
  /** Where the session was created and runs. */
  sessionThread: SessionThread;
  /** The graph's cache folder (an adapter graph sits in its base's): kept when the cache is pruned while this model serves. */
  graphDir: string;
  /** The adapter applied on the base graph, when one was given. */
  adapter?: AdapterIdentity;
  /** Bits of the quantized Linear layers; absent when unquantized. */
  quantization?: QuantBits;
}

export async function loadModel(modelDir: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const prepared = options.prepare ? await options.prepare(modelDir, options) : prepareGraph(modelDir, options);
  const t0 = performance.now();
  const runtime = { executionProvider: options.executionProvider ?? 'auto', threads: options.threads ?? 0, log: options.log };
  const sessionThread = chooseSessionThread(options.sessionThread ?? 'main', prepared.weightBytes);
  const { runner, provider, attempts } =
    sessionThread === 'worker'
      ? await createSessionInWorker(prepared.modelPath, runtime)
      : await createWithFallback(runtime, (_provider, sessionOptions) => ort.InferenceSession.create(prepared.modelPath, sessionOptions)).then((created) => ({
          ...created,
          runner: threadRunner(created.session),
        }));
  return {
    dir: modelDir,
    config: prepared.config,
    session: new DecoderSession(runner, prepared.config, provider, prepared.weightBytes),
    attempts,
    cacheHit: prepared.cacheHit,
    graphDir: prepared.graphDir,
    buildMs: prepared.buildMs,
    sessionCreateMs: performance.now() - t0,
    sessionThread,
    adapter: prepared.adapter,
    quantization: options.quantization,
  };
}

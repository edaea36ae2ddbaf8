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
   * Where the ORT session lives: this thread (default), or its own worker thread (worker-session.ts),
   * so neither its creation nor its forwards ever stall this thread.
   */
  sessionThread?: SessionThread;
}

export type SessionThread = 'this' | 'worker';

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
  const sessionThread = options.sessionThread ?? 'this';
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

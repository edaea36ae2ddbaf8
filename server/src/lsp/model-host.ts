// Owns the loaded model and the engine built on it: loads with the current settings, reports the
// server's status, and turns load failures into one clear message instead of a crash.
import { statSync } from 'node:fs';
import { basename } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type CompletionModel, loadCompletionModel } from '../completion/completion-model';
import { CompletionEngine } from '../completion/engine';
import type { ContextSupplier } from '../context/supplier';
import type { ServerStatus } from '../protocol';
import { automaticThreads } from '../runtime/threads';
import type { LatencyStats } from '../telemetry/latency-stats';
import type { CompletionTimings } from '../telemetry/timings';
import { type BackendSettings, createTextBackend } from '../remote/backend-settings';
import { prepareGraphInWorker } from './model-worker-client';
import { RemoteHealth } from './remote-health';
import type { KilnSettings } from './settings';

export interface ModelHostOptions {
  defaultModelPath?: string;
  cacheDir?: string;
  stats: LatencyStats;
  log: (message: string) => void;
  onStatus: (status: ServerStatus) => void;
  onAnswer: (timings: CompletionTimings) => void;
  /** Where the engine's context block comes from. */
  context?: ContextSupplier;
  /** The remote backend's API key (from the client's SecretStorage), if one was given. */
  backendApiKey?: string;
  /** A remote backend started failing (the message) or works again (undefined). */
  onRemoteHealth?: (message: string | undefined) => void;
}

/** How finely the event loop's delays are sampled while a model loads (the histogram's timer). */
const STALL_RESOLUTION_MS = 5;

export class ModelHost {
  private current: CompletionEngine | undefined;
  private status: ServerStatus = { state: 'starting' };
  private generation = 0;
  /** The backend settings the engine was last given, and the problem with them if they cannot work. */
  private backend: { settings: BackendSettings; problem?: string } | undefined;
  private readonly health: RemoteHealth;

  constructor(private readonly options: ModelHostOptions) {
    this.health = new RemoteHealth((message) => this.options.onRemoteHealth?.(message));
  }

  /** The remote backend's label when one computes the completions. */
  get remoteLabel(): string | undefined {
    return this.current?.remoteBackend?.backend.label;
  }

  /**
   * Points the engine at the backend `settings.backend` chooses (or back at the local model). A
   * choice that cannot work (no URL, no model name) is reported and completions stay off rather than
   * silently local: the user asked for that server.
   */
  applyBackend(settings: KilnSettings): string | undefined {
    const engine = this.current;
    const wanted = settings.backend;
    const same = this.backend !== undefined && JSON.stringify(this.backend.settings) === JSON.stringify(wanted);
    if (!engine || same) return this.backend?.problem;
    this.health.reset();
    this.options.onRemoteHealth?.(undefined);
    let problem: string | undefined;
    try {
      const backend = createTextBackend(wanted, { apiKey: this.options.backendApiKey });
      engine.setRemote(
        backend && {
          backend,
          fallbackToLocal: wanted.fallbackToLocal,
          onOutcome: (err) => this.health.outcome(backend.label, wanted.fallbackToLocal, err),
        },
      );
      if (backend) this.options.log(`completions from the remote backend ${backend.label}${wanted.fallbackToLocal ? ', the local model as fallback' : ''}`);
    } catch (err) {
      problem = `Kiln's remote backend is not usable: ${(err as Error).message}.`;
      engine.setRemote({ backend: unusableBackend(wanted, problem), fallbackToLocal: wanted.fallbackToLocal });
      this.options.onRemoteHealth?.(problem);
    }
    this.backend = { settings: { ...wanted }, problem };
    return problem;
  }

  get engine(): CompletionEngine | undefined {
    return this.current;
  }

  get serverStatus(): ServerStatus {
    return this.status;
  }

  modelPath(settings: KilnSettings): string | undefined {
    return settings.modelPath || this.options.defaultModelPath || undefined;
  }

  /**
   * (Re)loads the model. The graph is built in the model worker while the current engine keeps
   * answering; then the engine's inference server swaps to the new session between two steps (a hot
   * swap: KV of the old weights goes) and the old session is released. A failed load leaves the
   * server running with status `error`.
   */
  async load(settings: KilnSettings): Promise<ServerStatus> {
    // What the load cost this thread: the longest time requests could not be read (session creation is
    // synchronous). The histogram's first tick only starts its clock, so the load waits for two.
    const stalls = monitorEventLoopDelay({ resolution: STALL_RESOLUTION_MS });
    stalls.enable();
    let report: string | undefined;
    try {
      await new Promise((resolve) => setTimeout(resolve, 2 * STALL_RESOLUTION_MS));
      return await this.loadWatched(settings, (line) => (report = line));
    } finally {
      // the load's last stall (the session creation) is recorded at the histogram's next tick
      setTimeout(() => {
        stalls.disable();
        if (report) this.options.log(`${report}; longest event-loop stall during the load ${(stalls.max / 1e6).toFixed(0)} ms`);
      }, 2 * STALL_RESOLUTION_MS);
    }
  }

  private async loadWatched(settings: KilnSettings, reportLoad: (line: string) => void): Promise<ServerStatus> {
    const generation = ++this.generation;
    const path = this.modelPath(settings);
    if (!path) {
      await this.retire(this.swap(undefined));
      return this.setStatus({ state: 'error', message: 'No model configured: set "kiln.modelPath" to a Hugging Face model folder.' });
    }
    this.setStatus({ state: 'loading', model: path });
    const adapterDir = settings.adapterPath || undefined;
    // a fine-tune's adapter folder that is gone (deleted, or a temp folder) is no reason to serve nothing
    const missingAdapter = adapterDir !== undefined && !statSync(adapterDir, { throwIfNoEntry: false })?.isDirectory();
    let model: CompletionModel;
    try {
      model = await loadCompletionModel(
        path,
        { fimOrder: settings.fimOrder, quantization: settings.quantization },
        {
          executionProvider: settings.executionProvider,
          threads: settings.threads || automaticThreads(),
          cacheDir: this.options.cacheDir,
          adapterDir: missingAdapter ? undefined : adapterDir,
          cacheLimitBytes: settings.graphCacheLimitGB * 2 ** 30,
          // the model serving until the swap must survive the cache pruning after this build
          keepGraphDirs: this.current ? [this.current.model.loaded.graphDir] : [],
          log: this.options.log,
          // validation, graph build, quantization, hashing and the cache write run in a worker thread
          prepare: prepareGraphInWorker,
          sessionThread: settings.sessionThread,
        },
        this.current?.model,
      );
    } catch (err) {
      if (generation !== this.generation) return this.status;
      await this.retire(this.swap(undefined));
      return this.setStatus({ state: 'error', model: path, message: `Kiln could not load the model at ${path}: ${(err as Error).message}` });
    }
    if (generation !== this.generation) {
      await model.loaded.session.release(); // a newer load started meanwhile
      return this.status;
    }
    const running = this.current;
    if (running) {
      running.updateSettings(settings);
      const old = await running.swapModel(model);
      await old.release().catch(() => {});
    } else {
      this.current = new CompletionEngine(model, settings, this.options.stats, { onAnswer: this.options.onAnswer, context: this.options.context });
      this.backend = undefined; // a new engine starts local until told otherwise
    }
    this.applyBackend(settings);
    void this.current!.calibrate(); // the first request's prefill budget plans from this model's rates
    for (const a of model.loaded.attempts) this.options.log(`execution provider ${a.provider} not used: ${a.error}`);
    const { buildMs, cacheHit, sessionCreateMs } = model.loaded;
    reportLoad(
      `loaded ${model.name}: graph ${cacheHit ? 'found in the cache' : 'built'} in ${buildMs.toFixed(0)} ms in the model worker; session created in ${sessionCreateMs.toFixed(0)} ms ${model.loaded.sessionThread === 'worker' ? 'in its own worker thread' : 'on the server thread'}`,
    );
    const adapter = model.loaded.adapter ? basename(model.loaded.adapter.dir) : undefined;
    const weights = model.loaded.quantization ? `int${model.loaded.quantization}` : 'fp32';
    const message = missingAdapter ? `The adapter folder ${adapterDir} set in "kiln.adapterPath" does not exist; completions use the base model.` : undefined;
    if (message) this.options.log(message);
    return this.setStatus({ state: 'ready', model: model.name, adapter, executionProvider: model.loaded.session.provider, weights, ...(message ? { message } : {}) });
  }

  async dispose(): Promise<void> {
    this.generation++;
    await this.retire(this.swap(undefined));
  }

  private swap(next: CompletionEngine | undefined): CompletionEngine | undefined {
    const previous = this.current;
    this.current = next;
    return previous;
  }

  /** Releases an engine's session once its requests and the runtime's queue have finished. */
  private async retire(engine: CompletionEngine | undefined): Promise<void> {
    if (!engine) return;
    await engine.scheduler.whenIdle();
    await engine.server.whenIdle();
    await engine.server.session.release().catch(() => {});
  }

  private setStatus(status: ServerStatus): ServerStatus {
    this.status = status;
    this.options.onStatus(status);
    return status;
  }
}

/** A remote choice whose settings cannot work: every request fails with the settings' problem (no request is sent). */
function unusableBackend(settings: BackendSettings, problem: string) {
  return {
    kind: settings.kind === 'local' ? ('openai' as const) : settings.kind,
    label: `${settings.kind} (not configured)`,
    complete: () => Promise.reject(new Error(problem)),
  };
}

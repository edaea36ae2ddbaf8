// Owns the loaded model and the engine built on it: loads with the current settings, reports the
// server's status, and turns load failures into one clear message instead of a crash.
import { availableParallelism } from 'node:os';
import { type CompletionModel, loadCompletionModel } from '../completion/completion-model';
import { CompletionEngine } from '../completion/engine';
import type { ServerStatus } from '../protocol';
import type { LatencyStats } from '../telemetry/latency-stats';
import type { CompletionTimings } from '../telemetry/timings';
import type { KilnSettings } from './settings';

export interface ModelHostOptions {
  defaultModelPath?: string;
  cacheDir?: string;
  stats: LatencyStats;
  log: (message: string) => void;
  onStatus: (status: ServerStatus) => void;
  onAnswer: (timings: CompletionTimings) => void;
}

/** Threads when the setting says 0: all cores up to 4 (more rarely helps a small decoder). */
export function automaticThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

export class ModelHost {
  private current: CompletionEngine | undefined;
  private status: ServerStatus = { state: 'starting' };
  private generation = 0;

  constructor(private readonly options: ModelHostOptions) {}

  get engine(): CompletionEngine | undefined {
    return this.current;
  }

  get serverStatus(): ServerStatus {
    return this.status;
  }

  modelPath(settings: KilnSettings): string | undefined {
    return settings.modelPath || this.options.defaultModelPath || undefined;
  }

  /** (Re)loads the model; a failed load leaves the server running with status `error`. */
  async load(settings: KilnSettings): Promise<ServerStatus> {
    const generation = ++this.generation;
    const path = this.modelPath(settings);
    const previous = this.current;
    this.current = undefined;
    if (previous) await previous.model.loaded.session.release().catch(() => {});
    if (!path) return this.setStatus({ state: 'error', message: 'No model configured: set "kiln.modelPath" to a Hugging Face model folder.' });
    this.setStatus({ state: 'loading', model: path });
    let model: CompletionModel;
    try {
      model = await loadCompletionModel(path, settings.fimOrder, {
        executionProvider: settings.executionProvider,
        threads: settings.threads || automaticThreads(),
        cacheDir: this.options.cacheDir,
        log: this.options.log,
      });
    } catch (err) {
      if (generation !== this.generation) return this.status;
      return this.setStatus({ state: 'error', model: path, message: `Kiln could not load the model at ${path}: ${(err as Error).message}` });
    }
    if (generation !== this.generation) {
      await model.loaded.session.release(); // a newer load started meanwhile
      return this.status;
    }
    this.current = new CompletionEngine(model, settings, this.options.stats, this.options.onAnswer);
    for (const a of model.loaded.attempts) this.options.log(`execution provider ${a.provider} not used: ${a.error}`);
    return this.setStatus({ state: 'ready', model: model.name, executionProvider: model.loaded.session.provider });
  }

  async dispose(): Promise<void> {
    this.generation++;
    const engine = this.current;
    this.current = undefined;
    if (engine) await engine.model.loaded.session.release().catch(() => {});
  }

  private setStatus(status: ServerStatus): ServerStatus {
    this.status = status;
    this.options.onStatus(status);
    return status;
  }
}

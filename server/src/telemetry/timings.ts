// What one answer cost: the per-answer timing record and the stopwatch that fills it in.

/** Where an answer came from: the model, or one of the paths that skip model work. */
export type CompletionSource = 'model' | 'typing-through' | 'answer-cache' | 'speculation';

export const COMPLETION_SOURCES: readonly CompletionSource[] = ['model', 'typing-through', 'answer-cache', 'speculation'];

/** One answer's timings in milliseconds (from performance.now), plus token counts. */
export interface CompletionTimings {
  /** Waiting in the scheduler before work began. */
  queueMs: number;
  tokenizeMs: number;
  prefillMs: number;
  /** Prompt tokens run through the model. */
  prefillComputed: number;
  /** Prompt tokens whose KV came from the pool. */
  prefillReused: number;
  decodeMs: number;
  /** Tokens produced by decode steps. */
  decodeTokens: number;
  /** Request received to answer sent. */
  totalMs: number;
  source: CompletionSource;
  /** Set when the full prompt would not prefill within the time limit: the shorter prefix window answered from. */
  shortWindowTokens?: number;
  /** Set when a remote backend computed the answer (then prefill and decode are the server's business). */
  remote?: RemoteTimings;
}

/** What a remote inference server said its own work took, where its API reports it (ms, tokens). */
export interface ServerReportedTimings {
  promptMs?: number;
  promptTokens?: number;
  /** Prompt tokens the server took from its own cache (llama.cpp's `cache_n`). */
  cachedTokens?: number;
  predictedMs?: number;
  predictedTokens?: number;
  /** The whole request as the server measured it (Ollama's `total_duration`). */
  totalMs?: number;
}

/** One remote answer: the backend, the HTTP request's wall time and the server's own figures. */
export interface RemoteTimings {
  backend: string;
  /** Request sent to the last byte read (or to Kiln's early stop). */
  requestMs: number;
  firstPieceMs?: number;
  /** Ended by Kiln's stop rules (the connection was closed early) rather than by the server. */
  stoppedEarly: boolean;
  server?: ServerReportedTimings;
}

/** Split times: each `lap(name)` adds the time since the previous lap (or the start) to `name`. */
export class Stopwatch {
  private readonly start: number;
  private last: number;
  private readonly totals = new Map<string, number>();

  constructor(private readonly now: () => number = () => performance.now()) {
    this.start = now();
    this.last = this.start;
  }

  /** Ends the current lap, adds its milliseconds to `name`'s total and returns them. */
  lap(name: string): number {
    const t = this.now();
    const ms = t - this.last;
    this.last = t;
    this.totals.set(name, (this.totals.get(name) ?? 0) + ms);
    return ms;
  }

  /** Milliseconds recorded under `name` (0 if none). */
  get(name: string): number {
    return this.totals.get(name) ?? 0;
  }

  /** Milliseconds since the stopwatch started. */
  elapsed(): number {
    return this.now() - this.start;
  }

  /** Every lap total by name. */
  laps(): Record<string, number> {
    return Object.fromEntries(this.totals);
  }
}

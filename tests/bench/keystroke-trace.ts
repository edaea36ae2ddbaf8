// The keystroke benchmark's typing trace and its Kiln request, shared with the GPU check
// (scripts/device-check.ts): the reference config of the trace, the file typed into, one request per
// keystroke through the real CompletionEngine, and the latency distribution (nearest-rank percentiles).
import { performance } from 'node:perf_hooks';
import type { CompletionModel } from '../../server/src/completion/completion-model';
import type { CompletionSettings } from '../../server/src/completion/completion-settings';
import type { CompletionEngine } from '../../server/src/completion/engine';
import type { ModelConfig } from '../../server/src/model/config';
import { InferenceServer } from '../../server/src/runtime/inference-server';
import { percentile } from '../../server/src/telemetry/latency-stats';
import { round } from './bench-stats';
import { REFERENCE as REFERENCE_MODEL } from './reference-model';

/** The 25M reference shape over the tiny code model's defaults (its 2,048 positions: prompt windows 1,024 + 256). */
const { hiddenSize, numLayers, numHeads, numKvHeads, headDim, intermediateSize, vocabSize, tieWordEmbeddings, eosTokenId } = REFERENCE_MODEL;
export const REFERENCE: Partial<ModelConfig> = {
  hiddenSize,
  numLayers,
  numHeads,
  numKvHeads,
  headDim,
  intermediateSize,
  vocabSize,
  tieWordEmbeddings,
  eosTokenId,
  bosTokenId: undefined,
};
export const WEIGHTS_SEED = 2024;

// ---------- the typing trace ----------

/** The module around the typed function: ~1,000 tokens before typing starts (FILE_BEFORE + FILE_AFTER). */
export const FILE_BEFORE = `// A small in-process job queue: bounded concurrency, retries with exponential backoff.
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export interface Job<T = unknown> {
  id: string;
  payload: T;
  attempts: number;
  state: JobState;
  error?: string;
  startedAt?: number;
  finishedAt?: number;
}

export interface QueueOptions {
  concurrency: number;
  maxAttempts: number;
  backoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_QUEUE_OPTIONS: QueueOptions = { concurrency: 2, maxAttempts: 3, backoffMs: 100, maxBackoffMs: 5000 };

export type Handler<T> = (job: Job<T>, signal: AbortSignal) => Promise<void>;

export function backoffDelay(attempt: number, options: QueueOptions): number {
  return Math.min(options.backoffMs * 2 ** Math.max(0, attempt - 1), options.maxBackoffMs);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

`;

/** 60 lines, typed character by character between FILE_BEFORE and FILE_AFTER. */
export const TYPED_FUNCTION = `/**
 * Runs every job through \`handler\` with at most \`options.concurrency\` at a time, retrying
 * failures with backoff. Resolves when no job is queued or running; an abort cancels the rest.
 */
export async function runQueue<T>(
  jobs: Job<T>[],
  handler: Handler<T>,
  events: EventEmitter,
  options: QueueOptions = DEFAULT_QUEUE_OPTIONS,
  signal?: AbortSignal,
): Promise<Map<string, Job<T>>> {
  const results = new Map<string, Job<T>>();
  const pending = [...jobs];
  const running = new Set<Promise<void>>();

  const runOne = async (job: Job<T>): Promise<void> => {
    job.state = 'running';
    job.attempts += 1;
    job.startedAt ??= Date.now();
    events.emit('started', job);
    try {
      await handler(job, signal ?? new AbortController().signal);
      job.state = 'done';
    } catch (err) {
      job.error = errorMessage(err);
      if (job.attempts < options.maxAttempts && !signal?.aborted) {
        const delayMs = backoffDelay(job.attempts, options);
        events.emit('retry', job, delayMs);
        await sleep(delayMs);
        job.state = 'queued';
        pending.push(job);
        return;
      }
      job.state = 'failed';
      events.emit('failed', job, job.error);
    }
    job.finishedAt = Date.now();
    results.set(job.id, job);
    events.emit('finished', job);
  };

  while (pending.length > 0 || running.size > 0) {
    if (signal?.aborted) {
      for (const job of pending) {
        job.state = 'cancelled';
        results.set(job.id, job);
      }
      pending.length = 0;
    }
    while (running.size < options.concurrency && pending.length > 0) {
      const job = pending.shift()!;
      const task = runOne(job).finally(() => running.delete(task));
      running.add(task);
    }
    if (running.size > 0) {
      await Promise.race(running);
    }
  }
  return results;
}
`;

export const FILE_AFTER = `
/** Counts jobs by state, for a status line. */
export function summarize(results: Map<string, Job>): Record<JobState, number> {
  const counts = { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 };
  for (const job of results.values()) counts[job.state] += 1;
  return counts;
}

export function durations(results: Map<string, Job>): { id: string; ms: number }[] {
  return [...results.values()]
    .filter((job) => job.startedAt !== undefined && job.finishedAt !== undefined)
    .map((job) => ({ id: job.id, ms: job.finishedAt! - job.startedAt! }))
    .sort((a, b) => b.ms - a.ms);
}
`;

export interface Keystroke {
  text: string; // the whole document after this keystroke
  offset: number; // the cursor
}

/** One request per keystroke: each character of a line, and Enter with the next line's indentation. */
export function typingTrace(): Keystroke[] {
  const trace: Keystroke[] = [];
  let typed = '';
  const type = (chars: string) => {
    typed += chars;
    trace.push({ text: FILE_BEFORE + typed + FILE_AFTER, offset: FILE_BEFORE.length + typed.length });
  };
  TYPED_FUNCTION.split('\n').forEach((line, n) => {
    const code = line.trimStart();
    if (n > 0) type(`\n${line.slice(0, line.length - code.length)}`);
    for (const ch of code) type(ch);
  });
  if (FILE_BEFORE + typed + FILE_AFTER !== FILE_BEFORE + TYPED_FUNCTION + FILE_AFTER) throw new Error('the trace does not type the function exactly');
  return trace;
}

// ---------- one request ----------

/** One request's figures. `firstTokenMs`: request to the first sampled token (Kiln: queue + tokenize + prefill). */
export interface Sample {
  keystroke: number;
  ms: number;
  firstTokenMs: number;
  computed: number; // prompt tokens run through the model
  reused: number; // prompt tokens whose KV was kept from an earlier request
  decodeTokens: number;
}

export interface KilnSample extends Sample {
  prompt: number[];
  suggestion: string;
}

/**
 * The model with its inference server's `extend` recorded: the slot holds the reused prompt prefix
 * when the engine extends it with the rest, so held ⊕ new is exactly the prompt Kiln computed.
 */
export function recordingModel(model: CompletionModel): {
  model: CompletionModel;
  takePrompt: () => number[];
  serverFor: (settings: Pick<CompletionSettings, 'kvBudgetMB'>) => InferenceServer;
} {
  let prompt: number[] = [];
  const serverFor = (settings: Pick<CompletionSettings, 'kvBudgetMB'>) => {
    const server = new InferenceServer(model.loaded.session, { kvBudgetBytes: settings.kvBudgetMB * 2 ** 20 });
    const extend = server.extend.bind(server);
    server.extend = (slot, tokens, options) => {
      prompt = [...slot.tokens, ...tokens];
      return extend(slot, tokens, options);
    };
    return server;
  };
  const takePrompt = () => {
    const taken = prompt;
    prompt = [];
    return taken;
  };
  return { model, takePrompt, serverFor };
}

/** A request for `k` as a document of its own (no typing-through, no answer cache): the model path. */
export async function kilnKeystroke(engine: CompletionEngine, takePrompt: () => number[], k: Keystroke, keystroke: number, uri: string): Promise<KilnSample> {
  takePrompt();
  const t0 = performance.now();
  const answer = await engine.complete({ uri, text: k.text, offset: k.offset });
  const ms = performance.now() - t0;
  engine.forgetDocument(uri);
  const t = answer.timings;
  const prompt = takePrompt();
  if (t.source !== 'model' || prompt.length !== t.prefillComputed + t.prefillReused)
    throw new Error(`keystroke ${keystroke}: answered by ${t.source}, prompt of ${prompt.length} tokens recorded`);
  const firstTokenMs = t.queueMs + t.tokenizeMs + t.prefillMs;
  return { keystroke, ms, firstTokenMs, computed: t.prefillComputed, reused: t.prefillReused, decodeTokens: t.decodeTokens, prompt, suggestion: answer.items[0] ?? '' };
}
// ---------- the same prompt through llama.cpp ----------

// node-llama-cpp's sequence and context, the subset used here (its .d.ts is outside the typecheck)
export interface TraceSequence {
  readonly nextTokenIndex: number;
  adaptStateToTokens(tokens: number[], allowShift: boolean): Promise<void>;
  eraseContextTokenRanges(ranges: { start: number; end: number }[]): Promise<void>;
  clearHistory(): Promise<void>;
  evaluate(tokens: number[], options: { temperature: number; yieldEogToken: boolean }): AsyncGenerator<number, void, void | number>;
}
export interface TraceContext {
  readonly flashAttention: boolean | 'auto';
  readonly kvCacheKeyType: unknown;
  readonly batchSize: number;
  getSequence(): TraceSequence;
  dispose(): Promise<void>;
}

/**
 * The prompt on top of whatever the sequence holds: keep the common prefix (at most all but one
 * token: the last one must be evaluated for logits), evaluate the rest, take `decodeTokens` greedy tokens.
 */
export async function llamaKeystroke(seq: TraceSequence, prompt: readonly number[], decodeTokens: number, keystroke: number): Promise<Sample> {
  const t0 = performance.now();
  await seq.adaptStateToTokens([...prompt], false);
  if (seq.nextTokenIndex >= prompt.length) await seq.eraseContextTokenRanges([{ start: prompt.length - 1, end: seq.nextTokenIndex }]);
  const reused = seq.nextTokenIndex;
  const tokens = seq.evaluate(prompt.slice(reused), { temperature: 0, yieldEogToken: true });
  let firstTokenMs = 0;
  for (let n = 0; n < decodeTokens; n++) {
    if ((await tokens.next()).done) throw new Error(`keystroke ${keystroke}: llama.cpp stopped after ${n} tokens`);
    if (n === 0) firstTokenMs = performance.now() - t0;
  }
  await tokens.return(undefined); // the last token is sampled, never evaluated (as in Kiln)
  return { keystroke, ms: performance.now() - t0, firstTokenMs, computed: prompt.length - reused, reused, decodeTokens };
}

export interface Distribution {
  p50: number;
  p95: number;
  mean: number;
  min: number;
  max: number;
  n: number;
} // prettier-ignore

/** Nearest-rank percentiles (the status bar's), mean and range. */
export function distribution(xs: number[]): Distribution {
  const sorted = [...xs].sort((a, b) => a - b);
  const p = (q: number) => round(percentile(sorted, q) ?? NaN);
  return { p50: p(50), p95: p(95), mean: round(xs.reduce((a, b) => a + b, 0) / xs.length), min: round(sorted[0]!), max: round(sorted[sorted.length - 1]!), n: xs.length };
}

// The completion engine: one request in, suggestions out, along the keystroke path of DESIGN.md —
// typing-through, answer cache, prompt, KV reuse, decode, transforms, telemetry, speculation.
// It depends on small interfaces only (no LSP, no vscode): the server and the CLI both drive it.
import { performance } from 'node:perf_hooks';
import { KvPool } from '../kvcache/kv-pool';
import type { LatencyStats } from '../telemetry/latency-stats';
import { Stopwatch, type CompletionSource, type CompletionTimings } from '../telemetry/timings';
import type { CompletionSettings as KilnSettings } from './completion-settings';
import { AnswerCache } from './answer-cache';
import type { CompletionModel } from './completion-model';
import { generate, generateCandidates, prefillPrompt } from './generation';
import { InferenceLoop } from './inference-loop';
import { buildPrompt, promptTokenCacheFor } from './prompt';
import { type HealedPrompt, healPrompt } from './token-healing';
import { createSampler } from './sampler';
import { createStopRules, type StopMode } from './stop-rules';
import { applyTransforms } from './transforms';
import { ShownSuggestions, typeThrough } from './typing-through';

export interface CompletionRequest {
  uri: string;
  text: string; // the whole document
  offset: number; // cursor, in UTF-16 code units
  /** The user asked (e.g. Alt+\): decode several candidates as one batch. */
  explicit?: boolean;
  signal?: AbortSignal;
}

export interface CompletionAnswer {
  items: string[];
  timings: CompletionTimings;
}

/** How much text after the cursor the stop rules and transforms look at. */
const AFTER_WINDOW = 4096;
/** How much of the cursor line before the cursor they look at: a minified line can be megabytes. */
const LINE_BEFORE_WINDOW = 4096;

interface InFlight {
  before: string;
  after: string;
  result: Promise<CompletionAnswer>;
  /** The suggestion text generated so far. */
  progress: { text: string };
}

/** The user typed, since `pending`'s request, only characters its generation has already produced. */
function typedIntoGeneration(pending: InFlight, before: string, after: string): boolean {
  if (after !== pending.after || before.length <= pending.before.length || !before.startsWith(pending.before)) return false;
  return pending.progress.text.startsWith(before.slice(pending.before.length));
}

export class CompletionEngine {
  readonly loop = new InferenceLoop();
  private readonly pool: KvPool;
  private readonly answers = new AnswerCache();
  private readonly shown = new ShownSuggestions();
  private readonly inFlight = new Map<string, InFlight>();
  private readonly promptCache;

  constructor(
    readonly model: CompletionModel,
    private settings: KilnSettings,
    private readonly stats: LatencyStats,
    private readonly onAnswer: (timings: CompletionTimings) => void = () => {},
  ) {
    const session = model.loaded.session;
    this.pool = new KvPool({ budgetBytes: settings.kvBudgetMB * 2 ** 20, newState: () => session.newState(1), track: (s) => session.track(s) });
    this.promptCache = promptTokenCacheFor(model.tokenizer);
  }

  updateSettings(settings: KilnSettings): void {
    this.settings = settings;
    this.pool.setBudget(settings.kvBudgetMB * 2 ** 20);
  }

  /** Forgets everything computed with the current weights (after an adapter swap). */
  invalidate(): void {
    this.pool.clear();
    this.answers.clear();
    this.shown.clear();
  }

  /** A closed document's suggestion state goes; its KV stays pooled (other documents may share it). */
  forgetDocument(uri: string): void {
    this.shown.forget(uri);
  }

  poolStats() {
    return { bytes: this.pool.bytes, states: this.pool.size, ...this.pool.stats() };
  }

  async complete(req: CompletionRequest): Promise<CompletionAnswer> {
    const watch = new Stopwatch();
    const offset = Math.max(0, Math.min(req.offset, req.text.length));
    const before = req.text.slice(0, offset);
    const after = req.text.slice(offset);

    const through = this.typedThrough(req.uri, before, after, watch);
    if (through) return through;
    const pending = this.inFlight.get(req.uri);
    if (pending && typedIntoGeneration(pending, before, after)) {
      // The user typed what this document's suggestion, still being generated, begins with: wait
      // for it and type through it. Any other edit supersedes it (the newest request wins).
      try {
        await pending.result;
      } catch {
        // superseded or failed: fall through to a fresh request
      }
      const again = this.typedThrough(req.uri, before, after, watch);
      if (again) return again;
    }

    const prompt = this.prompt(req.text, offset);
    watch.lap('tokenize');
    const mode = this.modeAt(before, after);
    const explicit = req.explicit === true && this.settings.candidates > 1;
    const key = AnswerCache.key(req.uri, prompt, `${mode}${explicit ? '+n' : ''}`);
    const cached = this.answers.get(key);
    if (cached) return this.finish(req.uri, before, after, cached.items, watch, cached.source, undefined);

    const progress = { text: '' };
    const result = this.loop
      .submit(req.uri, (signal) => this.run(prompt, before, after, mode, explicit, signal, watch, progress), { external: req.signal })
      .then(({ items, gen }) => {
        this.answers.set(key, { items, source: 'answer-cache' });
        const answer = this.finish(req.uri, before, after, items, watch, 'model', gen);
        if (this.settings.speculate && items[0]) this.speculate(req.uri, before + items[0], after);
        return answer;
      });
    const entry: InFlight = { before, after, result, progress };
    this.inFlight.set(req.uri, entry);
    try {
      return await result;
    } finally {
      if (this.inFlight.get(req.uri) === entry) this.inFlight.delete(req.uri);
    }
  }

  private typedThrough(uri: string, before: string, after: string, watch: Stopwatch): CompletionAnswer | undefined {
    const shown = this.shown.get(uri);
    const rest = shown && typeThrough(shown, before, after);
    return rest ? this.finish(uri, before, after, [rest], watch, 'typing-through', undefined) : undefined;
  }

  /** The configured windows, shrunk to fit the model's context with room for the completion. */
  private promptOptions() {
    const room = Math.max(32, this.model.contextTokens - this.settings.maxTokens - 8); // FIM markers and BOS
    const suffix = Math.min(this.settings.maxSuffixTokens, Math.floor(room / 4));
    return { maxPrefixTokens: Math.max(16, Math.min(this.settings.maxPrefixTokens, room - suffix)), maxSuffixTokens: suffix, order: this.model.order };
  }

  /** 'auto': a whole block at the start of an empty line, the rest of the line otherwise. */
  private modeAt(before: string, after: string): StopMode {
    if (this.settings.completionMode !== 'auto') return this.settings.completionMode;
    const lineBefore = before.slice(before.lastIndexOf('\n') + 1);
    const lineEnd = after.indexOf('\n');
    const restOfLine = lineEnd < 0 ? after : after.slice(0, lineEnd);
    return lineBefore.trim() === '' && restOfLine.trim() === '' ? 'block' : 'line';
  }

  private stopIds(): Set<number> {
    const ids = new Set(this.model.fim.stopIds);
    if (this.model.tokenizer.eosId !== undefined) ids.add(this.model.tokenizer.eosId);
    return ids;
  }

  /** Runs on the inference loop: KV reuse, decode, post-processing. */
  /** The FIM prompt at `offset`, its last prefix token healed (see token-healing.ts). */
  private prompt(text: string, offset: number): HealedPrompt {
    const built = buildPrompt(this.model.tokenizer, this.model.fim, text, offset, this.promptOptions(), this.promptCache);
    if (!this.settings.tokenHealing) return { tokens: built.tokens, forcedText: '', forcedBytes: new Uint8Array(0) };
    return healPrompt(built, this.model.fim, this.model.order, this.model.tokenizer);
  }

  private async run(prompt: HealedPrompt, before: string, after: string, mode: StopMode, explicit: boolean, signal: AbortSignal, watch: Stopwatch, progress?: { text: string }) {
    watch.lap('queue');
    const session = this.model.loaded.session;
    const lineBefore = before.slice(Math.max(before.lastIndexOf('\n') + 1, before.length - LINE_BEFORE_WINDOW));
    const textAfter = after.slice(0, AFTER_WINDOW);
    const makeStop = () => createStopRules({ mode, lineBefore, textAfter, maxTokens: this.settings.maxTokens, deadline: Date.now() + this.settings.timeLimitMs });
    const { state } = this.pool.acquire(prompt.tokens);
    const onText = progress && ((text: string) => (progress.text = text));
    const healing = { bytes: prompt.forcedBytes, text: prompt.forcedText };
    const options = { maxTokens: this.settings.maxTokens, stopIds: this.stopIds(), signal, onText, healing };
    try {
      if (!explicit) {
        const sampler = createSampler({ temperature: this.settings.temperature, topP: this.settings.topP, seed: 1 });
        const gen = await generate(session, this.model.tokenizer, state, prompt.tokens, sampler, makeStop(), options);
        return { items: this.postProcess([gen.text], lineBefore, textAfter), gen };
      }
      const pre = await prefillPrompt(session, state, prompt.tokens);
      const t0 = performance.now();
      // Row 0 is the greedy (or configured) answer; the others sample for variety.
      const samplers = Array.from({ length: this.settings.candidates }, (_, b) =>
        createSampler(b === 0 ? { temperature: this.settings.temperature, topP: this.settings.topP, seed: 1 } : { temperature: Math.max(0.7, this.settings.temperature), topP: 0.95, seed: 1 + b }),
      );
      const texts = await generateCandidates(session, this.model.tokenizer, state, pre.logits, samplers, makeStop, options);
      const gen = { prefillMs: pre.ms, prefillComputed: pre.computed, prefillReused: pre.reused, decodeMs: performance.now() - t0, tokens: [] as number[] };
      return { items: this.postProcess(texts, lineBefore, textAfter), gen };
    } finally {
      this.pool.release(state);
    }
  }

  private postProcess(texts: string[], lineBefore: string, textAfter: string): string[] {
    const out = texts.map((t) => applyTransforms(t, { lineBefore, textAfter })).filter((t) => t.length > 0);
    return [...new Set(out)];
  }

  private finish(
    uri: string,
    before: string,
    after: string,
    items: string[],
    watch: Stopwatch,
    source: CompletionSource,
    gen: { prefillMs: number; prefillComputed: number; prefillReused: number; decodeMs: number; tokens: number[] } | undefined,
  ): CompletionAnswer {
    if (items[0]) this.shown.remember(uri, { before, after, completion: items[0] });
    else this.shown.forget(uri);
    const timings: CompletionTimings = {
      queueMs: watch.get('queue'),
      tokenizeMs: watch.get('tokenize'),
      prefillMs: gen?.prefillMs ?? 0,
      prefillComputed: gen?.prefillComputed ?? 0,
      prefillReused: gen?.prefillReused ?? 0,
      decodeMs: gen?.decodeMs ?? 0,
      decodeTokens: gen?.tokens.length ?? 0,
      totalMs: watch.elapsed(),
      source,
    };
    this.stats.record(timings);
    this.onAnswer(timings);
    return { items, timings };
  }

  /**
   * While idle, computes the suggestion that would follow if the shown one were accepted: its KV is
   * already in the pool, so accepting (Tab) finds the next answer in the cache.
   */
  private speculate(uri: string, before: string, after: string): void {
    const text = before + after;
    const prompt = this.prompt(text, before.length);
    const nextMode = this.modeAt(before, after);
    const key = AnswerCache.key(uri, prompt, nextMode);
    if (this.answers.get(key)) return;
    const watch = new Stopwatch();
    this.loop
      .submit(uri, (signal) => this.run(prompt, before, after, nextMode, false, signal, watch), { priority: 'background' })
      .then(({ items }) => this.answers.set(key, { items, source: 'speculation' }))
      .catch(() => {
        // yielded to a real request, or failed: speculation is best effort
      });
  }
}

// The completion engine: one request in, suggestions out, along the keystroke path of DESIGN.md —
// typing-through, answer cache, prompt, KV reuse, decode, transforms, telemetry, speculation.
// It depends on small interfaces only (no LSP, no vscode): the server and the CLI both drive it.
// Policy only: the model, its KV slots and the task loop belong to the runtime's inference server,
// reached through the Generator interface.
import { performance } from 'node:perf_hooks';
import { prefixFor, splitTokenBudget } from '../context/budget';
import type { ContextBlock } from '../context/block';
import { ContextBlockKeeper } from '../context/block-keeper';
import type { FimOrder } from '../model/fim';
import { toChunks } from '../context/snippet';
import type { ContextSupplier } from '../context/supplier';
import { InferenceServer } from '../runtime/inference-server';
import type { TaskOptions } from '../runtime/generator';
import type { MemoryReport } from '../runtime/memory';
import type { LatencyStats } from '../telemetry/latency-stats';
import { Stopwatch, type CompletionSource, type CompletionTimings, type RemoteTimings } from '../telemetry/timings';
import type { CompletionSettings as KilnSettings } from './completion-settings';
import { AnswerCache } from './answer-cache';
import type { CompletionModel } from './completion-model';
import { decodeRows, type GenerationResult, type LookupDecoding, newLookupStats, prefillPrompt } from './generation';
import { DEFAULT_LOOKUP_DRAFT, draftByLookup, lineBreakTokens, type LookupDraftOptions } from './lookup-draft';
import { fimPromptText, generateRemote, indentOf, type RemoteBackendChoice } from './remote-generation';
import { RequestScheduler } from './scheduler';
import { buildAtLeastMinimum, CALIBRATION_TOKENS, calibrateRates, LINE_FLOOR_TOKENS, LINE_RESERVE_TOKENS, shortWindowTokens, ThroughputMeter } from './prefill-budget';
import { type PrewarmCounters, Prewarmer, type WarmOutcome } from './prewarm';
import { buildPrompt, promptTokenCacheFor } from './prompt';
import { buildTypedMiddlePrompt, MIDDLE_RESERVE_TOKENS } from './psm-middle';
import { type HealedPrompt, healPrompt } from './token-healing';
import { createSampler } from './sampler';
import { createStopRules, type StopContext, type StopMode, type StopRules } from './stop-rules';
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

export interface CompletionEngineOptions {
  /** Called with every answer's timings (the server pushes them as stats). */
  onAnswer?: (timings: CompletionTimings) => void;
  /** The runtime to generate through; by default one over the model's session, sized by the settings. */
  server?: InferenceServer;
  /** Lookup drafting's n-gram range and draft length (the bench compares draft lengths). */
  lookupDraft?: Partial<Omit<LookupDraftOptions, 'sources'>>;
  /** The stop rules of each request (default createStopRules; the real-size bench fixes the decoded length with its own). */
  stopRules?: (ctx: StopContext) => StopRules;
  /** A remote backend computes the completions (see setRemote); the local model stays for the prompt's tokens and the fallback. */
  remote?: RemoteBackendChoice;
  /** Where the context block's snippets come from (none: the prompt is the current file only). */
  context?: ContextSupplier;
}

/** Documents whose last prompt tokens lookup decoding drafts from, most recent kept. */
const LOOKUP_DOCUMENTS = 8;

/** What one model answer cost, for telemetry: prefill split, decode time and every row's tokens. */
type GenerationCost = Omit<GenerationResult, 'rows'> & { tokens: number; shortWindowTokens?: number; remote?: RemoteTimings };

/**
 * A request's prompt as the engine builds it: the context block it starts with, the text windows it was
 * built from (a remote backend takes the text) and the size of its prefix window (what a shorter window cuts).
 */
export type EnginePrompt = HealedPrompt & { block: ContextBlock; prefix: string; suffix: string; prefixTokens: number };

/** Where a document's cursor is (a pre-warm request): the same fields a completion request has. */
export type CursorPlace = Pick<CompletionRequest, 'uri' | 'text' | 'offset'>;

/** One generation for the scheduler to run: a request's prompt, or a speculated next one. */
interface GenerationJob {
  uri: string;
  prompt: EnginePrompt;
  before: string;
  after: string;
  mode: StopMode;
  /** Several candidates as one batch. */
  explicit: boolean;
  signal: AbortSignal;
  watch: Stopwatch;
  /** The text generated so far, for typing-through; absent for background work. */
  progress?: { text: string };
}

/** An answer to record and return, from whichever source produced it. */
interface FinishedAnswer {
  uri: string;
  before: string;
  after: string;
  items: string[];
  watch: Stopwatch;
  source: CompletionSource;
  /** What the model computed; absent for answers that skipped model work. */
  gen?: GenerationCost;
}

export class CompletionEngine {
  readonly scheduler = new RequestScheduler();
  /** The runtime that owns the model; the engine generates through it and never runs the session. */
  readonly server: InferenceServer;
  private readonly answers = new AnswerCache();
  private readonly shown = new ShownSuggestions();
  private readonly inFlight = new Map<string, InFlight>();
  private promptCache;
  /** Bumped by every swap: an answer computed before it is not cached after it. */
  private modelEpoch = 0;

  private readonly onAnswer: (timings: CompletionTimings) => void;
  /** Drafted, accepted, forwards and tokens of every lookup-decoded row (for the bench and stats). */
  readonly lookupStats = newLookupStats();
  /** Per document, its last prompt's tokens: what other documents' rows may draft from. */
  private readonly lookupSources = new Map<string, readonly number[]>();
  private readonly lookupDraft: Omit<LookupDraftOptions, 'sources'>;
  private readonly stopRules: (ctx: StopContext) => StopRules;
  private remote: RemoteBackendChoice | undefined;
  private contextSupplier: ContextSupplier | undefined;
  /** Each document's last context block (kept stable between keystrokes). */
  readonly blocks = new ContextBlockKeeper();
  /** The runtime's measured prefill and decode rates: what the prefill budget plans with. */
  readonly throughput = new ThroughputMeter();
  private readonly prewarmer: Prewarmer;

  constructor(
    private current: CompletionModel,
    private settings: KilnSettings,
    private readonly stats: LatencyStats,
    options: CompletionEngineOptions = {},
  ) {
    this.onAnswer = options.onAnswer ?? (() => {});
    this.lookupDraft = { ...DEFAULT_LOOKUP_DRAFT, ...options.lookupDraft };
    this.stopRules = options.stopRules ?? createStopRules;
    this.server = options.server ?? new InferenceServer(current.loaded.session, { kvBudgetBytes: settings.kvBudgetMB * 2 ** 20 });
    this.promptCache = promptTokenCacheFor(current.tokenizer);
    this.server.observeForwards((run) => this.throughput.observe(run));
    this.prewarmer = new Prewarmer(this.server, this.scheduler);
    this.remote = options.remote;
    this.contextSupplier = options.context;
  }

  /** Where context comes from from now on (the server sets it once it knows the workspace). */
  setContextSupplier(supplier: ContextSupplier | undefined): void {
    this.contextSupplier = supplier;
    this.blocks.clear();
  }

  /** The remote backend in use, if any. */
  get remoteBackend(): RemoteBackendChoice | undefined {
    return this.remote;
  }

  /** Switches between the local model and a remote backend; answers computed by the other go. */
  setRemote(choice: RemoteBackendChoice | undefined): void {
    this.remote = choice;
    this.modelEpoch++;
    this.answers.clear();
    this.shown.clear();
  }

  /** What pre-warming did since the engine started. */
  prewarmStats(): PrewarmCounters {
    return { ...this.prewarmer.counters };
  }

  /**
   * The user moved to `place` (opened or focused a document, clicked, jumped) and may type there:
   * prefill the prompt a request there would build, as background work that any request preempts.
   */
  prewarm(place: CursorPlace): Promise<WarmOutcome> {
    if (!this.settings.prewarm || this.remote) return Promise.resolve({ computed: 0, reused: 0, preempted: false });
    const offset = Math.max(0, Math.min(place.offset, place.text.length));
    return this.prewarmer.warm(place.uri, this.prompt(place.uri, place.text, offset).tokens);
  }

  get model(): CompletionModel {
    return this.current;
  }

  updateSettings(settings: KilnSettings): void {
    this.settings = settings;
    this.server.setCacheBudget(settings.kvBudgetMB * 2 ** 20);
  }

  /** Forgets everything computed with the current weights (after an adapter swap). */
  invalidate(): void {
    this.server.clearCache();
    this.answers.clear();
    this.shown.clear();
  }

  /**
   * Serves `next` (new weights or an adapter over the same tokenizer) from now on: the runtime swaps
   * the session between two steps and drops KV of the old weights; answers cached for the old
   * weights go. Resolves to the old session, which nothing runs any more, for the caller to release.
   */
  async swapModel(next: CompletionModel): Promise<CompletionModel['loaded']['session']> {
    if (next.tokenizer !== this.current.tokenizer) this.promptCache = promptTokenCacheFor(next.tokenizer);
    this.current = next;
    this.modelEpoch++;
    this.answers.clear();
    this.shown.clear();
    const old = await this.server.swap(next.loaded.session);
    this.throughput.reset(); // the rates were the old model's; no forward of the new one ran yet
    return old;
  }

  /**
   * Measures the local model's prefill and decode rates in the background (calibrateRates) unless
   * some were measured: the model host calls it once a model is ready. Never rejects.
   */
  async calibrate(): Promise<void> {
    if (this.remote || this.throughput.measured) return;
    // a swap, a release or a request's preemption meanwhile: whatever ran was still measured
    await calibrateRates(this.server, Math.min(CALIBRATION_TOKENS, this.current.contextTokens - 2)).catch(() => {});
  }

  /** Memory of the model and its KV (the status bar's figure). */
  memory(): Promise<MemoryReport> {
    return this.server.memory();
  }

  /** A closed document's suggestion state goes; its KV stays pooled (other documents may share it). */
  forgetDocument(uri: string): void {
    this.shown.forget(uri);
    this.lookupSources.delete(uri);
    this.blocks.forget(uri);
  }

  poolStats() {
    return this.server.cacheStats();
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

    const prompt = this.prompt(req.uri, req.text, offset);
    this.rememberForLookup(req.uri, prompt.tokens);
    watch.lap('tokenize');
    const mode = this.modeAt(before, after);
    const explicit = req.explicit === true && this.settings.candidates > 1;
    const key = AnswerCache.key(req.uri, prompt, `${mode}${explicit ? '+n' : ''}`);
    const cached = this.answers.get(key);
    if (cached) return this.finish({ uri: req.uri, before, after, items: cached.items, watch, source: cached.source });

    const progress = { text: '' };
    const epoch = this.modelEpoch;
    const result = this.scheduler
      .run(req.uri, (signal) => this.run({ uri: req.uri, prompt, before, after, mode, explicit, signal, watch, progress }), { external: req.signal })
      .then(({ items, gen, failed, deferred }) => {
        if (epoch === this.modelEpoch && !failed) this.answers.set(key, { items, source: 'answer-cache' });
        if (deferred) void this.prewarmer.warm(req.uri, deferred); // the full window, for the next keystroke
        const answer = this.finish({ uri: req.uri, before, after, items, watch, source: 'model', gen });
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
    return rest ? this.finish({ uri, before, after, items: [rest], watch, source: 'typing-through' }) : undefined;
  }

  /** The token budget: context block, suffix and prefix shrunk to fit the model with room for the completion (context/budget.ts). */
  private budget() {
    const s = this.settings;
    const maxContext = s['context.enabled'] && this.contextSupplier !== undefined ? s['context.maxTokens'] : 0;
    return splitTokenBudget({ modelTokens: this.model.contextTokens, completionTokens: s.maxTokens, maxContext, maxPrefix: s.maxPrefixTokens, maxSuffix: s.maxSuffixTokens });
  }

  /** This document's context block for a cursor, or the empty block when context is off or finds nothing. */
  private contextBlock(uri: string, text: string, offset: number, maxTokens: number): ContextBlock {
    const found = maxTokens > 0 ? this.contextSupplier?.contextFor({ uri, text, offset, sources: this.settings['context.sources'] }) : undefined;
    const cache = this.promptCache;
    return this.blocks.blockFor(uri, {
      candidates: found?.candidates ?? [],
      currentPath: found?.path ?? '',
      repoName: found?.repoName ?? '',
      maxTokens,
      encode: (piece) => cache.encode(piece),
      template: this.model.fim,
      ...(this.model.contextFormat === undefined ? {} : { format: this.model.contextFormat }),
    });
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

  /** The prompt a request at `offset` of `text` gets: what `kiln complete --workspace` and the server's kiln/prompt show. */
  promptFor(req: { uri: string; text: string; offset: number }): EnginePrompt {
    return this.prompt(req.uri, req.text, Math.max(0, Math.min(req.offset, req.text.length)));
  }

  /**
   * The context block, then the FIM prompt at `offset` with its last prefix token healed (see
   * token-healing.ts); under PSM with `psmTypedMiddle`, the cursor line's typed text in the middle (see
   * psm-middle.ts). `maxPrefixTokens` narrows the prefix window (the prefill budget's shorter window).
   */
  private prompt(uri: string, text: string, offset: number, maxPrefixTokens?: number): EnginePrompt {
    const budget = this.budget();
    const block = this.contextBlock(uri, text, offset, budget.context);
    const fitted = prefixFor(budget, block.tokens.length);
    const options = { maxPrefixTokens: maxPrefixTokens === undefined ? fitted : Math.min(fitted, maxPrefixTokens), maxSuffixTokens: budget.suffix, order: this.model.order };
    const request = { tokenizer: this.model.tokenizer, template: this.model.fim, text, offset, options, cache: this.promptCache, context: block.tokens };
    // a remote backend builds its own FIM text from the windows: neither a typed middle nor healing
    if (this.typedMiddle(options.order)) {
      const typed = buildTypedMiddlePrompt({ ...request, heal: this.settings.tokenHealing });
      return { ...typed, block, prefix: typed.built.prefix, suffix: typed.built.suffix, prefixTokens: typed.built.prefixTokens.length };
    }
    const built = buildPrompt(request);
    const windows = { block, prefix: built.prefix, suffix: built.suffix, prefixTokens: built.prefixTokens.length };
    if (!this.settings.tokenHealing || this.remote) return { tokens: built.tokens, forcedText: '', forcedBytes: new Uint8Array(0), ...windows };
    return { ...healPrompt(built, this.model.fim, this.model.order, this.model.tokenizer), ...windows };
  }

  /** Whether prompts in `order` keep the typed part of the line after the suffix (psm-middle.ts). */
  private typedMiddle(order: FimOrder): boolean {
    return order === 'psm' && this.settings.psmTypedMiddle && !this.remote;
  }

  /** Row 0 is the greedy (or configured) answer; explicit requests add sampled rows for variety. */
  private samplers(explicit: boolean) {
    const rows = explicit ? this.settings.candidates : 1;
    const vocabSize = this.model.tokenizer.vocabSize; // the model's padding ids beyond it are never picked
    return Array.from({ length: rows }, (_, b) =>
      createSampler(
        b === 0
          ? { temperature: this.settings.temperature, topP: this.settings.topP, seed: 1, vocabSize }
          : { temperature: Math.max(0.7, this.settings.temperature), topP: 0.95, seed: 1 + b, vocabSize },
      ),
    );
  }

  /** KV reuse, prefill, decode (one slot, or one per candidate), post-processing; or the remote backend. */
  private async run(job: GenerationJob): Promise<{ items: string[]; gen?: GenerationCost; failed?: boolean; deferred?: readonly number[] }> {
    const { uri, prompt: full, before, after, mode, explicit, signal, watch, progress } = job;
    watch.lap('queue');
    const started = Date.now();
    const priority = progress ? 'foreground' : 'background';
    const lineBefore = before.slice(Math.max(before.lastIndexOf('\n') + 1, before.length - LINE_BEFORE_WINDOW));
    const textAfter = after.slice(0, AFTER_WINDOW);
    const reserveTokens = Math.min(this.settings.maxTokens, LINE_RESERVE_TOKENS);
    // The time limit counts from here, prefill included; decode keeps time for a full line, and the
    // limit never cuts before LINE_FLOOR_TOKENS, however long the prefill took.
    const makeStop = () =>
      this.stopRules({
        mode,
        lineBefore,
        textAfter,
        maxTokens: this.settings.maxTokens,
        deadline: Math.max(started + this.settings.timeLimitMs, Date.now() + this.throughput.decodeMs(reserveTokens)),
        minTokensBeforeDeadline: LINE_FLOOR_TOKENS,
      });
    const onText = progress && ((text: string) => (progress.text = text));
    const remote = this.remote;
    if (remote) {
      try {
        const r = await generateRemote({
          choice: remote,
          request: {
            prefix: full.prefix,
            suffix: full.suffix,
            // the context block spelled out (its markers as text) before the FIM prompt, as the local prompt's tokens have it
            prompt:
              (full.block.tokens.length ? this.model.tokenizer.decode(full.block.tokens) : '') +
              fimPromptText(this.model.fim, this.model.tokenizer, full.prefix, full.suffix, this.model.order),
            maxTokens: this.settings.maxTokens,
            timeLimitMs: this.settings.timeLimitMs,
            indent: indentOf(lineBefore),
            temperature: this.settings.temperature,
            topP: this.settings.topP,
            extra: toChunks(full.block.snippets), // llama.cpp's input_extra (its /infill builds the rest itself)
          },
          makeStop,
          signal,
          onText,
        });
        remote.onOutcome?.(undefined);
        const gen: GenerationCost = { prefillMs: 0, prefillComputed: 0, prefillReused: 0, decodeMs: r.timings.requestMs, tokens: r.pieces, remote: r.timings };
        return { items: this.postProcess([r.text], lineBefore, textAfter), gen };
      } catch (err) {
        if (signal.aborted) throw err; // superseded: not the backend's failure
        remote.onOutcome?.(err);
        if (!remote.fallbackToLocal) return { items: [], failed: true };
      }
    }
    const task = { signal, priority } as const;
    const gen = this.server;
    const { slot, prompt, window } = await this.openBudgeted(full, { uri, before, after, task, reserveTokens });
    const healing = { bytes: prompt.forcedBytes, text: prompt.forcedText };
    const options = { maxTokens: this.settings.maxTokens, stopIds: this.stopIds(), signal, priority, onText, healing, lookup: this.lookup(explicit, prompt.tokens, mode) } as const;
    const slots = [slot];
    try {
      const pre = await prefillPrompt(gen, slot, prompt.tokens, task);
      const samplers = this.samplers(explicit);
      while (slots.length < samplers.length) slots.push(await gen.fork(slot, task));
      const t0 = performance.now();
      const rows = await decodeRows({ gen, tokenizer: this.model.tokenizer, slots, logits: pre.logits, samplers, makeStop }, options);
      const cost: GenerationCost = {
        prefillMs: pre.ms,
        prefillComputed: pre.computed,
        prefillReused: pre.reused,
        decodeMs: performance.now() - t0,
        tokens: rows.reduce((n, r) => n + r.tokens.length, 0),
        ...(window === undefined ? {} : { shortWindowTokens: prompt.prefixTokens }),
      };
      return {
        items: this.postProcess(
          rows.map((r) => r.text),
          lineBefore,
          textAfter,
        ),
        gen: cost,
        // a local fallback's answer is not cached: the remote one is wanted once the backend is back
        failed: remote !== undefined,
        deferred: window === undefined ? undefined : full.tokens,
      };
    } finally {
      // row 0 extends the prompt the next keystroke most likely shares; candidates' tails are noise
      for (const [i, s] of slots.entries()) gen.release(s, { keep: i === 0 });
    }
  }

  /**
   * A slot for `full`, or — for a request whose uncached part of `full` would not prefill within the
   * time limit — for the same cursor's prompt with a shorter prefix window. Decided once the slot is
   * open: a pre-warm this request preempted has pooled what it computed by then.
   */
  private async openBudgeted(full: EnginePrompt, at: { uri: string; before: string; after: string; task: TaskOptions; reserveTokens: number }) {
    const opened = await this.server.open(full.tokens, at.task);
    const window = at.task.priority === 'foreground' ? this.shortWindow(full, opened.reused, at.reserveTokens) : undefined;
    if (window === undefined) return { slot: opened.slot, prompt: full, window };
    this.server.release(opened.slot, { keep: true });
    const text = at.before + at.after;
    // a typed-middle prompt keeps MIDDLE_RESERVE_TOKENS of its prefix budget for the middle: the window
    // counts the prefix alone (without this, a 256-token window held 99 and grew to 471)
    const reserve = this.typedMiddle(this.model.order) ? MIDDLE_RESERVE_TOKENS : 0;
    const prompt = buildAtLeastMinimum(window, full.prefixTokens, (budget) => this.prompt(at.uri, text, at.before.length, budget + reserve));
    return { slot: (await this.server.open(prompt.tokens, at.task)).slot, prompt, window };
  }

  /** The shorter prefix window to answer from when the rest of `full` would not prefill in time. */
  private shortWindow(full: EnginePrompt, cached: number, reserveTokens: number): number | undefined {
    return shortWindowTokens(
      { promptTokens: full.tokens.length, prefixTokens: full.prefixTokens, cachedTokens: cached, timeLimitMs: this.settings.timeLimitMs, reserveTokens },
      this.throughput,
    );
  }

  private rememberForLookup(uri: string, tokens: readonly number[]): void {
    this.lookupSources.delete(uri); // re-inserted last: the map's order is recency
    this.lookupSources.set(uri, tokens);
    for (const oldest of this.lookupSources.keys()) {
      if (this.lookupSources.size <= LOOKUP_DOCUMENTS) break;
      this.lookupSources.delete(oldest);
    }
  }

  /** Lookup decoding for a greedy single suggestion (sampled rows decode plainly). */
  private lookup(explicit: boolean, prompt: readonly number[], mode: StopMode): LookupDecoding | undefined {
    if (!this.settings.lookupDecoding || explicit || this.settings.temperature !== 0) return undefined;
    const sources = [...this.lookupSources.values()].filter((tokens) => tokens !== prompt);
    const endsDraft = mode === 'line' ? lineBreakTokens(this.model.tokenizer) : undefined; // the line ends there
    return { draft: (context) => draftByLookup(context, { ...this.lookupDraft, sources, endsDraft }), stats: this.lookupStats };
  }

  private postProcess(texts: string[], lineBefore: string, textAfter: string): string[] {
    const out = texts.map((t) => applyTransforms(t, { lineBefore, textAfter })).filter((t) => t.length > 0);
    return [...new Set(out)];
  }

  private finish({ uri, before, after, items, watch, source, gen }: FinishedAnswer): CompletionAnswer {
    if (items[0]) this.shown.remember(uri, { before, after, completion: items[0] });
    else this.shown.forget(uri);
    const timings: CompletionTimings = {
      queueMs: watch.get('queue'),
      tokenizeMs: watch.get('tokenize'),
      prefillMs: gen?.prefillMs ?? 0,
      prefillComputed: gen?.prefillComputed ?? 0,
      prefillReused: gen?.prefillReused ?? 0,
      decodeMs: gen?.decodeMs ?? 0,
      decodeTokens: gen?.tokens ?? 0,
      totalMs: watch.elapsed(),
      source,
      ...(gen?.remote ? { remote: gen.remote } : {}),
      ...(gen?.shortWindowTokens === undefined ? {} : { shortWindowTokens: gen.shortWindowTokens }),
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
    const prompt = this.prompt(uri, text, before.length);
    const nextMode = this.modeAt(before, after);
    const key = AnswerCache.key(uri, prompt, nextMode);
    if (this.answers.get(key)) return;
    const watch = new Stopwatch();
    const epoch = this.modelEpoch;
    this.scheduler
      .run(uri, (signal) => this.run({ uri, prompt, before, after, mode: nextMode, explicit: false, signal, watch }), { priority: 'background' })
      .then(({ items, failed }) => {
        // a remote failure (or the local fallback's stand-in answer) is not kept, as in complete()
        if (epoch === this.modelEpoch && !failed) this.answers.set(key, { items, source: 'speculation' });
      })
      .catch(() => {
        // yielded to a real request, or failed: speculation is best effort
      });
  }
}

// The decode loop over the runtime's Generator: prefill what the slot lacks, then sample one token
// per row and step every unfinished row together until a stop rule, a stop token, the token limit,
// the time limit or an abort. One row is a single suggestion; N rows are explicit candidates that
// share one prompt (N slots of the same loop, advanced by one batched step each). A single greedy
// row may decode by lookup: a drafted continuation is verified in one forward and the longest
// prefix the model itself would have chosen is kept, so the output is plain decoding's, in fewer forwards.
import { performance } from 'node:perf_hooks';
import { TokenTextDecoder, type Tokenizer } from '../model/tokenizer';
import { throwIfAborted } from '../runtime/cancellation';
import type { Generator, Slot, TaskPriority } from '../runtime/generator';
import type { Sampler } from './sampler';
import type { StopRules } from './stop-rules';
import { ForcedPrefix } from './token-healing';

export interface GenerationOptions {
  maxTokens: number;
  stopIds: ReadonlySet<number>;
  signal?: AbortSignal;
  priority?: TaskPriority;
  /** Called after each token of row 0 with the text kept so far (what a suggestion would show). */
  onText?: (text: string) => void;
  /** Token healing: the output must begin with these bytes, which are then not part of the answer. */
  healing?: { bytes: Uint8Array; text: string };
  /** Lookup decoding for a single greedy row (ignored for several rows): see decodeByLookup. */
  lookup?: LookupDecoding;
}

/** How a single greedy row drafts its next tokens, and where it counts what the drafts saved. */
export interface LookupDecoding {
  /** Up to k tokens guessed to follow `context` (the prompt and every token picked so far). */
  draft: (context: readonly number[]) => readonly number[];
  stats?: LookupStats;
}

/** Counters over lookup-decoded rows: tokens drafted and accepted, and forwards per token computed. */
export interface LookupStats {
  drafted: number;
  accepted: number;
  /** Decode forwards run (verifications and plain steps). */
  forwards: number;
  /** Tokens those forwards computed onto the slot and kept. */
  tokens: number;
}

export function newLookupStats(): LookupStats {
  return { drafted: 0, accepted: 0, forwards: 0, tokens: 0 };
}

/** One sequence's healing state: masks logits until the forced bytes are out, then hides them. */
class Healer {
  private readonly forced: ForcedPrefix | undefined;

  constructor(
    tokenizer: Tokenizer,
    private readonly healing: GenerationOptions['healing'],
  ) {
    this.forced = healing && healing.bytes.length ? new ForcedPrefix(healing.bytes, tokenizer) : undefined;
  }

  pick(sampler: Sampler, logits: Float32Array): number {
    if (!this.forced?.active) return sampler(logits);
    const id = sampler(this.forced.mask(logits));
    this.forced.advance(id);
    return id;
  }

  /** Whether generated text is still (part of) the forced prefix. */
  get pending(): boolean {
    return this.forced?.active ?? false;
  }

  /** The generated text without the forced prefix. */
  visible(text: string): string {
    const forced = this.healing?.text ?? '';
    return forced && text.startsWith(forced) ? text.slice(forced.length) : text;
  }
}

export interface Prefilled {
  logits: Float32Array;
  computed: number;
  reused: number;
  ms: number;
}

/** One row's outcome: the kept text and the tokens of the suggestion (healed prefix excluded). */
export interface RowResult {
  text: string;
  tokens: number[];
  stopReason: string;
}

export interface GenerationResult {
  rows: RowResult[];
  prefillMs: number;
  prefillComputed: number;
  prefillReused: number;
  decodeMs: number;
}

/** Computes the prompt tokens `slot` does not hold yet; returns the logits after the last one. */
export async function prefillPrompt(gen: Generator, slot: Slot, prompt: readonly number[], options: Pick<GenerationOptions, 'signal' | 'priority'> = {}): Promise<Prefilled> {
  const reused = slot.tokens.length;
  if (reused >= prompt.length || slot.tokens.some((t, i) => t !== prompt[i])) throw new Error('prefillPrompt: the slot must hold a strict prefix of the prompt');
  const t0 = performance.now();
  const logits = await gen.extend(slot, prompt.slice(reused), options);
  return { logits, computed: prompt.length - reused, reused, ms: performance.now() - t0 };
}

/** One row of the loop: its slot, sampler, healing and stop rules, and the text so far. */
class Row {
  readonly decoder: TokenTextDecoder;
  readonly healer: Healer;
  readonly tokens: number[] = [];
  counted = 0; // tokens after the healed prefix: those are what limits count
  text = '';
  kept = '';
  stopReason = 'max-tokens';
  done = false;

  constructor(
    readonly slot: Slot,
    readonly sampler: Sampler,
    readonly stop: StopRules,
    tokenizer: Tokenizer,
    options: GenerationOptions,
  ) {
    this.decoder = new TokenTextDecoder(tokenizer);
    this.healer = new Healer(tokenizer, options.healing);
  }

  /** Picks the next token from `logits`; returns it if the row needs a decode step for it. */
  advance(logits: Float32Array, options: GenerationOptions): number | undefined {
    const healing = this.healer.pending;
    const next = this.healer.pick(this.sampler, logits);
    if (options.stopIds.has(next)) {
      this.stopReason = 'stop-token';
      this.kept = this.stop.finish(this.healer.visible(this.text + this.decoder.flush())).text;
      this.done = true;
      return undefined;
    }
    this.tokens.push(next);
    this.text += this.decoder.push(next);
    if (this.healer.pending) return next;
    if (!healing) this.counted++;
    const verdict = this.stop.check(this.healer.visible(this.text), this.counted);
    this.kept = verdict.text;
    if (verdict.stop) {
      this.stopReason = verdict.reason ?? 'stop-rule';
      this.done = true;
      return undefined;
    }
    if (this.counted >= options.maxTokens) {
      this.done = true;
      return undefined;
    }
    return next;
  }

  result(): RowResult {
    // The suggestion's tokens: those chosen to reproduce the healed prefix are not part of it.
    return { text: this.kept, tokens: this.tokens.slice(this.tokens.length - this.counted), stopReason: this.stopReason };
  }
}

export interface DecodeRowsInput {
  gen: Generator;
  tokenizer: Tokenizer;
  /** One slot per row, each holding the prompt; `logits` is the prompt's last logits. */
  slots: readonly Slot[];
  logits: Float32Array;
  samplers: readonly Sampler[];
  makeStop: () => StopRules;
}

/**
 * Decodes every row until it stops; each iteration is one `step` over the unfinished rows. On return
 * each slot holds the prompt plus its generated tokens but the last (whose KV was never needed).
 */
export async function decodeRows(input: DecodeRowsInput, options: GenerationOptions): Promise<RowResult[]> {
  if (options.lookup && input.slots.length === 1) return [await decodeByLookup(input, options, options.lookup)];
  const rows = input.slots.map((slot, b) => new Row(slot, input.samplers[b]!, input.makeStop(), input.tokenizer, options));
  let logits: Float32Array[] = rows.map(() => input.logits);
  let active = rows;
  for (;;) {
    throwIfAborted(options.signal);
    const next = active.map((row, i) => row.advance(logits[i]!, options));
    if (active[0] === rows[0]) options.onText?.(rows[0]!.kept);
    const stepping = active.filter((_, i) => next[i] !== undefined);
    if (stepping.length === 0) break;
    logits = await input.gen.step(
      stepping.map((r) => r.slot),
      next.filter((t): t is number => t !== undefined),
      { signal: options.signal, priority: options.priority },
    );
    active = stepping;
  }
  return rows.map((r) => r.result());
}

/**
 * One row decoded with drafts: the token to feed next and a draft go through `verify` in one
 * forward, which returns the logits after each of them; the row picks from them in order (healing
 * masks and stop rules exactly as in plain decoding) while its picks equal the draft. At the first
 * pick that differs, the KV of the rejected draft tokens is truncated and that pick is fed next.
 * Every pick is made from the logits plain decoding would have computed for the same tokens, so the
 * output is the same; the slot ends holding what plain decoding leaves in it.
 */
async function decodeByLookup(input: DecodeRowsInput, options: GenerationOptions, lookup: LookupDecoding): Promise<RowResult> {
  const { gen } = input;
  const slot = input.slots[0]!;
  const row = new Row(slot, input.samplers[0]!, input.makeStop(), input.tokenizer, options);
  const promptLength = slot.tokens.length;
  const context = [...slot.tokens];
  const stats = lookup.stats ?? newLookupStats();
  const task = { signal: options.signal, priority: options.priority };
  let fed = 0; // tokens plain decoding would have fed by now
  const pick = (logits: Float32Array) => {
    const next = row.advance(logits, options);
    options.onText?.(row.kept);
    for (let i = context.length - promptLength; i < row.tokens.length; i++) context.push(row.tokens[i]!);
    return next;
  };
  let next = pick(input.logits);
  while (next !== undefined) {
    throwIfAborted(options.signal);
    const draft = lookup.draft(context).slice(0, Math.max(0, options.maxTokens - row.counted)); // no draft past the token limit
    const base = slot.tokens.length;
    const logits = draft.length > 0 ? await gen.verify(slot, [next, ...draft], task) : await gen.step([slot], [next], task);
    stats.forwards++;
    stats.drafted += draft.length;
    fed++;
    next = undefined;
    for (let i = 0; i < logits.length; i++) {
      const picked = pick(logits[i]!);
      if (picked === undefined) break;
      if (i < draft.length && picked === draft[i]) {
        fed++;
        stats.accepted++;
        continue;
      }
      if (slot.tokens.length > base + 1 + i) gen.truncate(slot, base + 1 + i); // the rejected rest of the draft
      next = picked;
      break;
    }
  }
  stats.tokens += fed;
  if (slot.tokens.length > promptLength + fed) gen.truncate(slot, promptLength + fed); // draft past a stop
  return row.result();
}

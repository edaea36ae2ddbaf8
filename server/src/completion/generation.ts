// The decode loop over the runtime's Generator: prefill what the slot lacks, then sample one token
// per row and step every unfinished row together until a stop rule, a stop token, the token limit,
// the time limit or an abort. One row is a single suggestion; N rows are explicit candidates that
// share one prompt (N slots of the same loop, advanced by one batched step each).
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

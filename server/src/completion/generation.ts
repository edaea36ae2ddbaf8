// The decode loop: prefill what the KV state lacks, then sample one token at a time until a stop
// rule, a stop token, the token limit, the time limit or an abort. Single sequences and batches of
// candidates that share one prompt's KV.
import { performance } from 'node:perf_hooks';
import { TokenTextDecoder, type Tokenizer } from '../model/tokenizer';
import type { DecoderSession } from '../runtime/decoder-session';
import type { KvState } from '../runtime/kv-state';
import type { Sampler } from './sampler';
import type { StopRules } from './stop-rules';
import { ForcedPrefix } from './token-healing';


export interface GenerationOptions {
  maxTokens: number;
  stopIds: ReadonlySet<number>;
  signal?: AbortSignal;
  /** Called after each token with the text kept so far (what a suggestion would show). */
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

export interface GenerationResult {
  text: string;
  tokens: number[];
  prefillMs: number;
  prefillComputed: number;
  prefillReused: number;
  decodeMs: number;
  stopReason: string;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new Error('aborted');
}

/** Computes the prompt tokens `state` does not hold yet; returns the logits after the last one. */
export async function prefillPrompt(session: DecoderSession, state: KvState, prompt: readonly number[]): Promise<{ logits: Float32Array; computed: number; reused: number; ms: number }> {
  const held = state.tokens();
  const reused = state.length;
  if (reused >= prompt.length || held.some((t, i) => t !== prompt[i])) throw new Error('prefillPrompt: the KV state must hold a strict prefix of the prompt');
  const t0 = performance.now();
  const logits = await session.prefill(state, prompt.slice(reused));
  return { logits, computed: prompt.length - reused, reused, ms: performance.now() - t0 };
}

/**
 * Generates one continuation. On return `state` holds the prompt plus every generated token but
 * the last (whose KV was never needed), so a speculative continuation can pick up from it.
 */
export async function generate(
  session: DecoderSession,
  tokenizer: Tokenizer,
  state: KvState,
  prompt: readonly number[],
  sampler: Sampler,
  stop: StopRules,
  options: GenerationOptions,
): Promise<GenerationResult> {
  throwIfAborted(options.signal);
  const pre = await prefillPrompt(session, state, prompt);
  let logits = pre.logits;
  const decoder = new TokenTextDecoder(tokenizer);
  const healer = new Healer(tokenizer, options.healing);
  const tokens: number[] = [];
  let counted = 0; // tokens after the healed prefix: those are what limits count
  let text = '';
  let kept = '';
  let stopReason = 'max-tokens';
  const t0 = performance.now();
  for (;;) {
    throwIfAborted(options.signal);
    const healing = healer.pending;
    const next = healer.pick(sampler, logits);
    if (options.stopIds.has(next)) {
      stopReason = 'stop-token';
      break;
    }
    tokens.push(next);
    text += decoder.push(next);
    if (healer.pending) {
      logits = await session.decode(state, next);
      continue;
    }
    if (!healing) counted++;
    const verdict = stop.check(healer.visible(text), counted);
    kept = verdict.text;
    options.onText?.(kept);
    if (verdict.stop) {
      stopReason = verdict.reason ?? 'stop-rule';
      break;
    }
    if (counted >= options.maxTokens) break;
    logits = await session.decode(state, next);
  }
  if (stopReason === "stop-token") kept = stop.finish(healer.visible(text + decoder.flush())).text;
  // The suggestion's tokens: those chosen to reproduce the healed prefix are not part of it.
  return { text: kept, tokens: tokens.slice(tokens.length - counted), prefillMs: pre.ms, prefillComputed: pre.computed, prefillReused: pre.reused, decodeMs: performance.now() - t0, stopReason };
}

/**
 * Decodes `samplers.length` candidates as one batch (B > 1) on a copy of `promptState`'s KV,
 * starting from the prompt's last logits. Rows that stop early ride along until all have stopped.
 */
export async function generateCandidates(
  session: DecoderSession,
  tokenizer: Tokenizer,
  promptState: KvState,
  promptLogits: Float32Array,
  samplers: Sampler[],
  makeStop: () => StopRules,
  options: GenerationOptions,
): Promise<string[]> {
  const B = samplers.length;
  const V = session.config.vocabSize;
  const batch = session.track(promptState.broadcast(B));
  const rows = samplers.map(() => ({ decoder: new TokenTextDecoder(tokenizer), healer: new Healer(tokenizer, options.healing), stop: makeStop(), text: '', kept: '', done: false, count: 0 }));
  let logits: Float32Array = new Float32Array(B * V);
  for (let b = 0; b < B; b++) logits.set(promptLogits, b * V);
  for (let step = 0; step < options.maxTokens + (options.healing?.bytes.length ?? 0); step++) {
    throwIfAborted(options.signal);
    const next = rows.map((row, b) => {
      if (row.done) return 0; // a finished row decodes a filler token whose output is ignored
      const healing = row.healer.pending;
      const id = row.healer.pick(samplers[b]!, logits.subarray(b * V, (b + 1) * V));
      if (options.stopIds.has(id)) {
        row.done = true;
        row.kept = row.stop.finish(row.healer.visible(row.text + row.decoder.flush())).text;
        return id;
      }
      row.text += row.decoder.push(id);
      if (row.healer.pending) return id;
      if (!healing) row.count++;
      const verdict = row.stop.check(row.healer.visible(row.text), row.count);
      row.kept = verdict.text;
      row.done = verdict.stop;
      return id;
    });
    if (rows.every((r) => r.done)) break;
    logits = (await session.forward(batch, next.map((id) => [id]), 'last')).logits;
  }
  return rows.map((r) => r.kept);
}

// The prefill budget: a request's prompt is prefilled within its time limit, with decode time for a
// full line kept in reserve. Rates come from the runtime's own forwards (ThroughputMeter); when the
// uncached part of the full prompt would not fit, the request answers from a shorter prefix window
// (never under MIN_SHORT_WINDOW_TOKENS) and the full prompt is prefilled in the background afterwards.
import type { Generator } from '../runtime/generator';
import type { ForwardRun } from '../runtime/inference-server';

/** The shortest prefix window a request falls back to: shorter ones cost too much quality. */
export const MIN_SHORT_WINDOW_TOKENS = 256;
/** Decode time kept for a full line when budgeting the prefill (a one-line suggestion is ~8–16 tokens). */
export const LINE_RESERVE_TOKENS = 16;
/** The time limit never cuts a suggestion before this many tokens: a prefill that ran long still gets a line. */
export const LINE_FLOOR_TOKENS = 8;

/** Prefill runs shorter than this are mostly per-run overhead and say little about the rate. */
const MIN_PREFILL_SAMPLE = 16;
/** The calibration's prefill: a rate sample, one background chunk (inference-server.ts). */
export const CALIBRATION_TOKENS = 64;
/** Weight of the newest sample in the moving averages. */
const ALPHA = 0.3;

/** Moving averages of the runtime's prefill ms per token and decode ms per step (batch 1). */
export class ThroughputMeter {
  private prefillMsPerToken: number | undefined;
  private decodeMsPerStep: number | undefined;
  /** The sampled prefill run of fewest tokens (the latest of those): a decode step costs no more. */
  private shortestPrefill: { tokens: number; ms: number } | undefined;

  observe(run: ForwardRun): void {
    if (run.kind === 'prefill' && run.tokens >= MIN_PREFILL_SAMPLE) {
      this.prefillMsPerToken = average(this.prefillMsPerToken, run.ms / run.tokens);
      if (!this.shortestPrefill || run.tokens <= this.shortestPrefill.tokens) this.shortestPrefill = { tokens: run.tokens, ms: run.ms };
    } else if (run.kind === 'decode' && run.tokens === 1) this.decodeMsPerStep = average(this.decodeMsPerStep, run.ms);
  }

  /** Whether a prefill rate was measured. */
  get measured(): boolean {
    return this.prefillMsPerToken !== undefined;
  }

  /** Forgets every rate (another model now runs). */
  reset(): void {
    this.prefillMsPerToken = undefined;
    this.decodeMsPerStep = undefined;
    this.shortestPrefill = undefined;
  }

  /** Expected ms to prefill `tokens`, or undefined before any prefill was measured. */
  prefillMs(tokens: number): number | undefined {
    return this.prefillMsPerToken === undefined ? undefined : tokens * this.prefillMsPerToken;
  }

  /** Expected ms to decode `tokens` one step at a time (0 before any step was measured). */
  decodeMs(tokens: number): number {
    return tokens * (this.decodeMsPerStep ?? 0);
  }

  /**
   * Decode time to keep back for `tokens` steps when planning a prefill: the measured steps, or
   * before any, at most the shortest prefill run measured a step. Without that bound, a pre-warm
   * interrupted after its first chunk left a rate but no step, so a 0.5B prompt that needed 2.5 s
   * was planned as fitting the 2 s limit.
   */
  reserveMs(tokens: number): number {
    return tokens * (this.decodeMsPerStep ?? this.shortestPrefill?.ms ?? 0);
  }

  /** Prompt tokens that fit in `ms` of prefill, or undefined before any prefill was measured. */
  tokensWithin(ms: number): number | undefined {
    return this.prefillMsPerToken === undefined ? undefined : Math.max(0, Math.floor(ms / this.prefillMsPerToken));
  }
}

function average(previous: number | undefined, sample: number): number {
  return previous === undefined ? sample : previous + ALPHA * (sample - previous);
}

/**
 * The prompt built with a prefix budget of `budget` tokens, grown (up to `cap`, the full window's
 * size) until its window holds at least MIN_SHORT_WINDOW_TOKENS: a window starts at a jump point,
 * so it can hold up to a quarter less than its budget.
 */
export function buildAtLeastMinimum<P extends { prefixTokens: number }>(budget: number, cap: number, build: (maxPrefixTokens: number) => P): P {
  let built = build(budget);
  for (let tries = 0; tries < 4 && built.prefixTokens < MIN_SHORT_WINDOW_TOKENS && budget < cap; tries++) {
    budget = Math.min(cap, Math.max(Math.ceil((budget * MIN_SHORT_WINDOW_TOKENS) / Math.max(1, built.prefixTokens)), Math.ceil(budget * 1.25)));
    built = build(budget);
  }
  return built;
}

/** What the budget looks at: the full prompt as built, and how much of it the prefix cache holds. */
export interface PrefillQuestion {
  promptTokens: number;
  /** Of them, the prefix window's tokens (the part a shorter window cuts). */
  prefixTokens: number;
  /** Leading prompt tokens the prefix cache would reuse. */
  cachedTokens: number;
  timeLimitMs: number;
  /** Decode steps to reserve time for (a full line, capped by the token limit). */
  reserveTokens: number;
}

/**
 * The prefix window's token budget for a shorter prompt, or undefined when the full prompt fits in
 * the time limit (or no rate was measured yet: then the full prompt, and LINE_FLOOR_TOKENS keeps
 * the answer from being cut to a token). The shorter prompt is assumed uncached but for its prefix
 * window's start: it is built from other windows than the pooled prompts.
 */
export function shortWindowTokens(q: PrefillQuestion, meter: ThroughputMeter): number | undefined {
  const budgetMs = q.timeLimitMs - meter.reserveMs(q.reserveTokens);
  const fullMs = meter.prefillMs(q.promptTokens - q.cachedTokens);
  if (fullMs === undefined || fullMs <= budgetMs) return undefined;
  const affordable = meter.tokensWithin(Math.max(0, budgetMs)) ?? 0;
  const around = q.promptTokens - q.prefixTokens; // suffix and markers, computed whatever the window
  const window = Math.max(MIN_SHORT_WINDOW_TOKENS, affordable - around);
  // a window no shorter than the full one, or no cheaper than what the cache lacks of it, gains nothing
  return window < q.prefixTokens && window + around < q.promptTokens - q.cachedTokens ? window : undefined;
}

/**
 * Measures a model's rates before its first request: one background prefill of `tokens` arbitrary
 * ids and one decode step on a slot that is then dropped (its KV is nobody's prompt); the meter reads
 * both from the runtime's forwards. Without it, a session's first request has no rate to plan with
 * and prefills its whole prompt (0.5B int8 on 2 threads: ~2.5 s for a 900-token file). It also pays
 * the session's first-run allocations before a keystroke does. Background work: a request's forwards
 * run before its next one.
 */
export async function calibrateRates(gen: Pick<Generator, 'open' | 'extend' | 'step' | 'release' | 'vocabSize'>, tokens: number, signal?: AbortSignal): Promise<void> {
  if (tokens < MIN_PREFILL_SAMPLE) return; // too short a context to sample
  const task = { signal, priority: 'background' } as const;
  const ids = Array.from({ length: tokens }, (_, i) => i % gen.vocabSize);
  const { slot } = await gen.open(ids, task);
  try {
    await gen.extend(slot, ids.slice(slot.tokens.length), task);
    await gen.step([slot], [ids[0]!], task);
  } finally {
    gen.release(slot, { keep: false });
  }
}

// How a model's context window is shared between the context block, the prefix and the suffix.
//
//   [context block ≤ C][FIM markers][suffix ≤ S][prefix: what is left, ≤ maxPrefix][completion]
//
// C is the setting, capped at CONTEXT_SHARE of the room left after the completion and the markers,
// so a short-context model keeps most of its window for the file itself. S is fixed by C's cap (not
// by the block actually built), so the suffix window never moves when the block changes; the prefix
// gets what the block leaves. For the embedded model (512 trained tokens, 64 completion tokens):
// room 440, context ≤ 176, suffix ≤ 66, prefix 198–374.

export interface BudgetRequest {
  /** Tokens the model may see in all (its trained context, or its positions). */
  modelTokens: number;
  /** Tokens kept for the completion. */
  completionTokens: number;
  /** The configured limits (kiln.context.maxTokens, kiln.maxPrefixTokens, kiln.maxSuffixTokens). */
  maxContext: number;
  maxPrefix: number;
  maxSuffix: number;
}

export interface TokenBudget {
  /** Most tokens the context block may take. */
  context: number;
  suffix: number;
  /** The prefix's limit with the block this size; see prefixFor. */
  room: number;
  maxPrefix: number;
}

/** Share of the room the context block may take at most. */
export const CONTEXT_SHARE = 0.4;
/** FIM markers and BOS. */
const MARKERS = 8;
const MIN_PREFIX = 16;

export function splitTokenBudget(r: BudgetRequest): TokenBudget {
  const room = Math.max(32, r.modelTokens - r.completionTokens - MARKERS);
  const context = Math.max(0, Math.min(r.maxContext, Math.floor(room * CONTEXT_SHARE)));
  const suffix = Math.min(r.maxSuffix, Math.floor((room - context) / 4));
  return { context, suffix, room, maxPrefix: r.maxPrefix };
}

/** The prefix's token limit once the block has `blockTokens` tokens. */
export function prefixFor(budget: TokenBudget, blockTokens: number): number {
  return Math.max(MIN_PREFIX, Math.min(budget.maxPrefix, budget.room - budget.suffix - blockTokens));
}

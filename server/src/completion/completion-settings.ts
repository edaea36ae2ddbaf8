// What the completion engine is told by the user: decoding, prompt windows, the KV budget and
// the features it may use. The LSP's `kiln.*` settings extend this with how the model is loaded.
import { CONTEXT_SOURCES, type ContextSourceName } from '../context/snippet';

export type CompletionMode = 'line' | 'block' | 'auto';

export interface CompletionSettings {
  maxTokens: number;
  temperature: number;
  topP: number;
  completionMode: CompletionMode;
  maxPrefixTokens: number;
  maxSuffixTokens: number;
  kvBudgetMB: number;
  timeLimitMs: number;
  candidates: number; // suggestions decoded together for an explicit trigger
  speculate: boolean; // prepare the next suggestion while idle
  lookupDecoding: boolean; // greedy rows draft from matching context and verify drafts in one forward
  tokenHealing: boolean; // re-generate the prompt's last token (see token-healing.ts)
  /** Snippets of other files before the FIM prompt (context/); named as VS Code shows them. */
  'context.enabled': boolean;
  'context.sources': ContextSourceName[];
  /** The block's token limit; a short-context model gets less (context/budget.ts). */
  'context.maxTokens': number;
  prewarm: boolean; // prefill the prompt at a cursor the user moved to, before the first keystroke (see prewarm.ts)
  psmTypedMiddle: boolean; // PSM prompts put the cursor line's typed text in the middle, so typing only appends (see psm-middle.ts)
}

export const DEFAULT_COMPLETION_SETTINGS: CompletionSettings = {
  maxTokens: 64,
  temperature: 0,
  topP: 0.95,
  completionMode: 'auto',
  maxPrefixTokens: 1024,
  maxSuffixTokens: 256,
  kvBudgetMB: 256,
  timeLimitMs: 2000,
  candidates: 3,
  speculate: true,
  lookupDecoding: false, // measured no faster on the embedded model's one-line suggestions (see lookup-rows.ts)
  tokenHealing: true,
  'context.enabled': true,
  'context.sources': [...CONTEXT_SOURCES],
  'context.maxTokens': 512,
  prewarm: true,
  psmTypedMiddle: true,
};

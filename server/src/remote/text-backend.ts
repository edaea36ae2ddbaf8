// The text-level seam a remote inference engine is reached through. Remote APIs take text and return
// text, so this sits beside the runtime's logits-level Generator rather than under it: the completion
// engine keeps the prompt window, the FIM template, stop rules, transforms, typing-through, the answer
// cache and the scheduler's cancellation, and hands a backend only what its API can take.
import type { ServerReportedTimings } from '../telemetry/timings';

export const BACKEND_KINDS = ['local', 'openai', 'llamacpp', 'ollama'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];
export type RemoteKind = Exclude<BackendKind, 'local'>;

/** A snippet of repository context (another file's text), as llama.cpp's `input_extra` takes it. */
export interface ContextSnippet {
  filename: string;
  text: string;
}

/** One fill-in-the-middle request, in every form the three APIs take. */
export interface InfillRequest {
  /** The prefix window (text before the cursor), as Kiln chose it. */
  prefix: string;
  /** The suffix window (text after the cursor). */
  suffix: string;
  /** The whole FIM prompt as text, Kiln's template applied (for APIs that take a raw prompt). */
  prompt: string;
  /** Repository context; empty until the context feature provides snippets. */
  extra: readonly ContextSnippet[];
  maxTokens: number;
  /** The server may stop generating after this long (llama.cpp's `t_max_predict_ms`). */
  timeLimitMs: number;
  /** Indentation of the cursor line, in columns (llama.cpp's `n_indent`). */
  indent: number;
  temperature: number;
  topP: number;
}

/** Everything streamed so far; return false to stop (the backend then closes the connection). */
export type OnText = (generated: string) => boolean;

export interface InfillResult {
  text: string;
  /** 'stopped': the caller's OnText ended it; 'done': the server finished (end of text, a limit). */
  end: 'stopped' | 'done';
  /** Request sent to the last byte read (or to the stop), in ms. */
  requestMs: number;
  /** Request sent to the first streamed piece, in ms. */
  firstPieceMs?: number;
  /** Pieces (stream events carrying text); most servers send one per token. */
  pieces: number;
  /** What the server said its own work took, where it reports it. */
  server?: ServerReportedTimings;
}

export interface TextBackend {
  readonly kind: RemoteKind;
  /** e.g. `openai http://gpu-box:8000 (qwen2.5-coder)`, for status lines. */
  readonly label: string;
  /**
   * Streams one completion. Aborting `signal` closes the connection at once and rejects with the
   * signal's reason; failures reject with a RemoteError whose message is written for the user.
   */
  complete(request: InfillRequest, options: { signal: AbortSignal; onText?: OnText }): Promise<InfillResult>;
}

// One completion through a remote text backend, with the same policy as the local decode: Kiln's
// prompt window and FIM template, its stop rules checked on the streamed text (the connection is
// closed as soon as they end the suggestion), and the caller's transforms afterwards.
import type { FimOrder, FimTemplate } from '../model/fim';
import type { Tokenizer } from '../model/tokenizer';
import type { ContextSnippet, InfillRequest, InfillResult, TextBackend } from '../remote/text-backend';
import type { RemoteTimings } from '../telemetry/timings';
import { performance } from 'node:perf_hooks';
import { RemoteError } from '../remote/http-stream';
import type { StopRules } from './stop-rules';

/** A remote backend as the engine uses it. */
export interface RemoteBackendChoice {
  backend: TextBackend;
  /** On a remote failure, answer this request from the local model instead of nothing. */
  fallbackToLocal: boolean;
  /** Each remote request's outcome: undefined on success, the error on failure (for one status message). */
  onOutcome?: (error: unknown) => void;
}

/**
 * The FIM prompt as text, the model's special tokens spelled out, for APIs that take a raw prompt.
 * No BOS: llama-server, vLLM and Ollama add it themselves where the model's tokenizer asks for one,
 * and a second one would change what the model sees.
 */
export function fimPromptText(template: FimTemplate, tokenizer: Pick<Tokenizer, 'idToToken'>, prefix: string, suffix: string, order: FimOrder): string {
  const spell = (id: number) => tokenizer.idToToken(id) ?? '';
  const [pre, suf, mid] = [spell(template.prefixId), spell(template.suffixId), spell(template.middleId)];
  return order === 'psm' ? `${pre}${prefix}${suf}${suffix}${mid}` : `${pre}${suf}${suffix}${mid}${prefix}`;
}

/** Columns of leading whitespace of the cursor line (a tab counts as one, as llama.cpp counts). */
export function indentOf(lineBefore: string): number {
  return lineBefore.length - lineBefore.trimStart().length;
}

export interface RemoteJob {
  choice: RemoteBackendChoice;
  request: Omit<InfillRequest, 'extra'> & { extra?: readonly ContextSnippet[] };
  makeStop: () => StopRules;
  signal: AbortSignal;
  /** Called with the text generated so far (typing-through waits on it). */
  onText?: (text: string) => void;
}

export interface RemoteGeneration {
  /** The suggestion's text as the stop rules kept it (before transforms). */
  text: string;
  pieces: number;
  timings: RemoteTimings;
}

/** The reason our own deadline aborts a request with (told apart from the caller's abort). */
const TIME_UP = new Error('kiln.timeLimitMs reached');

/**
 * Streams the completion, stopping the server as soon as Kiln's stop rules end the suggestion. The
 * time limit holds even when the server goes quiet between pieces: at the deadline the request is
 * closed and what the stop rules keep of the text so far is the answer (nothing at all is a failure).
 */
export async function generateRemote(job: RemoteJob): Promise<RemoteGeneration> {
  const stop = job.makeStop();
  let kept: string | undefined;
  let count = 0;
  let latest = '';
  const controller = new AbortController();
  const onAbort = () => controller.abort(job.signal.reason);
  if (job.signal.aborted) onAbort();
  else job.signal.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => controller.abort(TIME_UP), job.request.timeLimitMs);
  const started = performance.now();
  let result: InfillResult;
  try {
    result = await job.choice.backend.complete(
      { ...job.request, extra: job.request.extra ?? [] },
      {
        signal: controller.signal,
        onText: (generated) => {
          count++; // one streamed piece is one token on llama.cpp, vLLM and Ollama
          latest = generated;
          const decision = stop.check(generated, count);
          job.onText?.(decision.text);
          if (!decision.stop) return true;
          kept = decision.text;
          return false;
        },
      },
    );
  } catch (err) {
    if (job.signal.aborted || controller.signal.reason !== TIME_UP) throw err;
    if (count === 0) throw new RemoteError(`sent nothing within ${job.request.timeLimitMs} ms ("kiln.timeLimitMs")`, 'timeout');
    result = { text: latest, end: 'stopped', requestMs: performance.now() - started, pieces: count };
    kept = stop.check(latest, count).text; // past the deadline: the rules keep what a time stop keeps
  } finally {
    clearTimeout(timer);
    job.signal.removeEventListener('abort', onAbort);
  }
  const text = result.end === 'stopped' && kept !== undefined ? kept : stop.finish(result.text).text;
  return {
    text,
    pieces: result.pieces,
    timings: {
      backend: job.choice.backend.kind,
      requestMs: result.requestMs,
      ...(result.firstPieceMs === undefined ? {} : { firstPieceMs: result.firstPieceMs }),
      stoppedEarly: result.end === 'stopped',
      ...(result.server ? { server: result.server } : {}),
    },
  };
}

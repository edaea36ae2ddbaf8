// llama.cpp's own server: POST /infill with `input_prefix`, `input_suffix` and `input_extra`; the
// server applies the model's FIM tokens itself. Streamed as `data: {"content":…,"stop":false}` events,
// the last with `"stop": true` and `timings` (llama.cpp tools/server/README.md, /completion and
// /infill: https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md).
import type { ServerReportedTimings } from '../telemetry/timings';
import { RemoteError } from './http-stream';
import { figure, sseEventOrThrow } from './stream-events';
import { type BackendProtocol, expectString, type StreamPiece } from './streamed-backend';
import type { InfillRequest } from './text-backend';

/** llama.cpp's `timings` object ({prompt_n, prompt_ms, predicted_n, predicted_ms, cache_n}) in Kiln's terms. */
export function llamaCppTimings(raw: unknown): ServerReportedTimings | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const t = raw as Record<string, unknown>;
  const out: ServerReportedTimings = {
    promptMs: figure(t.prompt_ms),
    promptTokens: figure(t.prompt_n),
    cachedTokens: figure(t.cache_n),
    predictedMs: figure(t.predicted_ms),
    predictedTokens: figure(t.predicted_n),
  };
  const kept = Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined));
  return Object.keys(kept).length ? kept : undefined;
}

export class LlamaCppProtocol implements BackendProtocol {
  readonly kind = 'llamacpp';

  body(request: InfillRequest): Record<string, unknown> {
    return {
      input_prefix: request.prefix,
      input_suffix: request.suffix,
      input_extra: request.extra.map((s) => ({ filename: s.filename, text: s.text })),
      n_predict: request.maxTokens,
      t_max_predict_ms: request.timeLimitMs,
      n_indent: request.indent,
      cache_prompt: true, // the server keeps the prompt's KV between keystrokes
      timings_per_token: true, // Kiln usually closes the stream before the last event, which alone has them otherwise
      temperature: request.temperature,
      top_p: request.topP,
      stream: true,
    };
  }

  parse(line: string): StreamPiece | undefined {
    const event = sseEventOrThrow(line);
    if (event === undefined) return undefined;
    if (event === 'done') return { done: true };
    const content = expectString(event, 'content', 'llama.cpp');
    if (typeof event.stop !== 'boolean') throw new RemoteError('sent a llama.cpp event whose "stop" is not true or false', 'protocol');
    const server = llamaCppTimings(event.timings);
    return { text: content, done: event.stop, ...(server ? { server } : {}) };
  }
}

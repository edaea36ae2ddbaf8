// Ollama: POST /api/generate with `raw: true`, so the prompt is Kiln's own FIM prompt and Ollama applies
// no template (with raw, Ollama does not use `suffix` either, so it is not sent: the suffix is inside
// the prompt). Streamed as newline-delimited JSON {"response":…,"done":false}; the last object has
// "done": true with durations in nanoseconds (https://github.com/ollama/ollama/blob/main/docs/api.md,
// "Generate a completion"; https://docs.ollama.com/api/usage).
import type { ServerReportedTimings } from '../telemetry/timings';
import { RemoteError } from './http-stream';
import { eventError, figure, ndjsonEvent } from './stream-events';
import { type BackendProtocol, expectString, type StreamPiece } from './streamed-backend';
import type { InfillRequest } from './text-backend';

const NS_PER_MS = 1e6;
const ms = (ns: unknown) => {
  const v = figure(ns);
  return v === undefined ? undefined : v / NS_PER_MS;
};

export class OllamaProtocol implements BackendProtocol {
  readonly kind = 'ollama';

  constructor(private readonly model: string) {}

  body(request: InfillRequest): Record<string, unknown> {
    return {
      model: this.model,
      prompt: request.prompt,
      raw: true,
      stream: true,
      options: { num_predict: request.maxTokens, temperature: request.temperature, top_p: request.topP },
    };
  }

  parse(line: string): StreamPiece | undefined {
    const event = ndjsonEvent(line);
    if (event === undefined) return undefined;
    const error = eventError(event);
    if (error) throw error;
    const text = expectString(event, 'response', 'Ollama');
    if (typeof event.done !== 'boolean') throw new RemoteError('sent an Ollama event whose "done" is not true or false', 'protocol');
    if (!event.done) return { text };
    const server: ServerReportedTimings = Object.fromEntries(
      Object.entries({
        promptMs: ms(event.prompt_eval_duration),
        promptTokens: figure(event.prompt_eval_count),
        predictedMs: ms(event.eval_duration),
        predictedTokens: figure(event.eval_count),
        totalMs: ms(event.total_duration),
      }).filter(([, v]) => v !== undefined),
    );
    return { text, done: true, ...(Object.keys(server).length ? { server } : {}) };
  }
}

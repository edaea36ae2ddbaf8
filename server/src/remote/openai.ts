// OpenAI-compatible text completions: POST /v1/completions (vLLM, TGI, LM Studio, llama-server).
// Kiln's FIM template goes into `prompt` (vLLM takes no `suffix`); streamed as server-sent events
// `data: {"choices":[{"text":…,"finish_reason":…}]}` ending with `data: [DONE]`
// (https://platform.openai.com/docs/api-reference/completions/create). llama-server adds its
// `timings` object to the stream; other servers report none.
import { RemoteError } from './http-stream';
import { llamaCppTimings } from './llamacpp';
import { sseEventOrThrow } from './stream-events';
import type { BackendProtocol, StreamPiece } from './streamed-backend';
import type { InfillRequest } from './text-backend';

export class OpenAiProtocol implements BackendProtocol {
  readonly kind = 'openai';

  constructor(private readonly model: string) {}

  body(request: InfillRequest): Record<string, unknown> {
    return {
      model: this.model,
      prompt: request.prompt,
      max_tokens: request.maxTokens,
      temperature: request.temperature,
      top_p: request.topP,
      stream: true,
    };
  }

  parse(line: string): StreamPiece | undefined {
    const event = sseEventOrThrow(line);
    if (event === undefined) return undefined;
    if (event === 'done') return { done: true };
    const choices = event.choices;
    if (!Array.isArray(choices)) throw new RemoteError('sent a completion event without a "choices" list', 'protocol');
    const choice = choices.find((c) => (c as { index?: unknown })?.index === 0 || choices.length === 1) as Record<string, unknown> | undefined;
    const server = llamaCppTimings(event.timings);
    if (!choice) return server ? { server } : {};
    if (typeof choice.text !== 'string') throw new RemoteError('sent a completion choice whose "text" is not a string', 'protocol');
    const finish = choice.finish_reason;
    if (finish !== null && finish !== undefined && typeof finish !== 'string') throw new RemoteError('sent a "finish_reason" that is not a string', 'protocol');
    // the [DONE] line follows the last choice; a finish_reason is the end of the text already
    return { text: choice.text, ...(typeof finish === 'string' ? { done: true } : {}), ...(server ? { server } : {}) };
  }
}

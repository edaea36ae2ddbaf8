// The two streaming formats the backends read: server-sent events (`data: {...}` lines, OpenAI and
// llama.cpp) and newline-delimited JSON (Ollama). Each event is parsed into a plain object here;
// the backend checks its fields.
import { RemoteError } from './http-stream';

/** An SSE line's event: its JSON object, 'done' for `data: [DONE]`, undefined for lines that carry none. */
export function sseEvent(line: string): Record<string, unknown> | 'done' | undefined {
  // llama-server sends a failure after the 200 headers as an `error:` field (its server_sent_event("error", …))
  if (line.startsWith('error:')) return { error: errorPayload(line.slice(6).trim()) };
  if (!line.startsWith('data:')) return undefined; // blank separators, `event:`, `id:`, `:` comments
  const data = line.slice(5).trimStart();
  if (data === '[DONE]') return 'done';
  return jsonObject(data);
}

/** One NDJSON line's object (blank lines carry none). */
export function ndjsonEvent(line: string): Record<string, unknown> | undefined {
  return line.trim() === '' ? undefined : jsonObject(line);
}

/** An `error:` field's JSON ({code, message, type}) or, when it is not JSON, its text. */
function errorPayload(text: string): unknown {
  try {
    return JSON.parse(text) ?? text;
  } catch {
    return text || 'an unnamed error';
  }
}

function jsonObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new RemoteError('sent malformed JSON in its stream', 'protocol');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RemoteError('sent a stream event that is not a JSON object', 'protocol');
  return value as Record<string, unknown>;
}

/** A stream event's `error` (servers report failures mid-stream this way) as a RemoteError, if any. */
export function eventError(event: Record<string, unknown>): RemoteError | undefined {
  const e = event.error;
  if (e === undefined || e === null) return undefined;
  const text = typeof e === 'string' ? e : typeof (e as { message?: unknown }).message === 'string' ? (e as { message: string }).message : JSON.stringify(e);
  return new RemoteError(`reported an error: ${text.slice(0, 200)}`, 'http');
}

/** A finite non-negative number, else undefined (server figures are optional and untrusted). */
export function figure(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** One SSE line read as sseEvent does, except that an event carrying an error throws it. */
export function sseEventOrThrow(line: string): Record<string, unknown> | 'done' | undefined {
  const event = sseEvent(line);
  if (event === undefined || event === 'done') return event;
  const error = eventError(event);
  if (error) throw error;
  return event;
}

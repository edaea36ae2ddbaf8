// One streamed HTTP POST to an inference server, with every bound a hostile or broken server needs:
// a deadline for the response headers, an idle timeout between body chunks, an overall deadline, caps
// on the body and on one line, bounded retries (only before any answer arrived), and an abort that
// closes the connection at once. TLS is Node's fetch default (certificates verified); nothing here
// can turn that off.
import { performance } from 'node:perf_hooks';

export type RemoteErrorKind = 'unreachable' | 'timeout' | 'http' | 'protocol';

/** A remote failure; `message` is written for the user and never carries the API key. */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly kind: RemoteErrorKind,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'RemoteError';
  }
}

export interface StreamLimits {
  /** From sending the request to the response headers (a server that accepts and never answers). */
  headersTimeoutMs: number;
  /** Longest silence between two body chunks. */
  idleTimeoutMs: number;
  /** The whole request, whatever the server does. */
  totalTimeoutMs: number;
  maxBodyBytes: number;
  maxLineBytes: number;
  /** Extra attempts after a refused or reset connection or a 502/503, before any byte of an answer. */
  retries: number;
  retryDelayMs: number;
}

export const DEFAULT_STREAM_LIMITS: Readonly<StreamLimits> = Object.freeze({
  headersTimeoutMs: 15_000,
  idleTimeoutMs: 10_000,
  totalTimeoutMs: 60_000,
  maxBodyBytes: 4 * 2 ** 20,
  maxLineBytes: 2 ** 20,
  retries: 1,
  retryDelayMs: 150,
});

export interface StreamRequest {
  url: URL;
  body: unknown;
  headers?: Record<string, string>;
  signal: AbortSignal;
  limits?: Partial<StreamLimits>;
  /** Called with each line of the body (without its line break); return false to stop reading. */
  onLine: (line: string) => boolean;
}

export interface StreamOutcome {
  /** The caller's onLine returned false: the connection was closed early on purpose. */
  stopped: boolean;
  ms: number;
  firstLineMs?: number;
}

/** Longest server error text kept in a message (a hostile server could send megabytes). */
const ERROR_TEXT_CHARS = 200;
const ERROR_BODY_BYTES = 64 * 1024;

/** Control characters out, length bounded: server text shown to the user. */
export function cleanServerText(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length > ERROR_TEXT_CHARS ? `${flat.slice(0, ERROR_TEXT_CHARS)}…` : flat;
}

/** The `error` an OpenAI-, llama.cpp- or Ollama-style error body carries, else the body's text. */
function errorText(body: string): string {
  try {
    const json = JSON.parse(body) as { error?: unknown; message?: unknown };
    const e = json.error;
    if (typeof e === 'string') return cleanServerText(e);
    if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') return cleanServerText((e as { message: string }).message);
    if (typeof json.message === 'string') return cleanServerText(json.message);
  } catch {
    // not JSON: the text itself
  }
  return cleanServerText(body);
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/** Posts `body` as JSON and feeds the streamed answer to `onLine`, retrying only what is safe to retry. */
export async function postStream(request: StreamRequest): Promise<StreamOutcome> {
  const limits = { ...DEFAULT_STREAM_LIMITS, ...request.limits };
  for (let attempt = 0; ; attempt++) {
    try {
      return await attemptStream(request, limits);
    } catch (err) {
      const retryable = err instanceof RemoteError && (err.kind === 'unreachable' || err.status === 502 || err.status === 503);
      if (!retryable || attempt >= limits.retries || request.signal.aborted) throw err;
      await sleep(limits.retryDelayMs * (attempt + 1), request.signal);
      if (request.signal.aborted) throw request.signal.reason;
    }
  }
}

async function attemptStream(request: StreamRequest, limits: StreamLimits): Promise<StreamOutcome> {
  const { signal } = request;
  if (signal.aborted) throw signal.reason;
  // Our own controller: the caller's abort, our timeouts and an early stop all end the same fetch,
  // and aborting a fetch closes its connection (the server sees the client go).
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const arm = (ms: number, what: string) => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new RemoteError(what, 'timeout')), ms);
  };
  const total = setTimeout(() => controller.abort(new RemoteError(`did not finish within ${limits.totalTimeoutMs / 1000} s`, 'timeout')), limits.totalTimeoutMs);
  const t0 = performance.now();
  try {
    arm(limits.headersTimeoutMs, `did not answer within ${limits.headersTimeoutMs / 1000} s`);
    let response: Response;
    try {
      response = await fetch(request.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream, application/x-ndjson, application/json', ...request.headers },
        body: JSON.stringify(request.body),
        signal: controller.signal,
        redirect: 'error', // a redirect could carry the key elsewhere
      });
    } catch (err) {
      throw failure(err, controller.signal, signal);
    }
    if (!response.ok) {
      const text = await readCapped(response, ERROR_BODY_BYTES).catch(() => '');
      const why = errorText(text);
      throw new RemoteError(`answered HTTP ${response.status}${why ? `: ${why}` : ''}`, 'http', response.status);
    }
    if (!response.body) throw new RemoteError('answered with an empty body', 'protocol');
    arm(limits.idleTimeoutMs, `sent nothing for ${limits.idleTimeoutMs / 1000} s`);
    const outcome = await readLines(response.body, request.onLine, limits, () => arm(limits.idleTimeoutMs, `sent nothing for ${limits.idleTimeoutMs / 1000} s`), t0).catch(
      (err: unknown) => {
        throw failure(err, controller.signal, signal);
      },
    );
    return { ...outcome, ms: performance.now() - t0 };
  } finally {
    clearTimeout(timer);
    clearTimeout(total);
    signal.removeEventListener('abort', onAbort);
    // after a complete body this does nothing; after a failure or a stop it closes the connection
    controller.abort();
  }
}

/** The caller's abort reason as is; our timeouts as they are; anything else as "unreachable". */
function failure(err: unknown, ours: AbortSignal, theirs: AbortSignal): unknown {
  if (theirs.aborted) return theirs.reason;
  if (ours.aborted && ours.reason instanceof RemoteError) return ours.reason;
  if (err instanceof RemoteError) return err;
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message ?? (err as Error).message;
  return new RemoteError(`is unreachable (${cleanServerText(String(detail))})`, 'unreachable');
}

async function readCapped(response: Response, maxBytes: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  try {
    while (bytes < maxBytes) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return text;
}

async function readLines(
  body: ReadableStream<Uint8Array>,
  onLine: (line: string) => boolean,
  limits: StreamLimits,
  rearm: () => void,
  t0: number,
): Promise<Omit<StreamOutcome, 'ms'>> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  let bytes = 0;
  let firstLineMs: number | undefined;
  const emit = (line: string): boolean => {
    firstLineMs ??= performance.now() - t0;
    return onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rearm();
      bytes += value.byteLength;
      if (bytes > limits.maxBodyBytes) throw new RemoteError(`sent more than ${limits.maxBodyBytes} bytes for one completion`, 'protocol');
      pending += decoder.decode(value, { stream: true });
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!emit(line)) return { stopped: true, firstLineMs };
        nl = pending.indexOf('\n');
      }
      if (pending.length > limits.maxLineBytes) throw new RemoteError(`sent a line longer than ${limits.maxLineBytes} bytes`, 'protocol');
    }
    pending += decoder.decode();
    if (pending.length > 0 && !emit(pending)) return { stopped: true, firstLineMs };
    return { stopped: false, firstLineMs };
  } finally {
    reader.releaseLock();
  }
}

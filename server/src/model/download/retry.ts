// Retries with exponential backoff for transient failures (5xx, 429, resets, stalls) and never for
// answers that will not change (401/403/404, bad bytes) or for the user's own cancellation.
import { HubError } from './hub';

export interface RetryOptions {
  /** Further attempts after the first (default 5). */
  retries?: number;
  /** The first backoff; each next one doubles (default 500 ms). */
  retryDelayMs?: number;
  signal?: AbortSignal;
  /** Told before each backoff, e.g. to log "retrying in 2 s". */
  onRetry?: (err: Error, attempt: number, delayMs: number) => void;
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

function codeOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = e?.code ?? e?.cause?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Worth another attempt: a transient HubError, or a connection dropped mid-request or mid-body. */
export function isTransient(err: unknown): boolean {
  if (err instanceof HubError) return err.kind === 'transient';
  if ((err as Error)?.name === 'AbortError') return false;
  if ((err as Error)?.name === 'TimeoutError') return true;
  const code = codeOf(err);
  if (code) return TRANSIENT_CODES.has(code);
  return err instanceof TypeError && /terminated|other side closed/i.test(err.message);
}

/** A network error as a sentence: undici's "fetch failed" says nothing without its cause. */
export function networkError(err: unknown, what: string): Error {
  if (err instanceof HubError || (err as Error)?.name === 'AbortError') return err as Error;
  const cause = (err as { cause?: { message?: string } }).cause;
  const code = codeOf(err);
  const detail = code ?? cause?.message ?? (err as Error)?.message ?? String(err);
  return new HubError(
    `${what}: ${(err as Error)?.message ?? 'network error'}${detail && detail !== (err as Error)?.message ? ` (${detail})` : ''}`,
    isTransient(err) ? 'transient' : 'http',
  );
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const done = () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `attempt` until it succeeds, fails for good, or runs out of retries. An attempt that made
 * progress (`progressed()` true afterwards, e.g. bytes were written) resets the count, so a long
 * download over a flaky link is not given up after a few resumed interruptions.
 */
export async function withRetries<T>(attempt: () => Promise<T>, options: RetryOptions, progressed: () => boolean = () => false): Promise<T> {
  const retries = options.retries ?? 5;
  const base = options.retryDelayMs ?? 500;
  let failures = 0;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason ?? err;
      if (!isTransient(err)) throw err;
      failures = progressed() ? 1 : failures + 1;
      if (failures > retries) throw retries > 0 && err instanceof HubError ? new HubError(`${err.message} (gave up after ${retries} retries)`, err.kind, err.status) : err;
      const delay = base * 2 ** (failures - 1) * (1 + Math.random() * 0.25);
      options.onRetry?.(err as Error, failures, delay);
      await sleep(delay, options.signal);
    }
  }
}

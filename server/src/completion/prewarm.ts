// Pre-warm: the prompt at a cursor the user just moved to (a document opened or focused, a click, a
// jump) is prefilled before the first keystroke asks for it, so that keystroke finds it in the prefix
// cache instead of waiting for a cold prefill. It is background work at every level: the scheduler
// aborts it when any request begins, and the runtime runs it only while no request's task waits, in
// small prefill chunks. A warm cut short still gives what it computed to the prefix cache, so the
// request that preempted it reuses that part. A newer warm replaces an older one.
import type { Generator } from '../runtime/generator';
import type { RequestScheduler } from './scheduler';

/** What one warm did: prompt tokens computed, those the cache already held, and whether it was preempted. */
export interface WarmOutcome {
  computed: number;
  reused: number;
  /** Cut short (a request began, a newer warm replaced it): its computed part was still pooled. */
  preempted: boolean;
}

/** What the warmer needs of the runtime: slots, and a look at the prefix cache that takes nothing. */
export type WarmGenerator = Pick<Generator, 'open' | 'extend' | 'release'> & { cachedPrefix(tokens: readonly number[]): number };

/**
 * Opens a slot on the longest cached prefix of `tokens`, prefills the rest at background priority and
 * gives the slot's KV to the prefix cache — also when `signal` aborts midway (then it rejects).
 */
export async function warmPrompt(gen: WarmGenerator, tokens: readonly number[], signal: AbortSignal): Promise<Omit<WarmOutcome, 'preempted'>> {
  const task = { signal, priority: 'background' } as const;
  const { slot, reused } = await gen.open(tokens, task);
  try {
    // all but the last token cached: the request computes that one itself, as it would anyway
    if (reused >= tokens.length - 1) return { computed: 0, reused };
    await gen.extend(slot, tokens.slice(reused), task);
    return { computed: tokens.length - reused, reused };
  } finally {
    gen.release(slot, { keep: true });
  }
}

/** Counters over every warm since the engine started (what kiln/stats reports). */
export interface PrewarmCounters {
  /** Warms started (a prompt the cache already held is not one). */
  started: number;
  /** Of them, those that prefilled their whole prompt. */
  finished: number;
  /** Those a request (or a newer warm) cut short. */
  preempted: number;
  /** Prompt tokens computed by finished warms. */
  tokens: number;
}

export class Prewarmer {
  private current: AbortController | undefined;
  readonly counters: PrewarmCounters = { started: 0, finished: 0, preempted: 0, tokens: 0 };

  constructor(
    private readonly gen: WarmGenerator,
    private readonly scheduler: RequestScheduler,
  ) {}

  /**
   * Prefills `tokens` (the prompt a request at the cursor of `uri` would build) in the background,
   * unless the prefix cache already holds all of it but the last token. Replaces any earlier warm.
   * Resolves when the warm ended, however it ended; it never rejects.
   */
  warm(uri: string, tokens: readonly number[]): Promise<WarmOutcome> {
    this.cancel();
    const cached = this.gen.cachedPrefix(tokens);
    if (tokens.length === 0 || cached >= tokens.length - 1) return Promise.resolve({ computed: 0, reused: cached, preempted: false });
    const controller = new AbortController();
    this.current = controller;
    this.counters.started++;
    return this.scheduler
      .run(uri, (signal) => warmPrompt(this.gen, tokens, signal), { priority: 'background', external: controller.signal })
      .then(
        (done) => {
          this.counters.finished++;
          this.counters.tokens += done.computed;
          return { ...done, preempted: false };
        },
        () => {
          this.counters.preempted++; // yielded, replaced, or the model swapped
          return { computed: 0, reused: cached, preempted: true };
        },
      )
      .finally(() => {
        if (this.current === controller) this.current = undefined;
      });
  }

  /** Stops the running warm (what it computed so far stays pooled). */
  cancel(): void {
    this.current?.abort();
    this.current = undefined;
  }
}

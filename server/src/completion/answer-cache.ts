// A small LRU of recent answers keyed by document and prompt tokens: a repeated request (cursor
// moved away and back, an undo) or a speculated one is answered without the model.
import { createHash } from 'node:crypto';
import type { CompletionSource } from '../telemetry/timings';

export interface CachedAnswer {
  items: string[];
  /** How a hit is reported: a repeat of a computed answer, or a speculated one. */
  source: CompletionSource;
}

export class AnswerCache {
  private readonly entries = new Map<string, CachedAnswer>();

  constructor(private readonly capacity = 64) {}

  /** Everything an answer depends on: the prompt tokens and the bytes token healing forces after them. */
  static key(uri: string, prompt: { tokens: readonly number[]; forcedBytes: Uint8Array }, mode: string): string {
    const hash = createHash('sha1').update(uri).update('\0').update(mode).update('\0');
    return hash.update(`${prompt.forcedBytes.length}\0`).update(prompt.forcedBytes).update(Int32Array.from(prompt.tokens)).digest('hex');
  }

  get(key: string): CachedAnswer | undefined {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key); // re-insert: Map order is the LRU order
      this.entries.set(key, hit);
    }
    return hit;
  }

  set(key: string, answer: CachedAnswer): void {
    this.entries.delete(key);
    this.entries.set(key, answer);
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }

  clear(): void {
    this.entries.clear();
  }
}

// A pool of single-sequence KV states under a byte budget. A request takes the state sharing the
// longest token prefix with its prompt (across documents and requests), prefills only the rest, and
// gives the state back after generation; the least recently used states go when over budget.
//
// Ownership: a state is either in the pool or handed out, never both. `acquire` removes the state it
// hands out (or hands out a copy), so the caller may append to it freely; `release` gives it back.
//
// Cost: `acquire` and `release` compare the request against every pooled state, O(total tokens in
// the pool). The byte budget keeps that to a handful of states, where this is microseconds next to
// one forward step; a pool of hundreds of states would want a token trie instead.
import type { KvState } from './kv-state';
import { commonPrefixLength } from './prefix';

export interface KvPoolOptions {
  /** Bytes the pooled states may hold together (capacity bytes, as `KvState.bytes` counts them). */
  budgetBytes: number;
  /** An empty single-sequence state, for a request that matches nothing. */
  newState: () => KvState;
  /** Called with the bytes of every state the pool lets go of (evicted, superseded, cleared). */
  onEvict?: (bytes: number) => void;
  /** Registers a copy made by the pool for memory accounting (e.g. `DecoderSession.track`). */
  track?: (state: KvState) => KvState;
}

export interface KvAcquired {
  /** The caller's own state, holding the KV of `tokens.slice(0, reused)`. */
  state: KvState;
  /** Leading tokens already computed; the caller prefills `tokens.slice(reused)` (never empty). */
  reused: number;
}

export interface KvPoolStats {
  hits: number;
  misses: number;
  /** Sum of `reused` over all acquires. */
  reusedTokens: number;
  /** Sum of `tokens.length` over all acquires. */
  requestedTokens: number;
  /** States dropped to stay under the budget, including states larger than the whole budget. */
  evictions: number;
  /** States dropped on release because another pooled state extends them (or equals them). */
  superseded: number;
  /** Hits served by a copy of the prefix, leaving the original pooled. */
  copies: number;
}

interface Entry {
  state: KvState;
}

export class KvPool {
  /** Pooled states, least recently used first. */
  private entries: Entry[] = [];
  private readonly counters: KvPoolStats = { hits: 0, misses: 0, reusedTokens: 0, requestedTokens: 0, evictions: 0, superseded: 0, copies: 0 };

  constructor(private readonly options: KvPoolOptions) {
    if (!(options.budgetBytes >= 0)) throw new RangeError(`KV pool budget must be >= 0 bytes, got ${options.budgetBytes}`);
  }

  /** Bytes held by the pooled states. */
  get bytes(): number {
    return this.entries.reduce((sum, e) => sum + e.state.bytes, 0);
  }

  /** Number of pooled states. */
  get size(): number {
    return this.entries.length;
  }

  stats(): KvPoolStats {
    return { ...this.counters };
  }

  /**
   * A state holding the longest reusable prefix of `tokens` found in the pool (ties go to the most
   * recently used state). Reuse is capped at `tokens.length - 1`: the caller must compute at least
   * one token to get logits, so a state equal to or extending past the request is cut back to that.
   *
   * Take or copy: the matched state is taken out of the pool and truncated in place (no copy) when
   *  - the reused prefix is at least half of that state's tokens (little of value is lost), or
   *  - the state is about to be evicted anyway: giving back a state of its size would push the pool
   *    over budget far enough to evict it (it is the LRU state, or every older state is too small).
   * Otherwise the prefix is copied (`slice`) and the original stays pooled at its old recency: its
   * unshared tail is still worth keeping for the request it came from.
   * With no match the caller gets a fresh state and `reused` 0.
   */
  /** How many leading tokens of `tokens` an acquire would reuse now (at most `tokens.length - 1`), without acquiring. */
  peek(tokens: readonly number[]): number {
    const limit = Math.max(0, tokens.length - 1);
    let best = 0;
    for (const entry of this.entries) best = Math.max(best, Math.min(commonPrefixLength(entry.state.tokens(), tokens), limit));
    return best;
  }

  acquire(tokens: readonly number[]): KvAcquired {
    this.counters.requestedTokens += tokens.length;
    const limit = Math.max(0, tokens.length - 1);
    let best = -1;
    let bestReused = 0;
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const reused = Math.min(commonPrefixLength(this.entries[i]!.state.tokens(), tokens), limit);
      if (reused > bestReused) {
        best = i;
        bestReused = reused;
      }
    }
    if (best < 0) {
      this.counters.misses++;
      return { state: this.options.newState(), reused: 0 };
    }
    this.counters.hits++;
    this.counters.reusedTokens += bestReused;
    const source = this.entries[best]!.state;
    if (2 * bestReused >= source.length || this.wouldBeEvicted(best, source.bytes)) {
      this.entries.splice(best, 1);
      source.truncate(bestReused);
      return { state: source, reused: bestReused };
    }
    this.counters.copies++;
    const copy = source.slice(bestReused);
    return { state: this.options.track ? this.options.track(copy) : copy, reused: bestReused };
  }

  /**
   * Gives a state back as the most recently used. A pooled state that this one extends (or equals)
   * is dropped, and this one is dropped if a pooled state extends it; then least recently used
   * states are evicted until the pool fits its budget. A state larger than the whole budget is
   * dropped on its own, without evicting the others.
   */
  release(state: KvState): void {
    if (state.batch !== 1) throw new Error(`KV pool holds single-sequence states, got batch ${state.batch}`);
    if (this.entries.some((e) => e.state === state)) throw new Error('KV state released twice to the pool');
    if (state.length === 0) {
      this.drop(state);
      return;
    }
    if (state.bytes > this.options.budgetBytes) {
      this.counters.evictions++;
      this.drop(state);
      return;
    }
    const tokens = state.tokens();
    const extending = this.entries.findIndex((e) => isPrefix(tokens, e.state.tokens()));
    if (extending >= 0) {
      // A pooled state already holds everything this one does: keep it, mark it used.
      const [kept] = this.entries.splice(extending, 1);
      this.entries.push(kept!);
      this.counters.superseded++;
      this.drop(state);
      return;
    }
    for (const e of this.entries.filter((e) => isPrefix(e.state.tokens(), tokens))) {
      this.remove(e);
      this.counters.superseded++;
    }
    this.entries.push({ state });
    this.evictToBudget();
  }

  private evictToBudget(): void {
    let total = this.bytes;
    while (total > this.options.budgetBytes && this.entries.length > 0) {
      const victim = this.entries[0]!;
      total -= victim.state.bytes;
      this.remove(victim);
      this.counters.evictions++;
    }
  }

  /** Changes the byte budget (a settings change); evicts least recently used states to fit. */
  setBudget(budgetBytes: number): void {
    if (!(budgetBytes >= 0)) throw new RangeError(`KV pool budget must be >= 0 bytes, got ${budgetBytes}`);
    this.options.budgetBytes = budgetBytes;
    this.evictToBudget();
  }

  /** Drops every pooled state (e.g. after an adapter swap: their KV came from the old weights). */
  clear(): void {
    const dropped = this.entries;
    this.entries = [];
    for (const e of dropped) this.drop(e.state);
  }

  /** Whether giving back `incoming` bytes would evict the entry at `index` (LRU order). */
  private wouldBeEvicted(index: number, incoming: number): boolean {
    let over = this.bytes + incoming - this.options.budgetBytes;
    for (let i = 0; i < index && over > 0; i++) over -= this.entries[i]!.state.bytes;
    return over > 0;
  }

  private remove(entry: Entry): void {
    this.entries.splice(this.entries.indexOf(entry), 1);
    this.drop(entry.state);
  }

  private drop(state: KvState): void {
    this.options.onEvict?.(state.bytes);
  }
}

/** Whether `a` is a prefix of `b` (or equal to it). */
function isPrefix(a: readonly number[], b: readonly number[]): boolean {
  return a.length <= b.length && commonPrefixLength(a, b) === a.length;
}

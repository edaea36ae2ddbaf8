// The interface the completion engine generates through: slots that hold a sequence's KV, prompt
// tokens computed onto a slot, and decode steps over many slots at once. The local inference server
// implements it over an ORT session; a remote backend can implement it over the network. Sampling,
// stop rules and healing stay with the caller: a step returns logits, the caller picks the token.

export type TaskPriority = 'foreground' | 'background';

/** A sequence whose KV the generator holds. Only the generator that opened it may use it. */
export interface Slot {
  readonly id: number;
  /** Token ids whose KV the slot holds, in order. */
  readonly tokens: readonly number[];
}

export interface TaskOptions {
  /** Aborting drops the task if queued and rejects it (with the signal's reason) at the next step. */
  signal?: AbortSignal;
  /** Background work (speculation) runs only while no foreground task waits. */
  priority?: TaskPriority;
}

export interface OpenedSlot {
  slot: Slot;
  /** Leading tokens of the request whose KV was reused (the caller extends with the rest). */
  reused: number;
}

export interface Generator {
  readonly vocabSize: number;
  /** A slot holding the longest cached prefix of `tokens` (at most `tokens.length - 1` of them). */
  open(tokens: readonly number[], options?: TaskOptions): Promise<OpenedSlot>;
  /** A new slot with a copy of `slot`'s KV (candidates sharing one prompt). */
  fork(slot: Slot, options?: TaskOptions): Promise<Slot>;
  /** Computes `tokens` onto the slot (a prefill, in chunks); resolves to the logits [V] after the last. */
  extend(slot: Slot, tokens: readonly number[], options?: TaskOptions): Promise<Float32Array>;
  /**
   * One decode step: feeds `tokens[i]` to `slots[i]` and resolves to each slot's next-token logits
   * [V]. Steps of every caller that are due together run as one batched forward.
   */
  step(slots: readonly Slot[], tokens: readonly number[], options?: TaskOptions): Promise<Float32Array[]>;
  /**
   * Computes `tokens` onto the slot in one forward and resolves to the logits after each of them,
   * [tokens.length][V]: a drafted continuation checked at every position at once (lookup decoding).
   */
  verify(slot: Slot, tokens: readonly number[], options?: TaskOptions): Promise<Float32Array[]>;
  /** Drops the slot's positions from `length` on (rejected draft tokens); the slot must be idle. */
  truncate(slot: Slot, length: number): void;
  /** Ends the slot; `keep` gives its KV to the prefix cache for later requests. */
  release(slot: Slot, options?: { keep?: boolean }): void;
}

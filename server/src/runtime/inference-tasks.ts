// The inference server's work as data: what each queued task asks for and how it is settled.
// The loop in inference-server.ts picks tasks from a queue; nothing here runs the model.
import type { KvState } from '../kvcache/kv-state';
import type { Slot, TaskPriority } from './generator';

/** A slot as the server sees it: its KV state and the model generation it was computed with. */
export interface SlotRecord extends Slot {
  readonly id: number;
  state: KvState;
  /** The weights generation the KV came from; a swap makes older slots stale. */
  readonly modelGeneration: number;
  released: boolean;
  /** Whether a decode or prefill task of this slot is queued or running. */
  busy: boolean;
}

interface Settled<T> {
  priority: TaskPriority;
  signal: AbortSignal | undefined;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
}

/** Computes `tokens` onto a slot, `chunk` tokens per run; `done` counts tokens already computed. */
export interface PrefillTask extends Settled<Float32Array> {
  kind: 'prefill';
  slot: SlotRecord;
  tokens: readonly number[];
  done: number;
}

/** Computes a draft onto a slot in one run (never chunked: drafts are short), logits at every position. */
export interface VerifyTask extends Settled<Float32Array[]> {
  kind: 'verify';
  slot: SlotRecord;
  tokens: readonly number[];
}

/** Feeds one token to a slot; decode tasks due together run as one batched forward. */
export interface DecodeTask extends Settled<Float32Array> {
  kind: 'decode';
  slot: SlotRecord;
  token: number;
}

/** Takes a slot from the prefix cache (or a fresh one) for `tokens`. */
export interface OpenTask extends Settled<{ slot: SlotRecord; reused: number }> {
  kind: 'open';
  tokens: readonly number[];
  /** The weights the tokens were chosen for: a swap before the task runs rejects it. */
  modelGeneration: number;
}

/** Copies a slot's KV into a new slot. */
export interface ForkTask extends Settled<SlotRecord> {
  kind: 'fork';
  slot: SlotRecord;
}

export type QueuedTask = PrefillTask | VerifyTask | DecodeTask | OpenTask | ForkTask;

/** Work applied between two steps, never during one: slot drops and weight swaps. */
export type BoundaryTask = { kind: 'drop'; slot: SlotRecord; keep: boolean } | { kind: 'swap'; apply: () => void; resolve: () => void };

// Packed sequences into batches for the trainer: fixed order (the dataset already shuffled them),
// cycling over the training set for as many steps as the run needs.
import type { PackedSequence } from '../dataset/pack';
import type { Batch } from './trainer-session';

export function toBatch(sequences: readonly PackedSequence[]): Batch {
  return { inputIds: sequences.map((s) => s.inputIds), labels: sequences.map((s) => s.labels) };
}

/** Batches of `size` sequences; the last partial batch is kept. */
export function batchesOf(sequences: readonly PackedSequence[], size: number): Batch[] {
  const out: Batch[] = [];
  for (let i = 0; i < sequences.length; i += size) out.push(toBatch(sequences.slice(i, i + size)));
  return out;
}

/** The micro-batches of optimizer step `step` (0-based), cycling over the training sequences. */
export function stepMicroBatches(train: readonly PackedSequence[], step: number, batchSize: number, accumulation: number): Batch[] {
  const perStep = batchSize * accumulation;
  const out: Batch[] = [];
  for (let k = 0; k < accumulation; k++) {
    const rows: PackedSequence[] = [];
    for (let i = 0; i < batchSize; i++) rows.push(train[(step * perStep + k * batchSize + i) % train.length]!);
    out.push(toBatch(rows));
  }
  return out;
}

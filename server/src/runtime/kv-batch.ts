// The padded past of several single-sequence KV states decoded together, in the decoder's layout
// (kvcache/kv-layout.ts): per layer keys [N, H, D, capacity] and values [N, H, capacity, D], row b's
// first lengths[b] positions valid (right padding, masked by the graph's `past_lengths`). Gathered
// once when the set of slots changes, then every step appends only the new positions, so a batched
// step hands ORT its past without copying the caches again.
import type { RowsInput } from './decoder-session';
import { allocateKv, copyPositions, type KvBuffers, type KvGeometry, paddedCapacity, writePositions } from '../kvcache/kv-layout';
import type { KvShape, KvState } from '../kvcache/kv-state';

/** Positions of room for later steps, and the granularity of the capacity: few distinct input shapes (ORT plans memory per shape), a regather at most every GRANULE steps, and bounded padding for every step to compute over. */
const HEADROOM = 16;
const GRANULE = 64;

export class KvBatch {
  private readonly layers: KvBuffers[];
  private readonly lengths: number[];
  /** Each member's revision when its rows were last copied here: any other change means regather. */
  private readonly revisions: number[];
  private readonly geometry: KvGeometry;

  private constructor(
    private readonly shape: KvShape,
    readonly members: readonly KvState[],
  ) {
    const longest = Math.max(...members.map((m) => m.length));
    this.geometry = { heads: shape.heads, headDim: shape.kvDim / shape.heads, capacity: paddedCapacity(longest, HEADROOM, GRANULE) };
    this.layers = Array.from({ length: shape.numLayers }, () => allocateKv(members.length, this.geometry));
    this.lengths = members.map((m) => m.length);
    this.revisions = members.map((m) => m.revision);
    for (let l = 0; l < shape.numLayers; l++) {
      for (const [b, m] of members.entries())
        copyPositions({ buffers: m.past(l), geometry: m.geometry, row: 0 }, { buffers: this.layers[l]!, geometry: this.geometry, row: b }, m.length);
    }
  }

  /** A batch over `members` (all single-sequence states), reusing `previous` when still current. */
  static for(members: readonly KvState[], previous: KvBatch | undefined, newRows = 1): KvBatch {
    if (previous?.serves(members, newRows)) return previous;
    return new KvBatch(members[0]!.shape, members);
  }

  get capacity(): number {
    return this.geometry.capacity;
  }

  /** Bytes held by the padded buffers. */
  get bytes(): number {
    return 2 * this.shape.numLayers * this.members.length * this.capacity * this.shape.kvDim * 4;
  }

  /** Same members in the same order, untouched since, with room for `newRows` more each. */
  private serves(members: readonly KvState[], newRows: number): boolean {
    if (members.length !== this.members.length) return false;
    return members.every((m, b) => m === this.members[b] && m.revision === this.revisions[b] && this.lengths[b]! + newRows <= this.capacity);
  }

  /** The run input for one step of `tokens` ([N][S]) on top of the batch. */
  input(tokens: readonly (readonly number[])[]): RowsInput {
    return { past: this.layers, paddedLength: this.capacity, pastLengths: [...this.lengths], tokens, wanted: 'last' };
  }

  /** Appends each row's new positions ([N, S, kvDim] per layer) here and to its own state. */
  append(tokens: readonly (readonly number[])[], newKeys: Float32Array[], newValues: Float32Array[]): void {
    const kvDim = this.shape.kvDim;
    this.members.forEach((m, b) => {
      const S = tokens[b]!.length;
      const rows = (all: Float32Array) => all.subarray(b * S * kvDim, (b + 1) * S * kvDim); // [S, kvDim]
      for (let l = 0; l < this.shape.numLayers; l++) writePositions(this.layers[l]!, this.geometry, b, this.lengths[b]!, rows(newKeys[l]!), rows(newValues[l]!));
      m.append([tokens[b] as number[]], newKeys.map(rows), newValues.map(rows));
      this.lengths[b]! += S;
      this.revisions[b] = m.revision;
    });
  }
}

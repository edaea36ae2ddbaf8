// The padded past of several single-sequence KV states decoded together: keys[l] is
// [N, capacity, kvDim] with row b's first lengths[b] positions valid (right padding, masked by the
// graph's `past_lengths`). Gathered once when the set of slots changes, then every step appends only
// the new rows, so a batched step hands ORT its past without copying the caches again.
import type { RowsInput } from './decoder-session';
import type { KvShape, KvState } from '../kvcache/kv-state';

/** Rows of room for later steps, and the granularity of the capacity: few distinct input shapes (ORT plans memory per shape) and a regather at most every GRANULE steps. */
const HEADROOM = 16;
const GRANULE = 64;

export class KvBatch {
  private readonly keys: Float32Array[];
  private readonly values: Float32Array[];
  private readonly lengths: number[];
  /** Each member's revision when its rows were last copied here: any other change means regather. */
  private readonly revisions: number[];
  readonly capacity: number;

  private constructor(
    private readonly shape: KvShape,
    readonly members: readonly KvState[],
  ) {
    const longest = Math.max(...members.map((m) => m.length));
    this.capacity = Math.ceil((longest + HEADROOM) / GRANULE) * GRANULE;
    const size = members.length * this.capacity * shape.kvDim;
    this.keys = Array.from({ length: shape.numLayers }, () => new Float32Array(size));
    this.values = Array.from({ length: shape.numLayers }, () => new Float32Array(size));
    this.lengths = members.map((m) => m.length);
    this.revisions = members.map((m) => m.revision);
    const stride = this.capacity * shape.kvDim;
    for (let l = 0; l < shape.numLayers; l++) {
      members.forEach((m, b) => {
        const past = m.past(l); // [1, length, kvDim], a view
        this.keys[l]!.set(past.key, b * stride);
        this.values[l]!.set(past.value, b * stride);
      });
    }
  }

  /** A batch over `members` (all single-sequence states), reusing `previous` when still current. */
  static for(members: readonly KvState[], previous: KvBatch | undefined, newRows = 1): KvBatch {
    if (previous?.serves(members, newRows)) return previous;
    return new KvBatch(members[0]!.shape, members);
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
    return {
      past: this.keys.map((key, l) => ({ key, value: this.values[l]! })), // [N, capacity, kvDim]
      paddedLength: this.capacity,
      pastLengths: [...this.lengths],
      tokens,
      wanted: 'last',
    };
  }

  /** Appends each row's new positions ([N, S, kvDim] per layer) here and to its own state. */
  append(tokens: readonly (readonly number[])[], newKeys: Float32Array[], newValues: Float32Array[]): void {
    const kvDim = this.shape.kvDim;
    const stride = this.capacity * kvDim;
    this.members.forEach((m, b) => {
      const S = tokens[b]!.length;
      const rows = (all: Float32Array) => all.subarray(b * S * kvDim, (b + 1) * S * kvDim); // [S, kvDim]
      for (let l = 0; l < this.shape.numLayers; l++) {
        this.keys[l]!.set(rows(newKeys[l]!), b * stride + this.lengths[b]! * kvDim);
        this.values[l]!.set(rows(newValues[l]!), b * stride + this.lengths[b]! * kvDim);
      }
      m.append([tokens[b] as number[]], newKeys.map(rows), newValues.map(rows));
      this.lengths[b]! += S;
      this.revisions[b] = m.revision;
    });
  }
}

// A KV cache for one sequence (or B sequences decoded together), per layer in the layouts the
// decoder's attention reads (kv-layout.ts): keys [B, H, D, capacity], values [B, H, capacity, D].
// The first `length` positions of each row are valid; the graph masks the rest (`past_lengths`), so
// the whole buffer is handed to ORT as the past without a copy and a step appends only new positions.
// Capacity grows in steps of GRANULE positions, so the padding a step computes over stays bounded.
import { allocateKv, copyPositions, type KvBuffers, type KvGeometry, paddedCapacity, readPositions, writePositions } from './kv-layout';

export interface KvShape {
  numLayers: number;
  /** KV heads: a position's kvDim values are `heads` heads of kvDim / heads. */
  heads: number;
  kvDim: number; // Hkv * D
}

const GRANULE = 64;
/** Positions of room a growth leaves for the steps after it. */
const HEADROOM = 16;

export class KvState {
  /** Token ids whose keys and values each batch row holds, in order. */
  private readonly rows: number[][];
  private layers: KvBuffers[];
  private cap: number;
  private changes = 0;

  constructor(
    readonly shape: KvShape,
    readonly batch = 1,
    capacity = GRANULE,
  ) {
    if (!(shape.heads >= 1 && shape.kvDim % shape.heads === 0)) throw new Error(`KV shape: ${shape.kvDim} values per position do not split into ${shape.heads} heads`);
    this.cap = paddedCapacity(Math.max(1, capacity), 0, GRANULE);
    this.rows = Array.from({ length: batch }, () => []);
    this.layers = Array.from({ length: shape.numLayers }, () => allocateKv(batch, this.geometry));
  }

  /** Heads, head size and capacity of every layer's buffers. */
  get geometry(): KvGeometry {
    return { heads: this.shape.heads, headDim: this.shape.kvDim / this.shape.heads, capacity: this.cap };
  }

  /** Counts appends and truncations: a copy made at revision r is current while this is still r. */
  get revision(): number {
    return this.changes;
  }

  get length(): number {
    return this.rows[0]!.length;
  }

  /** Tokens held by row `b` (row 0 for a single sequence). */
  tokens(b = 0): readonly number[] {
    return this.rows[b]!;
  }

  get capacity(): number {
    return this.cap;
  }

  /** Bytes held by the buffers (capacity, not just the valid rows). */
  get bytes(): number {
    return 2 * this.shape.numLayers * this.batch * this.cap * this.shape.kvDim * 4;
  }

  /** Positions per row that `past` hands over: the capacity (the graph masks each row's padding), or none while empty. */
  get paddedLength(): number {
    return this.length === 0 ? 0 : this.cap;
  }

  /**
   * The past of layer `l`, keys [B, H, D, paddedLength] and values [B, H, paddedLength, D], the
   * buffers themselves (no copy): each row's first `length` positions are valid, the rest is padding.
   * An empty state hands over no positions, so a first prefill computes over no padding.
   */
  past(l: number): KvBuffers {
    const buffers = this.layers[l]!;
    return this.length === 0 ? { key: buffers.key.subarray(0, 0), value: buffers.value.subarray(0, 0) } : buffers;
  }

  /** Row b's valid positions of layer `l` as position-major copies [length, kvDim] (for checks and exports). */
  positions(l: number, b = 0): KvBuffers {
    return readPositions(this.layers[l]!, this.geometry, b, this.length);
  }

  /** Appends S new positions to every layer; `tokens` is [B][S], `newKeys[l]` is [B, S, kvDim]. */
  append(tokens: number[][], newKeys: Float32Array[], newValues: Float32Array[]): void {
    const S = tokens[0]!.length;
    if (tokens.length !== this.batch || tokens.some((t) => t.length !== S)) throw new Error(`append needs ${this.batch} rows of equal length`);
    const kvDim = this.shape.kvDim;
    this.reserve(this.length + S);
    const geometry = this.geometry;
    for (let l = 0; l < this.shape.numLayers; l++) {
      for (let b = 0; b < this.batch; b++) {
        const rows = (all: Float32Array) => all.subarray(b * S * kvDim, (b + 1) * S * kvDim);
        writePositions(this.layers[l]!, geometry, b, this.length, rows(newKeys[l]!), rows(newValues[l]!));
      }
    }
    for (const [b, t] of tokens.entries()) this.rows[b]!.push(...t);
    this.changes++;
  }

  /** Grows the buffers to hold `positions` (in steps of GRANULE with headroom: each growth copies the cache once). */
  reserve(positions: number): void {
    if (positions > this.cap) this.resize(paddedCapacity(positions, HEADROOM, GRANULE));
  }

  /** Moves the valid positions into buffers of `capacity` positions per row. */
  private resize(capacity: number): void {
    const from = this.geometry;
    this.cap = capacity;
    const to = this.geometry;
    this.layers = this.layers.map((old) => {
      const next = allocateKv(this.batch, to);
      for (let b = 0; b < this.batch; b++) copyPositions({ buffers: old, geometry: from, row: b }, { buffers: next, geometry: to, row: b }, this.length);
      return next;
    });
  }

  /** Drops every position from `k` on, in place (no copy unless the capacity shrinks). */
  truncate(k: number): void {
    if (k < 0 || k > this.length) throw new RangeError(`cannot truncate a ${this.length}-position KV state to ${k}`);
    for (const r of this.rows) r.length = k;
    // Every step computes over the whole capacity: a state cut far below it (a pooled prefix) shrinks, copying its k positions.
    const fitted = paddedCapacity(k, HEADROOM, GRANULE);
    if (fitted < this.cap) this.resize(fitted);
    this.changes++;
  }

  /** A new, independent state holding copies of the first `k` positions. */
  slice(k: number): KvState {
    if (k < 0 || k > this.length) throw new RangeError(`cannot slice ${k} positions from a ${this.length}-position KV state`);
    const out = new KvState(this.shape, this.batch, paddedCapacity(k, HEADROOM, GRANULE));
    for (let l = 0; l < this.shape.numLayers; l++) {
      for (let b = 0; b < this.batch; b++)
        copyPositions({ buffers: this.layers[l]!, geometry: this.geometry, row: b }, { buffers: out.layers[l]!, geometry: out.geometry, row: b }, k);
    }
    for (const [b, r] of this.rows.entries()) out.rows[b]!.push(...r.slice(0, k));
    return out;
  }

  /** A B-row state whose every row is a copy of this single-row state (candidates sharing a prompt). */
  broadcast(batch: number): KvState {
    if (this.batch !== 1) throw new Error('only a single-row KV state can be broadcast');
    const out = new KvState(this.shape, batch, paddedCapacity(this.length, HEADROOM, GRANULE));
    for (let l = 0; l < this.shape.numLayers; l++) {
      for (let b = 0; b < batch; b++)
        copyPositions({ buffers: this.layers[l]!, geometry: this.geometry, row: 0 }, { buffers: out.layers[l]!, geometry: out.geometry, row: b }, this.length);
    }
    for (const r of out.rows) r.push(...this.rows[0]!);
    return out;
  }
}

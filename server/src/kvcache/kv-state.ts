// A KV cache for one sequence (or B sequences decoded together), stored position-major per layer:
// keys[l] is [B, capacity, Hkv*D]. The first `length` rows are valid. Position-major storage is what
// lets a B=1 state hand ORT its past as a zero-copy view and append only the new rows after a step.

export interface KvShape {
  numLayers: number;
  kvDim: number; // Hkv * D
}

const MIN_CAPACITY = 64;

export class KvState {
  /** Token ids whose keys and values each batch row holds, in order. */
  private readonly rows: number[][];
  private keys: Float32Array[];
  private values: Float32Array[];
  private cap: number;
  private changes = 0;

  constructor(
    readonly shape: KvShape,
    readonly batch = 1,
    capacity = MIN_CAPACITY,
  ) {
    this.cap = Math.max(1, capacity);
    this.rows = Array.from({ length: batch }, () => []);
    const size = this.batch * this.cap * shape.kvDim;
    this.keys = Array.from({ length: shape.numLayers }, () => new Float32Array(size));
    this.values = Array.from({ length: shape.numLayers }, () => new Float32Array(size));
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

  /** Rows per sequence that `past` hands over: `length` for B=1, the capacity for B>1 (padded). */
  get paddedLength(): number {
    return this.batch === 1 ? this.length : this.cap;
  }

  /**
   * The past of layer `l` as [B, paddedLength, kvDim] data, always a view (no copy): for B=1 the
   * first `length` rows; for B>1 the whole buffer, each row's first `length` positions valid and
   * the rest padding the graph masks (`past_lengths`).
   */
  past(l: number): { key: Float32Array; value: Float32Array } {
    const n = this.batch * this.paddedLength * this.shape.kvDim;
    return { key: this.keys[l]!.subarray(0, n), value: this.values[l]!.subarray(0, n) };
  }

  /** Appends S new positions to every layer; `tokens` is [B][S], `newKeys[l]` is [B, S, kvDim]. */
  append(tokens: number[][], newKeys: Float32Array[], newValues: Float32Array[]): void {
    const S = tokens[0]!.length;
    if (tokens.length !== this.batch || tokens.some((t) => t.length !== S)) throw new Error(`append needs ${this.batch} rows of equal length`);
    const kvDim = this.shape.kvDim;
    this.reserve(this.length + S);
    const stride = this.cap * kvDim;
    const at = this.length * kvDim;
    for (let l = 0; l < this.shape.numLayers; l++) {
      for (let b = 0; b < this.batch; b++) {
        const src = b * S * kvDim;
        this.keys[l]!.set(newKeys[l]!.subarray(src, src + S * kvDim), b * stride + at);
        this.values[l]!.set(newValues[l]!.subarray(src, src + S * kvDim), b * stride + at);
      }
    }
    tokens.forEach((t, b) => this.rows[b]!.push(...t));
    this.changes++;
  }

  /** Grows the buffers (doubling, so appends stay amortised O(new rows)). */
  reserve(positions: number): void {
    if (positions <= this.cap) return;
    let cap = Math.max(this.cap, MIN_CAPACITY);
    while (cap < positions) cap *= 2;
    const kvDim = this.shape.kvDim;
    const grow = (old: Float32Array) => {
      const next = new Float32Array(this.batch * cap * kvDim);
      for (let b = 0; b < this.batch; b++) {
        next.set(old.subarray(b * this.cap * kvDim, (b * this.cap + this.length) * kvDim), b * cap * kvDim);
      }
      return next;
    };
    this.keys = this.keys.map(grow);
    this.values = this.values.map(grow);
    this.cap = cap;
  }

  /** Drops every position from `k` on, in place (no copy). */
  truncate(k: number): void {
    if (k < 0 || k > this.length) throw new RangeError(`cannot truncate a ${this.length}-position KV state to ${k}`);
    for (const r of this.rows) r.length = k;
    this.changes++;
  }

  /** A new, independent state holding copies of the first `k` positions. */
  slice(k: number): KvState {
    if (k < 0 || k > this.length) throw new RangeError(`cannot slice ${k} positions from a ${this.length}-position KV state`);
    const out = new KvState(this.shape, this.batch, Math.max(k, MIN_CAPACITY));
    const kvDim = this.shape.kvDim;
    for (let l = 0; l < this.shape.numLayers; l++) {
      for (let b = 0; b < this.batch; b++) {
        const from = b * this.cap * kvDim;
        const to = b * out.cap * kvDim;
        out.keys[l]!.set(this.keys[l]!.subarray(from, from + k * kvDim), to);
        out.values[l]!.set(this.values[l]!.subarray(from, from + k * kvDim), to);
      }
    }
    this.rows.forEach((r, b) => out.rows[b]!.push(...r.slice(0, k)));
    return out;
  }

  /** A B-row state whose every row is a copy of this single-row state (candidates sharing a prompt). */
  broadcast(batch: number): KvState {
    if (this.batch !== 1) throw new Error('only a single-row KV state can be broadcast');
    const out = new KvState(this.shape, batch, Math.max(this.length, MIN_CAPACITY));
    const rows = this.length * this.shape.kvDim;
    for (let l = 0; l < this.shape.numLayers; l++) {
      for (let b = 0; b < batch; b++) {
        out.keys[l]!.set(this.keys[l]!.subarray(0, rows), b * out.cap * this.shape.kvDim);
        out.values[l]!.set(this.values[l]!.subarray(0, rows), b * out.cap * this.shape.kvDim);
      }
    }
    for (const r of out.rows) r.push(...this.rows[0]!);
    return out;
  }
}

// One layer's KV buffers in the layouts the decoder's attention reads: keys [B, H, D, capacity] and
// values [B, H, capacity, D] (H = KV heads, D = head size). The graph then multiplies by the cache
// as it is, instead of transposing every slot's padded past in every layer on every step. The model
// returns new positions position-major, [S, H*D] per row; these helpers scatter them into place and
// copy valid prefixes between buffers of different capacities.

export interface KvGeometry {
  heads: number;
  headDim: number;
  /** Positions each batch row has room for (the P the graph sees). */
  capacity: number;
}

/** One layer's buffers of B rows: keys [B,H,D,capacity], values [B,H,capacity,D]. */
export interface KvBuffers {
  key: Float32Array;
  value: Float32Array;
}

export function allocateKv(batch: number, g: KvGeometry): KvBuffers {
  const size = batch * g.heads * g.headDim * g.capacity;
  return { key: new Float32Array(size), value: new Float32Array(size) };
}

/** Positions scattered together into the keys' transposed layout. */
const KEY_TILE = 16;

/** Writes row b's new positions `newKey`/`newValue` ([S, H*D], position-major) at positions at..at+S-1. */
export function writePositions(into: KvBuffers, g: KvGeometry, b: number, at: number, newKey: Float32Array, newValue: Float32Array): void {
  const { heads: H, headDim: D, capacity: C } = g;
  const S = newKey.length / (H * D);
  const { key, value } = into;
  const stride = H * D;
  for (let h = 0; h < H; h++) {
    const valueRow = ((b * H + h) * C + at) * D; // values[b,h,at,0]
    for (let s = 0; s < S; s++) {
      const src = s * stride + h * D;
      value.set(newValue.subarray(src, src + D), valueRow + s * D);
    }
    // keys[b,h,d,at..at+S-1] are contiguous; a tile of positions keeps the rows read in cache
    for (let s0 = 0; s0 < S; s0 += KEY_TILE) {
      const s1 = Math.min(S, s0 + KEY_TILE);
      for (let d = 0; d < D; d++) {
        const keyRow = ((b * H + h) * D + d) * C + at;
        for (let s = s0, src = s0 * stride + h * D + d; s < s1; s++, src += stride) key[keyRow + s] = newKey[src]!;
      }
    }
  }
}

/** Copies the first `count` positions of row `fromRow` of `from` to row `toRow` of `to` (capacities may differ). */
export function copyPositions(from: { buffers: KvBuffers; geometry: KvGeometry; row: number }, to: { buffers: KvBuffers; geometry: KvGeometry; row: number }, count: number): void {
  const { heads: H, headDim: D } = from.geometry;
  const Cf = from.geometry.capacity;
  const Ct = to.geometry.capacity;
  for (let h = 0; h < H; h++) {
    for (let d = 0; d < D; d++) {
      const src = ((from.row * H + h) * D + d) * Cf;
      to.buffers.key.set(from.buffers.key.subarray(src, src + count), ((to.row * H + h) * D + d) * Ct);
    }
    const src = (from.row * H + h) * Cf * D;
    to.buffers.value.set(from.buffers.value.subarray(src, src + count * D), (to.row * H + h) * Ct * D);
  }
}

/** Row b's first `count` positions as position-major copies [count, H*D] (for checks and exports). */
export function readPositions(from: KvBuffers, g: KvGeometry, b: number, count: number): KvBuffers {
  const { heads: H, headDim: D, capacity: C } = g;
  const key = new Float32Array(count * H * D);
  const value = new Float32Array(count * H * D);
  for (let h = 0; h < H; h++) {
    for (let p = 0; p < count; p++) {
      const dst = (p * H + h) * D;
      value.set(from.value.subarray(((b * H + h) * C + p) * D, ((b * H + h) * C + p + 1) * D), dst);
      for (let d = 0; d < D; d++) key[dst + d] = from.key[((b * H + h) * D + d) * C + p]!;
    }
  }
  return { key, value };
}

/** Capacity for `positions` with `headroom` more, in steps of `granule`: few distinct shapes, bounded padding. */
export function paddedCapacity(positions: number, headroom: number, granule: number): number {
  return Math.max(granule, Math.ceil((positions + headroom) / granule) * granule);
}

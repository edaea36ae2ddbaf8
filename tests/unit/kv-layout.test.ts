// The KV buffers in the decoder's layouts (keys [B,H,D,capacity], values [B,H,capacity,D]): new
// positions arrive position-major and must land where attention reads them, and copies between
// capacities (growth, slices, batches) must keep every valid position of every head.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allocateKv, copyPositions, paddedCapacity, readPositions, writePositions } from '../../server/src/kvcache/kv-layout';
import { KvState } from '../../server/src/kvcache/kv-state';

const H = 2;
const D = 3;
/** A distinct value for (row, position, head, element); values are its negation. */
const keyOf = (b: number, p: number, h: number, d: number) => b * 1e4 + p * 100 + h * 10 + d;

/** Positions from..from+S-1 of row b, position-major [S, H*D]. */
function newPositions(b: number, from: number, S: number): { key: Float32Array; value: Float32Array } {
  const key = Float32Array.from({ length: S * H * D }, (_, i) => keyOf(b, from + Math.floor(i / (H * D)), Math.floor((i % (H * D)) / D), i % D));
  return { key, value: key.map((x) => -x) };
}

describe('KV layout', () => {
  it('puts each new position where attention reads it: keys[b,h,d,p] and values[b,h,p,d]', () => {
    const g = { heads: H, headDim: D, capacity: 8 };
    const buffers = allocateKv(2, g);
    for (const b of [0, 1]) {
      const first = newPositions(b, 0, 3);
      writePositions(buffers, g, b, 0, first.key, first.value);
      const next = newPositions(b, 3, 1);
      writePositions(buffers, g, b, 3, next.key, next.value);
    }
    for (let b = 0; b < 2; b++)
      for (let h = 0; h < H; h++)
        for (let d = 0; d < D; d++)
          for (let p = 0; p < 4; p++) {
            assert.equal(buffers.key[((b * H + h) * D + d) * g.capacity + p], keyOf(b, p, h, d));
            assert.equal(buffers.value[((b * H + h) * g.capacity + p) * D + d], -keyOf(b, p, h, d));
          }
    assert.deepEqual(readPositions(buffers, g, 1, 4), newPositions(1, 0, 4));
  });

  it('copies a row between capacities, every head intact', () => {
    const small = { heads: H, headDim: D, capacity: 5 };
    const large = { heads: H, headDim: D, capacity: 64 };
    const from = allocateKv(1, small);
    const rows = newPositions(0, 0, 5);
    writePositions(from, small, 0, 0, rows.key, rows.value);
    const to = allocateKv(3, large);
    copyPositions({ buffers: from, geometry: small, row: 0 }, { buffers: to, geometry: large, row: 2 }, 4);
    assert.deepEqual(readPositions(to, large, 2, 4), newPositions(0, 0, 4));
    assert.deepEqual(readPositions(to, large, 0, 4).key, new Float32Array(4 * H * D)); // other rows untouched
  });

  it('a KvState keeps its positions across growth, slices and broadcasts', () => {
    const s = new KvState({ numLayers: 1, heads: H, kvDim: H * D });
    for (let p = 0; p < 70; p += 10) {
      const rows = newPositions(0, p, 10);
      s.append([Array<number>(10).fill(p)], [rows.key], [rows.value]); // grows past 64 positions
    }
    assert.equal(s.capacity, paddedCapacity(70, 16, 64));
    assert.deepEqual(s.positions(0), newPositions(0, 0, 70));
    assert.deepEqual(s.slice(33).positions(0), newPositions(0, 0, 33));
    const wide = s.broadcast(3);
    assert.deepEqual(wide.positions(0, 2), newPositions(0, 0, 70));
  });

  it('hands over no padding while empty, and shrinks when cut far below its capacity (every step computes over it)', () => {
    const s = new KvState({ numLayers: 1, heads: H, kvDim: H * D });
    assert.equal(s.paddedLength, 0);
    assert.equal(s.past(0).key.length, 0);
    const rows = newPositions(0, 0, 200);
    s.append([Array<number>(200).fill(1)], [rows.key], [rows.value]);
    assert.equal(s.paddedLength, 256);
    assert.equal(s.past(0).key.length, 256 * H * D);
    s.truncate(199); // a token taken back keeps the buffers
    assert.equal(s.capacity, 256);
    s.truncate(20);
    assert.equal(s.capacity, 64);
    assert.deepEqual(s.positions(0), newPositions(0, 0, 20));
  });
});

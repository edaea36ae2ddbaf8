// The KV pool with real KvState objects whose rows encode (layer, position, token), so every reuse
// can be checked row by row; and one end-to-end check that pooled prefix + prefill == full prefill.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KvPool, type KvPoolOptions } from '../../server/src/kvcache/kv-pool';
import { commonPrefixLength } from '../../server/src/kvcache/prefix';
import { KvState, type KvShape } from '../../server/src/kvcache/kv-state';
import { TINY_LLAMA } from '../helpers/tiny-model';
import { loadTinyModel, maxAbsDiff } from '../helpers/tiny-session';

const SHAPE: KvShape = { numLayers: 2, heads: 1, kvDim: 3 };
/** Bytes of a state with the minimum capacity of 64 positions. */
const STATE_BYTES = new KvState(SHAPE, 1, 64).bytes;

const keyOf = (l: number, pos: number, token: number, d: number) => l * 1e6 + pos * 1e3 + token + d / 10;

/** A state holding `tokens`, appended in two steps, keys encoding (layer, position, token) and values their negation. */
function stateOf(tokens: number[]): KvState {
  const s = new KvState(SHAPE);
  const half = Math.ceil(tokens.length / 2);
  for (const [from, to] of [
    [0, half],
    [half, tokens.length],
  ] as const) {
    const part = tokens.slice(from, to);
    if (part.length === 0) continue;
    const keys = [0, 1].map((l) =>
      Float32Array.from({ length: part.length * SHAPE.kvDim }, (_, i) => keyOf(l, from + Math.floor(i / SHAPE.kvDim), part[Math.floor(i / SHAPE.kvDim)]!, i % SHAPE.kvDim)),
    );
    s.append(
      [part],
      keys,
      keys.map((k) => k.map((v) => -v)),
    );
  }
  return s;
}

/** Checks that `s` holds exactly `tokens` with the rows `stateOf(tokens)` would hold. */
function assertRows(s: KvState, tokens: number[]): void {
  assert.deepEqual([...s.tokens()], tokens);
  for (let l = 0; l < SHAPE.numLayers; l++) {
    const { key, value } = s.positions(l);
    assert.equal(key.length, tokens.length * SHAPE.kvDim);
    for (let i = 0; i < key.length; i++) {
      const expected = Math.fround(keyOf(l, Math.floor(i / SHAPE.kvDim), tokens[Math.floor(i / SHAPE.kvDim)]!, i % SHAPE.kvDim));
      assert.equal(key[i], expected, `layer ${l} element ${i}`);
      assert.equal(value[i], -expected);
    }
  }
}

function pool(options: Partial<KvPoolOptions> = {}): KvPool {
  return new KvPool({ budgetBytes: 100 * STATE_BYTES, newState: () => new KvState(SHAPE), ...options });
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('commonPrefixLength', () => {
  it('counts shared leading tokens', () => {
    assert.equal(commonPrefixLength([1, 2, 3], [1, 2, 4]), 2);
    assert.equal(commonPrefixLength([1, 2], [1, 2, 3]), 2);
    assert.equal(commonPrefixLength([], [1]), 0);
    assert.equal(commonPrefixLength([5], [6]), 0);
  });
});

describe('KvPool.acquire', () => {
  it('returns a fresh state on a miss', () => {
    const p = pool();
    p.release(stateOf([7, 8, 9]));
    const { state, reused } = p.acquire([1, 2, 3]);
    assert.equal(reused, 0);
    assert.equal(state.length, 0);
    assert.equal(p.size, 1);
    assert.deepEqual(p.stats(), { hits: 0, misses: 1, reusedTokens: 0, requestedTokens: 3, evictions: 0, superseded: 0, copies: 0 });
  });

  it('picks the longest common prefix across several states and truncates it in place', () => {
    const p = pool();
    const a = stateOf([1, 2, 3, 4, 5, 6]);
    p.release(a);
    p.release(stateOf([1, 2, 9, 9]));
    p.release(stateOf([7, 8]));
    const { state, reused } = p.acquire([1, 2, 3, 4, 10, 11]);
    assert.equal(reused, 4);
    assert.equal(state, a, '4 of 6 tokens reused: taken, not copied');
    assertRows(state, [1, 2, 3, 4]);
    assert.equal(p.size, 2, 'a handed-out state no longer sits in the pool');
    assert.equal(p.acquire([1, 2, 3, 4, 10]).reused, 2, 'the other [1, 2] state is what is left');
  });

  it('breaks ties in favour of the most recently used state', () => {
    const p = pool();
    const older = stateOf([1, 2, 3, 7]);
    const newer = stateOf([1, 2, 3, 8]);
    p.release(older);
    p.release(newer);
    const { state, reused } = p.acquire([1, 2, 3, 9]);
    assert.equal(reused, 3);
    assert.equal(state, newer);
    assertRows(state, [1, 2, 3]);
  });

  it('caps reuse at tokens.length - 1 for a state equal to the request', () => {
    const p = pool();
    p.release(stateOf([1, 2, 3, 4]));
    const { state, reused } = p.acquire([1, 2, 3, 4]);
    assert.equal(reused, 3);
    assertRows(state, [1, 2, 3]);
  });

  it('caps reuse for a state extending past the request', () => {
    const p = pool();
    p.release(stateOf([1, 2, 3, 4, 5, 6, 7, 8]));
    const { state, reused } = p.acquire([1, 2, 3]);
    assert.equal(reused, 2);
    assertRows(state, [1, 2]);
  });

  it('reuses all of a state that is a strict prefix of the request', () => {
    const p = pool();
    p.release(stateOf([1, 2, 3]));
    const { state, reused } = p.acquire([1, 2, 3, 4, 5]);
    assert.equal(reused, 3);
    assertRows(state, [1, 2, 3]);
  });

  it('never reuses anything for a one-token or empty request', () => {
    const p = pool();
    p.release(stateOf([1, 2]));
    assert.equal(p.acquire([1]).reused, 0);
    assert.equal(p.acquire([]).reused, 0);
    assert.equal(p.size, 1);
  });

  it('copies a small prefix of a long state and keeps the original pooled', () => {
    const p = pool();
    const long = range(10, 20);
    const original = stateOf(long);
    p.release(original);
    const request = [10, 11, 12, 99];
    const { state, reused } = p.acquire(request);
    assert.equal(reused, 3);
    assert.notEqual(state, original);
    assertRows(state, [10, 11, 12]);
    assertRows(original, long);
    assert.equal(p.size, 1);
    assert.equal(p.stats().copies, 1);
    // The copy is independent: appending to it leaves the pooled original untouched.
    const row = new Float32Array(SHAPE.kvDim).fill(123);
    state.append([[99]], [row, row], [row, row]);
    assertRows(original, long);
    assert.equal(p.acquire(long).reused, long.length - 1);
  });

  it('registers copies through `track`', () => {
    const tracked: KvState[] = [];
    const p = pool({ track: (s) => (tracked.push(s), s) });
    p.release(stateOf(range(10, 20)));
    const { state } = p.acquire([10, 11, 99]);
    assert.deepEqual(tracked, [state]);
  });

  it('takes even a small prefix in place when the state is about to be evicted anyway', () => {
    const p = pool({ budgetBytes: STATE_BYTES }); // giving back any state would evict the one pooled
    const original = stateOf(range(10, 20));
    p.release(original);
    const { state, reused } = p.acquire([10, 11, 12, 99]);
    assert.equal(reused, 3);
    assert.equal(state, original);
    assertRows(state, [10, 11, 12]);
    assert.equal(p.size, 0);
  });
});

describe('KvPool.release', () => {
  it('evicts the least recently used states to stay under the byte budget', () => {
    const evicted: number[] = [];
    const p = pool({ budgetBytes: 2 * STATE_BYTES, onEvict: (b) => evicted.push(b) });
    p.release(stateOf([1, 1, 1]));
    p.release(stateOf([2, 2, 2]));
    // Using the [1 …] state makes it the most recent; [2 …] is now the least recently used.
    const { state } = p.acquire([1, 1, 1, 5]);
    p.release(state);
    p.release(stateOf([3, 3, 3]));
    assert.equal(p.size, 2);
    assert.equal(p.bytes, 2 * STATE_BYTES);
    assert.deepEqual(evicted, [STATE_BYTES]);
    assert.equal(p.stats().evictions, 1);
    assert.equal(p.acquire([2, 2, 2, 5]).reused, 0, 'the [2 …] state was evicted');
    assert.equal(p.acquire([1, 1, 1, 5]).reused, 3);
  });

  it('drops a state larger than the whole budget without evicting the others', () => {
    const evicted: number[] = [];
    const p = pool({ budgetBytes: 3 * STATE_BYTES, onEvict: (b) => evicted.push(b) });
    p.release(stateOf([1, 2, 3]));
    const big = stateOf(range(0, 200)); // capacity 256 positions: 4x the small states
    assert.ok(big.bytes > 3 * STATE_BYTES);
    p.release(big);
    assert.equal(p.size, 1);
    assert.deepEqual(evicted, [big.bytes]);
    assert.equal(p.acquire([1, 2, 3, 4]).reused, 3);
  });

  it('keeps only the longer of two states where one extends the other', () => {
    const p = pool();
    p.release(stateOf([1, 2, 3]));
    const longer = stateOf([1, 2, 3, 4, 5]);
    p.release(longer);
    assert.equal(p.size, 1, '[1, 2, 3] is superseded by [1, 2, 3, 4, 5]');
    p.release(stateOf([1, 2]));
    assert.equal(p.size, 1, 'a state the pool already extends is not kept');
    assert.equal(p.stats().superseded, 2);
    assert.equal(p.acquire([1, 2, 3, 4, 5, 6]).state, longer);
  });

  it('refuses a state released twice', () => {
    const p = pool();
    const s = stateOf([1, 2]);
    p.release(s);
    assert.throws(() => p.release(s), /twice/);
  });

  it('clear() drops every state', () => {
    const evicted: number[] = [];
    const p = pool({ onEvict: (b) => evicted.push(b) });
    p.release(stateOf([1, 2]));
    p.release(stateOf([3, 4]));
    p.clear();
    assert.equal(p.size, 0);
    assert.equal(p.bytes, 0);
    assert.deepEqual(evicted, [STATE_BYTES, STATE_BYTES]);
    assert.equal(p.acquire([1, 2, 3]).reused, 0);
  });

  it('counts hits, reused and requested tokens', () => {
    const p = pool();
    p.release(stateOf([1, 2, 3, 4]));
    p.acquire([1, 2, 3, 4, 5, 6]); // hit, reuses 4
    p.acquire([9, 9]); // miss
    const s = p.stats();
    assert.equal(s.hits, 1);
    assert.equal(s.misses, 1);
    assert.equal(s.reusedTokens, 4);
    assert.equal(s.requestedTokens, 8);
  });
});

describe('KvPool with a real model', () => {
  it('a pooled prefix plus prefill of the rest gives the logits of a full prefill', async () => {
    const { model } = await loadTinyModel(TINY_LLAMA);
    const s = model.session;
    const p = new KvPool({ budgetBytes: 64 * 1024 * 1024, newState: () => s.newState(), track: (st) => s.track(st) });
    const first = [5, 17, 200, 3, 42, 9, 9, 120, 255, 1, 64, 77];
    const state = s.newState();
    await s.prefill(state, first);
    p.release(state);
    // Taken in place (10 of 12 reused), then copied (3 of 12 reused, original kept).
    for (const request of [
      [...first.slice(0, 10), 88, 13, 299],
      [5, 17, 200, 0, 11, 12],
    ]) {
      const got = p.acquire(request);
      assert.ok(got.reused > 0);
      const pooled = await s.prefill(got.state, request.slice(got.reused));
      const full = await s.prefill(s.newState(), request);
      assert.ok(maxAbsDiff(pooled, full) <= 1e-5, `request ${request}: ${maxAbsDiff(pooled, full)}`);
      assert.deepEqual([...got.state.tokens()], request);
      p.release(got.state);
    }
    assert.equal(p.stats().copies, 1);
    await s.release();
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSampler } from '../../server/src/completion/sampler';
import { seededRandom } from '../helpers/random';

/** Logits whose softmax is exactly `probs` (up to float32 rounding). */
function logitsOf(probs: number[]): Float32Array {
  return Float32Array.from(probs, (p) => (p > 0 ? Math.log(p) : -Infinity));
}

/** Counts of each id over `n` draws. */
function histogram(sample: (l: Float32Array) => number, logits: Float32Array, n: number): number[] {
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[sample(logits)]!++;
  return counts;
}

/** Pearson's chi-square statistic of observed counts against expected probabilities. */
function chiSquare(counts: number[], probs: number[]): number {
  const n = counts.reduce((a, b) => a + b, 0);
  return counts.reduce((sum, c, i) => (probs[i]! > 0 ? sum + (c - n * probs[i]!) ** 2 / (n * probs[i]!) : sum), 0);
}

function normalize(weights: number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / total);
}

const P = [0.5, 0.3, 0.15, 0.05];

test('greedy: argmax, ties to the lowest id, banned ids and NaN skipped', () => {
  const greedy = createSampler({ temperature: 0, topP: 1 });
  assert.equal(greedy(Float32Array.from([0.1, 2, -1, 1.5])), 1);
  assert.equal(greedy(Float32Array.from([3, 1, 3, 3])), 0);
  assert.equal(greedy(Float32Array.from([NaN, 1, 2])), 2);
  const banned = createSampler({ temperature: 0, topP: 1, banned: [1, 3] });
  assert.equal(banned(Float32Array.from([0, 9, 5, 9])), 2);
  assert.throws(() => banned(Float32Array.from([-Infinity, 9, -Infinity, 9])), /no token/);
});

test('same seed, same sequence; another seed, another sequence', () => {
  const rand = seededRandom(1);
  const rows = Array.from({ length: 50 }, () => Float32Array.from({ length: 64 }, () => rand() * 4));
  const run = (seed: number) => {
    const sample = createSampler({ temperature: 0.8, topP: 0.95, seed });
    return rows.map((row) => sample(row));
  };
  assert.deepEqual(run(42), run(42));
  assert.notDeepEqual(run(42), run(43));
});

test('temperature 1 with topP 1 samples the softmax itself', () => {
  const counts = histogram(createSampler({ temperature: 1, topP: 1, seed: 7 }), logitsOf(P), 20000);
  assert.ok(chiSquare(counts, P) < 16.3, `chi-square ${chiSquare(counts, P)} (df 3, p = 0.001 bound 16.3)`);
});

test('temperature reshapes the distribution: T = 2 samples p^(1/2) renormalized', () => {
  const expected = normalize(P.map((p) => Math.sqrt(p)));
  const counts = histogram(createSampler({ temperature: 2, topP: 1, seed: 9 }), logitsOf(P), 20000);
  assert.ok(chiSquare(counts, expected) < 16.3, `chi-square ${chiSquare(counts, expected)}`);
  const coldExpected = normalize(P.map((p) => p ** 4));
  const cold = histogram(createSampler({ temperature: 0.25, topP: 1, seed: 9 }), logitsOf(P), 20000);
  assert.ok(chiSquare(cold, coldExpected) < 16.3, `T = 0.25: chi-square ${chiSquare(cold, coldExpected)}`);
});

test('top-p keeps only the nucleus, renormalized', () => {
  // 0.5 + 0.3 = 0.8 ≥ 0.75: the nucleus is {0, 1}, sampled as 0.625 / 0.375.
  const counts = histogram(createSampler({ temperature: 1, topP: 0.75, seed: 3 }), logitsOf(P), 20000);
  assert.equal(counts[2], 0);
  assert.equal(counts[3], 0);
  const expected = [0.625, 0.375, 0, 0];
  assert.ok(chiSquare(counts, expected) < 10.8, `chi-square ${chiSquare(counts, expected)} (df 1, p = 0.001 bound 10.8)`);
  // 0.5 alone reaches 0.5: a nucleus of one.
  const single = histogram(createSampler({ temperature: 1, topP: 0.5, seed: 3 }), logitsOf(P), 2000);
  assert.deepEqual(single, [2000, 0, 0, 0]);
});

test('top-p over many equal small probabilities takes the lowest ids first', () => {
  const flat = new Float32Array(1000); // all equal: a threshold search down to zero
  const counts = histogram(createSampler({ temperature: 1, topP: 0.5, seed: 5 }), flat, 20000);
  assert.ok(
    counts.slice(500).every((c) => c === 0),
    'ids past the first 500 are outside the nucleus',
  );
  assert.ok(counts.slice(0, 500).filter((c) => c > 0).length > 480, 'the nucleus is sampled throughout');
});

test('banned ids are never sampled and a large vocabulary works', () => {
  const rand = seededRandom(2);
  const logits = Float32Array.from({ length: 151_936 }, () => rand() * 8);
  logits[17] = 100; // would always win
  const sample = createSampler({ temperature: 1.2, topP: 0.9, seed: 1, banned: [17, 99] });
  for (let i = 0; i < 50; i++) {
    const id = sample(logits);
    assert.ok(id !== 17 && id !== 99 && id >= 0 && id < logits.length);
  }
});

test("ids beyond the tokenizer's vocabulary (a model's padding rows) are never picked, greedy or sampled", () => {
  const logits = Float32Array.from({ length: 151_936 }, (_, i) => (i >= 151_669 ? 50 : Math.sin(i)));
  assert.ok(createSampler({ temperature: 0, topP: 1 })(logits) >= 151_669, 'without the bound a padding id wins');
  assert.ok(createSampler({ temperature: 0, topP: 1, vocabSize: 151_669 })(logits) < 151_669);
  const sample = createSampler({ temperature: 1, topP: 1, seed: 3, vocabSize: 151_669 });
  for (let i = 0; i < 20; i++) assert.ok(sample(logits) < 151_669);
});

test('options are checked', () => {
  assert.throws(() => createSampler({ temperature: -1, topP: 1 }), RangeError);
  assert.throws(() => createSampler({ temperature: 1, topP: 0 }), RangeError);
  assert.throws(() => createSampler({ temperature: 1, topP: 1.5 }), RangeError);
  assert.throws(() => createSampler({ temperature: NaN, topP: 1 }), RangeError);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IGNORE_INDEX, packExamples, segmentExample, type PackableExample } from '../../server/src/dataset/pack';

const PAD = 0;

function example(first: number, length: number, loss?: number[]): PackableExample {
  const tokens = Array.from({ length }, (_, i) => first + i);
  return { tokens, loss: Uint8Array.from(loss ?? tokens.map(() => 1)) };
}

test('sequences are exactly seqLen; labels are the next token of the same example, else the ignore index', () => {
  const { sequences, paddingTokens, targetTokens } = packExamples([example(100, 5)], { seqLen: 8, padId: PAD, seed: 1 });
  assert.equal(sequences.length, 1);
  const [s] = sequences;
  assert.deepEqual([...s!.inputIds], [100, 101, 102, 103, 104, PAD, PAD, PAD]);
  assert.deepEqual([...s!.labels], [101, 102, 103, 104, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]);
  assert.equal(paddingTokens, 3);
  assert.equal(targetTokens, 4);
});

test('masked tokens are not targets; examples sharing a sequence do not predict across their boundary', () => {
  const a = example(100, 4, [1, 0, 0, 1]);
  const b = example(200, 4);
  const { sequences } = packExamples([a, b], { seqLen: 8, padId: PAD, seed: 3 });
  assert.equal(sequences.length, 1);
  const ids = [...sequences[0]!.inputIds];
  const labels = [...sequences[0]!.labels];
  const at = ids.indexOf(100);
  assert.deepEqual(labels.slice(at, at + 4), [IGNORE_INDEX, IGNORE_INDEX, 103, IGNORE_INDEX]);
  const bt = ids.indexOf(200);
  assert.deepEqual(labels.slice(bt, bt + 4), [201, 202, 203, IGNORE_INDEX]);
});

test('examples stay whole where they fit, and every label is its input shifted by one', () => {
  const examples = Array.from({ length: 60 }, (_, i) => example(1000 * (i + 1), 3 + ((i * 7) % 20)));
  const seqLen = 32;
  const { sequences } = packExamples(examples, { seqLen, padId: PAD, seed: 9 });
  const seen = new Map<number, number>();
  for (const { inputIds, labels } of sequences) {
    assert.equal(inputIds.length, seqLen);
    assert.equal(labels.length, seqLen);
    for (let i = 0; i < seqLen; i++) {
      if (inputIds[i] !== PAD) seen.set(inputIds[i]!, (seen.get(inputIds[i]!) ?? 0) + 1);
      if (labels[i] !== IGNORE_INDEX) assert.equal(labels[i], inputIds[i + 1]);
    }
    // Each example's tokens are contiguous in one sequence.
    for (let i = 1; i < seqLen; i++) {
      const [x, y] = [inputIds[i - 1]!, inputIds[i]!];
      if (x !== PAD && y !== PAD && Math.floor(x / 1000) === Math.floor(y / 1000)) assert.equal(y, x + 1);
    }
  }
  for (const e of examples) for (const t of e.tokens) assert.equal(seen.get(t), 1, `token ${t}`);
});

test('a long example is cut into overlapping segments: each token after the first is a target once', () => {
  const long = example(1, 50);
  const segments = segmentExample(long, 16);
  assert.ok(segments.every((s) => s.tokens.length <= 16));
  const { sequences } = packExamples([long], { seqLen: 16, padId: PAD, seed: 0 });
  const targets = sequences.flatMap((s) => [...s.labels].filter((l) => l !== IGNORE_INDEX)).sort((x, y) => x - y);
  assert.deepEqual(targets, long.tokens.slice(1));
});

test('packing is deterministic for a seed and shuffles with it', () => {
  const examples = Array.from({ length: 40 }, (_, i) => example(100 * (i + 1), 5));
  const ids = (seed: number) => packExamples(examples, { seqLen: 16, padId: PAD, seed }).sequences.map((s) => [...s.inputIds]);
  assert.deepEqual(ids(5), ids(5));
  assert.notDeepEqual(ids(5), ids(6));
});

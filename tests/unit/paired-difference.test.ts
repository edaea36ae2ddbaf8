import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareOnCommonLines, pairedDifference } from '../../server/src/evaluation/paired-difference';

const score = (similarity: number, exact = false) => ({ similarity, exact });

test('the paired mean and its 95% interval, computed by hand', () => {
  // differences 0.1, 0.3, 0.2, 0.4: mean 0.25, sample sd √(0.05/3), half-width 1.96·sd/2
  const d = pairedDifference([score(0.5, true), score(0.6), score(0.4), score(0.9, true)], [score(0.4), score(0.3), score(0.2), score(0.5, true)]);
  const half = (1.96 * Math.sqrt(0.05 / 3)) / 2;
  assert.equal(d.lines, 4);
  assert.ok(Math.abs(d.editSimilarity.mean - 0.25) < 1e-12);
  assert.ok(Math.abs(d.editSimilarity.low - (0.25 - half)) < 1e-12);
  assert.ok(Math.abs(d.editSimilarity.high - (0.25 + half)) < 1e-12);
  assert.equal(d.exactMatch.mean, 0.25, 'exact: +1, 0, 0, 0');
});

test('pairing cancels the spread between lines that a comparison of separate means keeps', () => {
  // b is a with 0.01 less on every line: the difference is certain although the lines vary widely
  const a = Array.from({ length: 50 }, (_, i) => score((i % 10) / 10 + 0.05));
  const b = a.map((x) => score(x.similarity - 0.01));
  const d = pairedDifference(a, b).editSimilarity;
  assert.ok(Math.abs(d.mean - 0.01) < 1e-12 && d.high - d.low < 1e-9);
});

test('mismatched or missing lines', () => {
  assert.throws(() => pairedDifference([score(1)], []), /same lines/);
  assert.ok(Number.isNaN(pairedDifference([], []).editSimilarity.mean));
  assert.ok(Number.isNaN(pairedDifference([score(1)], [score(0)]).editSimilarity.low), 'one line has no interval');
});

test('an evaluation after that stopped early is compared over the lines both scored, the before figures restated over them', () => {
  const report = { files: 1, lines: 4, exactMatch: 0.5, editSimilarity: 0.6, validationLoss: 2, tokens: 10, samples: [] };
  const before = { report, perLine: [score(0.2, true), score(0.4), score(0.8, true), score(1)] };
  const cut = compareOnCommonLines(before, { perLine: [score(0.5), score(0.6)] });
  assert.equal(cut.cut, true);
  assert.deepEqual({ ...cut.before, editSimilarity: Math.round(cut.before.editSimilarity * 1e12) / 1e12 }, { ...report, lines: 2, exactMatch: 0.5, editSimilarity: 0.3 });
  assert.equal(cut.gain.lines, 2);
  assert.ok(Math.abs(cut.gain.editSimilarity.mean - 0.25) < 1e-12, 'differences 0.3 and 0.2');
  assert.equal(cut.gain.exactMatch.mean, -0.5);
  const whole = compareOnCommonLines(before, { perLine: before.perLine });
  assert.equal(whole.cut, false);
  assert.equal(whole.before, report, 'nothing cut: the report as it was');
  assert.equal(whole.gain.editSimilarity.mean, 0);
});

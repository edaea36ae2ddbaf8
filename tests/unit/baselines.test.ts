// The next-line baselines: previous-line repetition and the compact token n-gram.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NgramModel, previousLinePrediction } from '../../server/src/evaluation/baselines';

describe('previous-line baseline', () => {
  const cases: [string, string, string][] = [
    ['the nearest non-blank line', 'a = 1\n\n  b = 2\n  █', 'b = 2'],
    ['CRLF line ends', 'x()\r\n    y()\r\n    █', 'y()'],
    ['nothing above', '█', ''],
    ['cursor mid-line looks above its line', 'first\nsecond █', 'first'],
  ];
  for (const [name, marked, expected] of cases) {
    it(name, () => {
      const offset = marked.indexOf('█');
      assert.equal(previousLinePrediction(marked.replace('█', ''), offset), expected);
    });
  }
});

describe('token n-gram', () => {
  it('picks the most frequent continuation of the longest known context', () => {
    const model = NgramModel.train(
      [
        [1, 2, 3, 1, 2, 3, 1, 2, 4],
        [5, 2, 4],
      ],
      10,
      3,
    );
    assert.equal(model.next([1, 2]), 3, '(1,2) -> 3 twice, 4 once');
    assert.equal(model.next([5, 2]), 4);
    assert.equal(model.next([9, 3]), 1, 'unknown bigram context backs off to (3) -> 1');
    assert.equal(model.next([7]), 2, 'unknown context backs off to the unigram 2');
  });

  it('refuses contexts that would not fit exactly in a double', () => {
    assert.throws(() => NgramModel.train([[1]], 200_000, 4), /too large/);
  });
});

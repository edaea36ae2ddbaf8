// The fine-tune's end toast fits on one line of a collapsed VS Code notification, whatever the
// figures, and still carries the headline number; the output channel gets every figure.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { finishedText, gainText, TOAST_CHARS } from '../../client/src/fine-tune-text';
import type { FineTuneEvalFigures } from '../../server/src/protocol';

const figures = (exactMatch: number): FineTuneEvalFigures => ({ exactMatch, editSimilarity: 0.123456, validationLoss: 12.3456, lines: 123456, files: 9876 });

it('fits the toast for every outcome, with the widest figures', () => {
  const before = figures(1);
  const after = figures(1);
  for (const summary of [
    { cancelled: false, output: '/storage/runs/x', before, after },
    { cancelled: true, output: '/storage/runs/x', before, after },
    { cancelled: true, output: undefined, before: undefined, after: undefined },
    { cancelled: false, output: '/storage/runs/x', before: undefined, after: undefined },
  ]) {
    const text = finishedText(summary);
    assert.ok(text.length <= TOAST_CHARS, `${text.length} characters: ${text}`);
    assert.match(text, /^Kiln: .*\.$/);
  }
});

it('names the headline gain in the toast and every figure in the details', () => {
  const before = figures(0.012);
  const after = figures(0.034);
  assert.equal(finishedText({ cancelled: false, output: '/o', before, after }), 'Kiln: fine-tune done (exact match 1.2% → 3.4%); completions use it now.');
  const details = gainText(before, after);
  for (const part of ['1.2% → 3.4%', '+2.2 points', 'edit similarity 0.123 → 0.123', 'validation loss 12.346 → 12.346', '123456 lines', '9876 held-out files'])
    assert.ok(details.includes(part), `${part} in ${details}`);
});

it('gives the paired 95% intervals when measured, and n/a where two lines were too few', () => {
  const before = figures(0.012);
  const after = figures(0.034);
  const gain = { lines: 200, exactMatch: { mean: 0.022, low: 0.009, high: 0.035 }, editSimilarity: { mean: 0.041, low: -0.004, high: 0.086 } };
  const details = gainText(before, after, gain);
  for (const part of ['+2.2 points, 95% interval +0.9 to +3.5', 'edit similarity 0.123 → 0.123 (+0.041, 95% interval -0.004 to +0.086)'])
    assert.ok(details.includes(part), `${part} in ${details}`);
  // NaN crosses JSON (LSP) as null
  const thin = JSON.parse(JSON.stringify({ lines: 1, exactMatch: { mean: 0, low: NaN, high: NaN }, editSimilarity: { mean: 0.1, low: NaN, high: NaN } }));
  assert.ok(gainText(before, after, thin).includes('95% interval n/a to n/a'), gainText(before, after, thin));
});

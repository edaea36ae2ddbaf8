// What `kiln finetune` prints at the end without --json: the gain line carries signed figures and
// their intervals, and a run that scored no lines (--eval-lines 0) says so instead of printing NaN.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fineTuneSummary } from '../../server/src/commands/finetune';
import type { DatasetReport } from '../../server/src/dataset/build-dataset';
import type { EvalReport } from '../../server/src/evaluation/evaluate';
import { pairedDifference } from '../../server/src/evaluation/paired-difference';
import type { FineTuneResult } from '../../server/src/finetune/fine-tune';

function report(lines: number, exactMatch: number, editSimilarity: number, validationLoss: number): EvalReport {
  return { files: 2, lines, exactMatch, editSimilarity, validationLoss, tokens: 500, samples: [] };
}

function result(before: EvalReport, after: EvalReport, gain: FineTuneResult['gain']): FineTuneResult {
  return {
    dataset: {} as DatasetReport,
    output: '/tmp/run/adapter',
    before,
    after,
    gain,
    steps: 40,
    bestStep: 35,
    bestValidationLoss: 1.5,
    tokensSeen: 40_960,
    trainSeconds: 12.5,
    runSeconds: 20,
    cancelled: false,
    stoppedEarly: false,
    endReason: 'completed',
  };
}

describe('the fine-tune summary', () => {
  it('prints the paired gain with signs and intervals', () => {
    const gain = pairedDifference(
      [
        { exact: true, similarity: 1 },
        { exact: false, similarity: 0.5 },
        { exact: true, similarity: 1 },
      ], // after
      [
        { exact: false, similarity: 0.5 },
        { exact: false, similarity: 0.4 },
        { exact: true, similarity: 0.9 },
      ], // before
    );
    const text = fineTuneSummary(result(report(3, 1 / 3, 0.6, 2.1), report(3, 2 / 3, 0.8333, 1.9), gain));
    assert.match(
      text,
      /^gain on 3 paired lines: exact match \+33\.3 points \[[-+]\d+\.\d, [-+]\d+\.\d\], edit similarity \+0\.233 \[[-+]\d\.\d{3}, [-+]\d\.\d{3}\], validation loss -0\.2000$/m,
    );
  });

  it('says no lines were scored rather than printing NaN', () => {
    const text = fineTuneSummary(result(report(0, NaN, NaN, 4.2465), report(0, NaN, NaN, 4.2448), pairedDifference([], [])));
    assert.match(text, /^gain: validation loss -0\.0017 \(no lines scored\)$/m);
    assert.doesNotMatch(text, /NaN/);
  });
});

// What "Fine-tune on This Repository" writes: the progress line, the full before/after figures
// for the output channel, and the one short sentence that fits the end toast. No `vscode` import.
import type { FineTuneEvalFigures, FineTuneGain, FineTuneSummary, TrainingProgress } from '../../server/src/protocol';

/** e.g. `step 12/200 · loss 2.314 · 40 s left`. */
export function progressText(p: TrainingProgress): string {
  if (p.step !== undefined && p.totalSteps) {
    const parts = [`step ${p.step}/${p.totalSteps}`];
    if (p.loss !== undefined) parts.push(`loss ${p.loss.toFixed(3)}`);
    if (p.etaSeconds !== undefined && Number.isFinite(p.etaSeconds)) parts.push(`${Math.round(p.etaSeconds)} s left`);
    return parts.join(' · ');
  }
  return p.message ?? p.phase ?? '';
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : 'n/a');
const num = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');

const signed = (x: number, digits: number) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(digits)}` : 'n/a');

/** One sentence with before → after figures on the held-out files, and the paired 95% intervals when measured. */
export function gainText(before: FineTuneEvalFigures | undefined, after: FineTuneEvalFigures | undefined, gain?: FineTuneGain): string {
  if (!before || !after) return 'No before/after measurement (the run was cancelled or had no held-out files).';
  const points = 100 * (after.exactMatch - before.exactMatch);
  const emInterval = gain ? `, 95% interval ${signed(100 * gain.exactMatch.low, 1)} to ${signed(100 * gain.exactMatch.high, 1)}` : '';
  const esGain = gain ? ` (${signed(gain.editSimilarity.mean, 3)}, 95% interval ${signed(gain.editSimilarity.low, 3)} to ${signed(gain.editSimilarity.high, 3)})` : '';
  return (
    `On ${after.lines} lines of ${after.files} held-out files: next-line exact match ${pct(before.exactMatch)} → ${pct(after.exactMatch)} ` +
    `(${signed(points, 1)} points${emInterval}), edit similarity ${num(before.editSimilarity)} → ${num(after.editSimilarity)}${esGain}, ` +
    `validation loss ${num(before.validationLoss)} → ${num(after.validationLoss)}.`
  );
}

/**
 * How long the palette's run trains: `kiln.fineTune.minutes` bounds it (the steps fitted to it) and
 * `kiln.fineTune.maxSteps` caps it only when the user set it; with minutes 0 the steps decide alone.
 */
export function fineTuneLength(minutes: number | undefined, maxSteps: number | undefined, maxStepsChosen: boolean): { minutes?: number; maxSteps?: number } {
  if (minutes !== undefined && minutes > 0) return maxStepsChosen && maxSteps !== undefined ? { minutes, maxSteps } : { minutes };
  return maxSteps === undefined ? {} : { maxSteps };
}

/** Longest toast text: a collapsed VS Code toast shows one line of about this many characters. */
export const TOAST_CHARS = 80;

/** The end toast: one short sentence with the headline figure (the full figures go to the output channel). */
export function finishedText(summary: Pick<FineTuneSummary, 'cancelled' | 'output' | 'before' | 'after'>): string {
  if (!summary.output) return 'Kiln: fine-tune cancelled; nothing was kept.';
  const { before, after } = summary;
  const figure =
    before && after && Number.isFinite(before.exactMatch) && Number.isFinite(after.exactMatch) ? ` (exact match ${pct(before.exactMatch)} → ${pct(after.exactMatch)})` : '';
  return summary.cancelled ? `Kiln: fine-tune cancelled; best so far in use${figure}.` : `Kiln: fine-tune done${figure}; completions use it now.`;
}

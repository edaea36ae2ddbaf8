// `kiln eval --workspace`: the context the editor would build, drawn from the rest of the workspace,
// and what it is worth — the same lines scored without context, and with each source switched off
// in turn, each as a paired per-line difference with its 95% interval.
import type { CompletionModel } from '../completion/completion-model';
import type { ContextSourceName } from '../context/snippet';
import { type EvalFile, type EvalOptions, type EvalReport, evaluateModelPerLine, type LineScore, type SnippetLines } from '../evaluation/evaluate';
import { type Difference, type PairedDifference, pairedDifference } from '../evaluation/paired-difference';
import { evalContextFor, type WorkspaceEvalContext } from '../dataset/workspace-context';
import { UsageError } from './cli-args';

/** Indexes the workspace; a scored folder outside it is a usage error. */
export async function workspaceEvalContext(request: Parameters<typeof evalContextFor>[0]): Promise<WorkspaceEvalContext> {
  try {
    return await evalContextFor(request);
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
}

interface ContextRun {
  sources: ContextSourceName[];
  exactMatch: number;
  editSimilarity: number;
}

export interface ContextComparisons {
  sources: ContextSourceName[];
  /** Lines whose block held a snippet of each source. */
  snippetLines: SnippetLines;
  none: ContextRun;
  /** With context minus without, line by line. */
  contextMinusNone: PairedDifference;
  /** Per source that gave snippets: with all chosen sources minus with that one switched off. */
  withoutSource: Partial<Record<ContextSourceName, ContextRun & { contextMinusThis: PairedDifference }>>;
}

/** The same lines without context, and without each source that gave snippets (line scores only: the loss does not depend on context). */
export async function contextComparisons(
  model: CompletionModel,
  files: readonly EvalFile[],
  run: { options: EvalOptions; measured: { report: EvalReport; perLine: LineScore[]; snippetLines: SnippetLines } },
): Promise<ContextComparisons | undefined> {
  const ctx = run.options.context;
  if (ctx === undefined || ctx.sources.length === 0) return undefined;
  const lineOnly: EvalOptions = { ...run.options, maxLossTokens: 0 };
  const score = async (sources: readonly ContextSourceName[]) => {
    const { context: _, ...rest } = lineOnly;
    const r = await evaluateModelPerLine(model, files, sources.length === 0 ? rest : { ...lineOnly, context: { ...ctx, sources } });
    return { sources: [...sources], exactMatch: r.report.exactMatch, editSimilarity: r.report.editSimilarity, perLine: r.perLine };
  };
  const none = await score([]);
  const withoutSource: ContextComparisons['withoutSource'] = {};
  if (ctx.sources.length > 1) {
    for (const source of ctx.sources) {
      if (!run.measured.snippetLines[source]) continue; // switching off a source that gave nothing changes nothing
      const off = await score(ctx.sources.filter((s) => s !== source));
      withoutSource[source] = {
        sources: off.sources,
        exactMatch: off.exactMatch,
        editSimilarity: off.editSimilarity,
        contextMinusThis: pairedDifference(run.measured.perLine, off.perLine),
      };
    }
  }
  return {
    sources: [...ctx.sources],
    snippetLines: run.measured.snippetLines,
    none: { sources: [], exactMatch: none.exactMatch, editSimilarity: none.editSimilarity },
    contextMinusNone: pairedDifference(run.measured.perLine, none.perLine),
    withoutSource,
  };
}

const signed = (x: number, digits: number) => (Number.isNaN(x) ? 'n/a' : `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`);
const interval = (d: Difference, scale: number, digits: number) => `${signed(scale * d.mean, digits)} [${signed(scale * d.low, digits)}, ${signed(scale * d.high, digits)}]`;
const pct = (x: number) => (Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`);
const gap = (d: PairedDifference) => `exact ${interval(d.exactMatch, 100, 1)} points, edit sim ${interval(d.editSimilarity, 1, 3)}`;

export function formatContextComparisons(c: ContextComparisons): string {
  const used = Object.entries(c.snippetLines)
    .map(([s, n]) => `${s} ${n}`)
    .join(', ');
  return [
    `context          ${c.sources.join(', ')} (lines with snippets: ${used || 'none'})`,
    `without context  exact ${pct(c.none.exactMatch)}, edit sim ${Number.isNaN(c.none.editSimilarity) ? 'n/a' : c.none.editSimilarity.toFixed(3)}`,
    `context minus none, same lines (mean [95% interval]): ${gap(c.contextMinusNone)}`,
    ...Object.entries(c.withoutSource).map(([s, r]) => `  all minus without ${s.padEnd(8)} ${gap(r!.contextMinusThis)}`),
  ].join('\n');
}

// The dry run's text: what would be trained on, token counts, and what was left out and why.
import type { DatasetReport } from './build-dataset';
import { EXCLUSION_REASONS } from './exclusions';

const num = (n: number) => n.toLocaleString('en-US');
const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;

export function formatDryRun(report: DatasetReport): string {
  const out: string[] = [];
  const { files, excluded } = report;
  out.push(`Fine-tune dataset (dry run) for ${report.root} (${report.mode === 'git' ? 'git tracked and unignored files' : 'folder walk honouring .gitignore'})`);
  const loss = report.fimLoss === 'all' ? 'loss on all tokens' : 'loss on FIM middles';
  out.push(
    `sequence ${num(report.seqLen)} tokens, seed ${report.seed}, FIM ${pct(report.fimRate)} (SPM ${pct(report.spmRate)} of those, ${pct(report.lineSpanRate)} cut at line ends), ${loss}, validation ${pct(report.validationFraction)} of files`,
  );
  if (report.truncated) out.push('WARNING: a scan limit was reached; some files were not considered.');
  for (const w of report.warnings ?? []) out.push(`WARNING: ${w}`);

  out.push('', `Files (${num(files.length)}):`);
  const width = Math.max(1, ...files.map((f) => num(f.tokens).length));
  for (const f of files) {
    const scrubbed = f.scrubbedLines > 0 ? `  (${f.scrubbedLines} secret line${f.scrubbedLines === 1 ? '' : 's'} blanked)` : '';
    out.push(`  ${f.split === 'train' ? 'train     ' : 'validation'}  ${num(f.tokens).padStart(width)} tokens  ${f.path}${scrubbed}`);
  }

  const count = (split: 'train' | 'validation') => files.filter((f) => f.split === split).length;
  const fim = report.examples.psm + report.examples.spm;
  const positions = (report.sequences.train + report.sequences.validation) * report.seqLen;
  out.push('', 'Totals:');
  out.push(`  train       ${num(count('train'))} files, ${num(report.tokens.train)} tokens -> ${num(report.sequences.train)} sequences`);
  out.push(`  validation  ${num(count('validation'))} files, ${num(report.tokens.validation)} tokens -> ${num(report.sequences.validation)} sequences`);
  out.push(`  examples    ${num(fim)} FIM (PSM ${num(report.examples.psm)}, SPM ${num(report.examples.spm)}), ${num(report.examples.plain)} plain`);
  out.push(`  targets     ${num(report.targetTokens)} tokens; padding ${positions === 0 ? '0%' : pct(report.paddingTokens / positions)} of positions`);
  out.push(`  secrets     ${num(report.scrubbedLines)} line${report.scrubbedLines === 1 ? '' : 's'} blanked${report.scrubbedLines > 0 ? ' (by rule below)' : ''}`);
  out.push(...secretRuleTable(report.scrubbedByKind));

  out.push('', `Excluded (${num(excluded.length)}):`);
  const reasonWidth = Math.max(...EXCLUSION_REASONS.map((r) => r.length));
  for (const e of excluded) out.push(`  ${e.reason.padEnd(reasonWidth)}  ${e.path}${e.detail === undefined ? '' : `  (${e.detail})`}`);
  const byReason = EXCLUSION_REASONS.filter((r) => report.excludedByReason[r] > 0).map((r) => `${r} ${num(report.excludedByReason[r])}`);
  out.push(`  by reason: ${byReason.length > 0 ? byReason.join(', ') : 'none'}`);
  return `${out.join('\n')}\n`;
}

/** Blanked lines per secret rule, most first (ties by name): one row per rule that fired. */
export function secretRuleTable(byRule: Readonly<Record<string, number | undefined>>): string[] {
  const rows = Object.entries(byRule)
    .filter((row): row is [string, number] => (row[1] ?? 0) > 0)
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0));
  if (rows.length === 0) return [];
  const width = Math.max('rule'.length, ...rows.map(([rule]) => rule.length));
  const countWidth = Math.max('lines'.length, ...rows.map(([, n]) => num(n).length));
  return [
    '',
    'Secret lines blanked, by rule:',
    `  ${'rule'.padEnd(width)}  ${'lines'.padStart(countWidth)}`,
    ...rows.map(([rule, n]) => `  ${rule.padEnd(width)}  ${num(n).padStart(countWidth)}`),
  ];
}

/** One line for a run whose scan stopped at a bound, naming the first file left out; undefined otherwise. */
export function scanBoundsMessage(report: DatasetReport): string | undefined {
  if (!report.truncated) return undefined;
  const limited = report.excluded.filter((e) => e.reason === 'limit');
  const why = limited[0]?.detail ?? 'the listing was cut short';
  return `the scan stopped at its bounds (${why}): ${limited.length} files left out, from ${limited[0]?.path ?? 'the end of the listing'} on; --max-files raises the file bound`;
}

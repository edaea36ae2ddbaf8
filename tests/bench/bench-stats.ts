// Statistics and output shared by the benchmarks: medians with min–max, rounding, stderr logging, JSON.
import { writeFileSync } from 'node:fs';

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

export const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;

export function summarize(xs: number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median: round(median), min: round(s[0]!), max: round(s[s.length - 1]!), n: s.length };
}

export const MB = 1024 * 1024;
export const log = (line: string) => process.stderr.write(`${line}\n`);

/** The JSON on stdout, or in `out` when given (the table went to stderr). */
export function emitJson(result: object, out: string | undefined): void {
  const json = `${JSON.stringify(result, null, 2)}\n`;
  if (out === undefined) return void process.stdout.write(json);
  writeFileSync(out, json);
  log(`JSON written to ${out}`);
}

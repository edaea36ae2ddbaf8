// Decisions made from a file's bytes: binary, empty, generated and minified files are left out.
import type { ExclusionReason } from './exclusions';

export type ContentVerdict = { text: string } | { reason: ExclusionReason; detail: string };

/** Bytes sniffed for a NUL. */
const SNIFF_BYTES = 8192;
/** A line this long with under MIN_WHITESPACE of whitespace is minified. */
const LONG_LINE = 1000;
const MIN_WHITESPACE = 0.1;
/** A file of at least MIN_CHARS_FOR_AVERAGE characters whose lines average this long is minified. */
const LONG_AVERAGE = 300;
const MIN_CHARS_FOR_AVERAGE = 1000;
/** Generated-file markers are looked for in comment lines among the first HEADER_LINES lines. */
const HEADER_LINES = 10;
const COMMENT_START = /^\s*(\/\/|\/\*|\*|#|<!--|--|;|%|'|"""|''')/;
const GENERATED_MARKERS: readonly RegExp[] = [
  /@generated\b/,
  /\bDO NOT EDIT\b/i,
  /\bauto-?generated\b/i,
  /\bautomatically generated\b/i,
  /\bcode generated\b/i,
  /\bgenerated (by|from|with)\b/i,
];
/** Compiled output points at its source map on a line of its own near the end. */
const SOURCE_MAP_COMMENT = /^\s*\/[/*][#@] sourceMappingURL=/m;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Text when the bytes are worth training on, else why not. A leading BOM is dropped; CRLF is kept. */
export function classifyContent(bytes: Uint8Array): ContentVerdict {
  if (bytes.subarray(0, SNIFF_BYTES).includes(0)) return { reason: 'binary', detail: 'NUL byte' };
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return { reason: 'binary', detail: 'not UTF-8' };
  }
  if (text.trim().length === 0) return { reason: 'empty', detail: 'only whitespace' };
  const generated = generatedMarker(text);
  if (generated !== undefined) return { reason: 'generated', detail: generated };
  const minified = minifiedReason(text);
  if (minified !== undefined) return { reason: 'minified', detail: minified };
  return { text };
}

/** The marker that makes `text` generated, or undefined. */
export function generatedMarker(text: string): string | undefined {
  const head = text.slice(0, 4096).split('\n', HEADER_LINES);
  for (const line of head) {
    if (!COMMENT_START.test(line)) continue;
    const hit = GENERATED_MARKERS.find((m) => m.test(line));
    if (hit !== undefined) return hit.exec(line)![0];
  }
  if (SOURCE_MAP_COMMENT.test(text.slice(-1024))) return 'sourceMappingURL';
  return undefined;
}

/** Why `text` looks minified, or undefined. */
export function minifiedReason(text: string): string | undefined {
  const lines = text.split('\n');
  if (text.length >= MIN_CHARS_FOR_AVERAGE && text.length / lines.length > LONG_AVERAGE) {
    return `average line ${Math.round(text.length / lines.length)} chars`;
  }
  for (const line of lines) {
    if (line.length <= LONG_LINE) continue;
    const spaces = line.length - line.replace(/\s/g, '').length;
    if (spaces / line.length < MIN_WHITESPACE) return `${line.length}-char line`;
  }
  return undefined;
}

// How well a tokenizer compresses a set of files (UTF-8 bytes per token, per language), and whether
// every file round-trips byte for byte through encode and decode.
import type { Tokenizer } from '../tokenizer';

export interface MeasuredFile {
  path: string;
  text: string;
}

export interface Compression {
  files: number;
  bytes: number;
  tokens: number;
  bytesPerToken: number;
}

export interface Measurement extends Compression {
  /** By extension group: 'typescript', 'javascript', 'python', 'other'. */
  byLanguage: Record<string, Compression>;
  /** Paths whose decode(encode(text)) or token bytes differ from the file. */
  roundTripFailures: string[];
}

const GROUPS: Record<string, string> = {
  ts: 'typescript',
  tsx: 'typescript',
  mts: 'typescript',
  cts: 'typescript',
  js: 'javascript',
  jsx: 'javascript',
  mjs: 'javascript',
  cjs: 'javascript',
  py: 'python',
};

function groupOf(path: string): string {
  const dot = path.lastIndexOf('.');
  return (dot > path.lastIndexOf('/') && GROUPS[path.slice(dot + 1).toLowerCase()]) || 'other';
}

function sameBytes(tokenizer: Tokenizer, ids: readonly number[], expected: Uint8Array): boolean {
  let at = 0;
  for (const id of ids) {
    const bytes = tokenizer.tokenBytes(id);
    if (at + bytes.length > expected.length) return false;
    for (let i = 0; i < bytes.length; i++) if (bytes[i] !== expected[at + i]) return false;
    at += bytes.length;
  }
  return at === expected.length;
}

const utf8 = new TextEncoder();

export function measureTokenizer(tokenizer: Tokenizer, files: Iterable<MeasuredFile>): Measurement {
  const byLanguage: Record<string, Compression> = {};
  const total: Compression = { files: 0, bytes: 0, tokens: 0, bytesPerToken: 0 };
  const roundTripFailures: string[] = [];
  for (const file of files) {
    const ids = tokenizer.encode(file.text);
    const bytes = utf8.encode(file.text);
    if (tokenizer.decode(ids) !== file.text || !sameBytes(tokenizer, ids, bytes)) roundTripFailures.push(file.path);
    const language = groupOf(file.path);
    const group = byLanguage[language] ?? { files: 0, bytes: 0, tokens: 0, bytesPerToken: 0 };
    byLanguage[language] = group;
    for (const c of [total, group]) {
      c.files++;
      c.bytes += bytes.length;
      c.tokens += ids.length;
      c.bytesPerToken = c.tokens === 0 ? 0 : c.bytes / c.tokens;
    }
  }
  return { ...total, byLanguage, roundTripFailures };
}

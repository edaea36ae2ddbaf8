// Scrubs secrets out of source text: a line that holds one is blanked (emptied, its line break kept,
// so line numbers and the shape of the file stay), and a private-key block is blanked whole.

export type SecretKind =
  | 'private-key'
  | 'aws-access-key'
  | 'aws-secret-key'
  | 'github-token'
  | 'slack-token'
  | 'known-token'
  | 'url-credentials'
  | 'assigned-secret'
  | 'high-entropy-string';

export interface ScrubResult {
  text: string;
  /** 1-based numbers of the blanked lines. */
  lines: number[];
  byKind: Partial<Record<SecretKind, number>>;
}

/**
 * Token shapes with fixed prefixes, secret wherever they stand (a match must hold a digit). Repeats
 * are bounded throughout, so a long line costs linear time.
 */
const TOKEN_RULES: readonly (readonly [SecretKind, RegExp])[] = [
  ['aws-access-key', /\b(AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}\b/g],
  ['github-token', /\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})/g],
  ['slack-token', /\b(xox[abposr]-[A-Za-z0-9-]{10,}|hooks\.slack\.com\/services\/T[A-Za-z0-9_/]{8,})/g],
  ['known-token', /\bAIza[0-9A-Za-z_-]{35}\b/g], // Google API key
  ['known-token', /\b[rs]k_(live|test)_[0-9A-Za-z]{16,}/g], // Stripe
  ['known-token', /\bsk-(proj-|ant-)?[A-Za-z0-9_-]{20,}/g], // OpenAI, Anthropic
  ['known-token', /\b(glpat-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36}|hf_[A-Za-z0-9]{34,}|pypi-AgEI[A-Za-z0-9_-]{50,}|dop_v1_[a-f0-9]{64}|shp(at|ss|ca|pa)_[a-fA-F0-9]{32})\b/g],
  ['known-token', /\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/g], // JWT
  ['url-credentials', /\b[a-z][a-z0-9+.-]{0,30}:\/\/[^\s:@/"'`]{1,256}:[^\s@/"'`]{3,256}@[^\s"'`]/gi],
];
const PRIVATE_KEY_BEGIN = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----/;
const PRIVATE_KEY_END = /-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----/;
/** 40 base64 characters on a line that speaks of AWS or secrets. */
const AWS_SECRET = /(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/;
const AWS_CONTEXT = /aws|secret/i;
/** `apiKey = "..."`, `"password": '...'`, `TOKEN: ...`, `secret => "..."` and the like. */
const ASSIGNED_SECRET =
  /(key|token|secret|passw(or)?d|passwd|pwd|credential|auth)[\w.-]{0,40}["'`]?\s{0,8}(:=|=>|==|[:=])\s{0,8}(?<quote>["'`]?)(?<value>[A-Za-z0-9+/=_.~-]{16,256})/gi;
/** An HTTP Authorization value: `Bearer <token>`, `Basic <base64>`. */
const AUTH_HEADER = /\b(Bearer|Basic|Token)\s+([A-Za-z0-9+/=_.~-]{16,})/g;
/** A quoted run of token characters, the candidate for the keyword-free rule. */
const QUOTED_TOKEN = /["'`]([A-Za-z0-9+/=_.~-]{32,})["'`]/g;

/** Shannon entropy of the string's characters, in bits per character. */
export function shannonEntropy(s: string): number {
  const counts = new Map<string, number>();
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) {
    const p = n / s.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** A segment of an identifier or path: `model`, `layers`, `0`, `MatMul`, `vocabSize`, `QWEN2`. */
const WORD_SEGMENT = /^([a-z]+|[A-Z][a-z]+|[A-Z]+)([A-Z][a-z]+)*\d*$|^\d+$/;
/** The letter parts of camelCase and SCREAMING_CASE: `OAuth2Grant` → O, Auth, Grant. */
const LETTER_PART = /[A-Z]+(?![a-z])|[A-Z]?[a-z]+/g;

/**
 * Whether the value reads as names rather than noise: words joined by separators
 * (`/model/layers.0/attn`, `TINY_QWEN2.vocabSize`), or mixed-case camel words averaging 3.5+ letters
 * whose long parts are a fifth vowels (`AuthenticationFactorV2`). Random base62 passes as names
 * 1% of the time at 16 characters, 0.4% at 20, 0.1% at 32; all-lowercase values count as names only by the first test.
 */
export function isIdentifierLike(value: string): boolean {
  const segments = value.split(/[^A-Za-z0-9]+/).filter((s) => s.length > 0);
  if (segments.length >= 2 && segments.every((s) => s.length <= 3 || WORD_SEGMENT.test(s))) return true;
  if (!/[A-Z]/.test(value)) return false;
  const parts = value.match(LETTER_PART) ?? [];
  if (parts.length === 0 || parts.reduce((n, p) => n + p.length, 0) / parts.length < 3.5) return false;
  return parts.every((p) => p.length < 4 || (p.match(/[aeiouy]/gi)?.length ?? 0) / p.length >= 0.2);
}

/**
 * Whether a value looks like a random credential: letters with digits or mixed case, not an identifier or
 * path, and a character entropy of at least `minBits` (lowered to 0.8·log2(length) for short values,
 * since n characters cannot exceed log2(n) bits each). Random base62 passes 3.5 bits from 20
 * characters 99.9% of the time; words, paths and most identifiers do not.
 */
export function looksRandom(value: string, minBits = 3.5): boolean {
  const mixedCase = /[a-z]/.test(value) && /[A-Z]/.test(value);
  if (value.length < 16 || !/[A-Za-z]/.test(value) || !(/[0-9]/.test(value) || mixedCase)) return false;
  if (isIdentifierLike(value)) return false;
  return shannonEntropy(value) >= Math.min(minBits, 0.8 * Math.log2(value.length));
}

/** The kind of secret on one line, or undefined. */
export function lineSecret(line: string): SecretKind | undefined {
  for (const [kind, pattern] of TOKEN_RULES) for (const m of line.matchAll(pattern)) if (/\d/.test(m[0])) return kind;
  if (AWS_CONTEXT.test(line)) {
    const m = AWS_SECRET.exec(line);
    if (m !== null && looksRandom(m[0])) return 'aws-secret-key';
  }
  for (const m of line.matchAll(ASSIGNED_SECRET)) {
    const { quote, value } = m.groups as { quote: string; value: string };
    // Unquoted, `a.b` and `f(` are expressions, not literals.
    const expression = quote === '' && (value.includes('.') || line[m.index + m[0].length] === '(');
    if (!expression && looksRandom(value)) return 'assigned-secret';
  }
  for (const m of line.matchAll(AUTH_HEADER)) if (looksRandom(m[2]!)) return 'assigned-secret';
  for (const m of line.matchAll(QUOTED_TOKEN)) {
    const value = m[1]!;
    const bits = Math.min(4.5, Math.log2(value.length) - 0.9); // random base62 passes 99% of the time
    if (/[a-z]/.test(value) && /[A-Z]/.test(value) && looksRandom(value, bits)) return 'high-entropy-string';
  }
  return undefined;
}

/** `text` with every line holding a secret blanked; line breaks (CRLF too) are kept. */
export function scrubSecrets(text: string): ScrubResult {
  const parts = text.split(/(\r?\n)/); // lines at even indices, their breaks at odd ones
  const lines: number[] = [];
  const byKind: Partial<Record<SecretKind, number>> = {};
  const blank = (i: number, kind: SecretKind) => {
    parts[i] = '';
    lines.push(i / 2 + 1);
    byKind[kind] = (byKind[kind] ?? 0) + 1;
  };
  for (let i = 0; i < parts.length; i += 2) {
    const line = parts[i]!;
    if (PRIVATE_KEY_BEGIN.test(line)) {
      let j = i;
      for (; j < parts.length; j += 2) {
        const end = PRIVATE_KEY_END.test(parts[j]!);
        blank(j, 'private-key');
        if (end) break;
      }
      i = j;
      continue;
    }
    const kind = lineSecret(line);
    if (kind !== undefined) blank(i, kind);
  }
  return { text: parts.join(''), lines, byKind };
}

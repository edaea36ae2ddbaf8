// Whether a value reads as random noise (a credential) or as names, words and paths.

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
 * whose long parts are a fifth vowels (`AuthenticationFactorV2`); never with symbols names lack. Random base62 passes as names
 * 1% of the time at 16 characters, 0.4% at 20, 0.1% at 32; all-lowercase values count as names only by the first test.
 */
export function isIdentifierLike(value: string): boolean {
  if (/[^\w./:@ -]/.test(value)) return false; // `!#%&*?~$=+^` stand in passwords, not in names or paths
  const segments = value.split(/[^A-Za-z0-9]+/).filter((s) => s.length > 0);
  if (segments.length >= 2 && segments.every((s) => s.length <= 3 || WORD_SEGMENT.test(s))) return true;
  if (!/[A-Z]/.test(value)) return false;
  // Digits in three or more places of a long run-together value are noise: names keep them to one or two (`Int32Array`, `utf8ToBase64`).
  if (value.length >= 24 && (value.match(/\d+/g)?.length ?? 0) >= 3) return false;
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

/**
 * Whether a run of 32+ hex or base64 characters looks like key material: hex with both letters and
 * digits (a 64-hex key has no digit with odds 1e-16), or base64 passing `looksRandom`.
 */
export function looksLikeKeyMaterial(value: string): boolean {
  if (value.length < 32) return false;
  if (/^[0-9a-f]+$/i.test(value)) return /[a-f]/i.test(value) && /\d/.test(value) && shannonEntropy(value) >= 3;
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(value)) return false;
  return looksRandom(value.replace(/=+$/, ''));
}

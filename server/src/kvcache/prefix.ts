// Token-prefix matching: KV reuse is decided on tokens, never on characters (BPE re-merges the last
// token or two when a character is typed, so a character prefix does not imply a token prefix).

/** How many leading tokens `a` and `b` share. */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

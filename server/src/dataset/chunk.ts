// Splits a document too long for one training sequence into pieces at line boundaries, so that each
// piece can become one FIM or plain example that fits a sequence.

/** A cut at `i` that does not separate a surrogate pair. */
export function charBoundary(text: string, i: number): number {
  const code = text.charCodeAt(i);
  return i > 0 && i < text.length && code >= 0xdc00 && code <= 0xdfff ? i - 1 : i;
}

/**
 * `text` cut into pieces of about `maxTokens` tokens, given that the whole is `tokenCount` tokens:
 * whole lines are gathered up to a character budget scaled from the text's own characters per token
 * (with 10% to spare); a single line longer than the budget is cut within. Pieces join back to `text`.
 */
export function chunkByLines(text: string, tokenCount: number, maxTokens: number): string[] {
  if (tokenCount <= maxTokens) return [text];
  const budget = Math.max(1, Math.floor(((text.length * maxTokens) / tokenCount) * 0.9));
  const pieces: string[] = [];
  let current = '';
  for (const line of text.split(/(?<=\n)/)) {
    if (current.length > 0 && current.length + line.length > budget) {
      pieces.push(current);
      current = '';
    }
    let rest = line;
    while (rest.length > budget) {
      const cut = Math.max(1, charBoundary(rest, budget));
      pieces.push(rest.slice(0, cut));
      rest = rest.slice(cut);
    }
    current += rest;
  }
  if (current.length > 0) pieces.push(current);
  return pieces;
}

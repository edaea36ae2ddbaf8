// Identifier sets and their Jaccard similarity: how "similar windows" are ranked (the measure
// Copilot's neighbouring-tab snippets use): two stretches of code that name the same things are
// likely to help each other, whatever their order or formatting.

/** Words that every file of a language has: they would make unrelated windows look alike. */
const STOP_WORDS = new Set(
  (
    'if else for while do return const let var function class new this self def import from export ' +
    'as in of is not and or true false null undefined none True False None async await try catch ' +
    'finally throw raise with yield pass break continue type interface extends implements public ' +
    'private protected static readonly void number string boolean any unknown elif lambda switch case default'
  ).split(' '),
);

const IDENTIFIER = /[A-Za-z_$][A-Za-z0-9_$]*/g;

/** The distinct identifiers of `text` (at least two characters, keywords left out). */
export function identifierSet(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(IDENTIFIER)) {
    const word = m[0];
    if (word.length >= 2 && !STOP_WORDS.has(word)) out.add(word);
  }
  return out;
}

/** |a ∩ b| / |a ∪ b|; 0 when both are empty. */
export function jaccard(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  let common = 0;
  for (const x of small) if (large.has(x)) common++;
  const union = a.size + b.size - common;
  return union === 0 ? 0 : common / union;
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyTransforms,
  balanceBrackets,
  DEFAULT_TRANSFORMS,
  dropWhitespaceOnly,
  trimSuffixOverlap,
  trimTrailingWhitespace,
  type Transform,
  type TransformContext,
} from '../../server/src/completion/transforms';

const CURSOR = '█';

interface Row {
  name: string;
  /** The document, with the cursor marked by █. */
  text: string;
  completion: string;
  /** One transform, or the default chain when absent. */
  transform?: Transform;
  expected: string;
}

const ROWS: Row[] = [
  // trimSuffixOverlap
  { name: 'overlap: the closer the line already has', text: 'foo(█)', completion: 'a, b)', transform: trimSuffixOverlap, expected: 'a, b' },
  { name: 'overlap: closer and semicolon', text: 'foo(█);', completion: 'a, b);', transform: trimSuffixOverlap, expected: 'a, b' },
  { name: 'overlap: a closer of its own stays', text: 'bar(█)', completion: 'foo()', transform: trimSuffixOverlap, expected: 'foo()' },
  { name: 'overlap: quote and paren', text: 'print("█")', completion: 'hi")', transform: trimSuffixOverlap, expected: 'hi' },
  { name: 'overlap: words too', text: 'x = █ + 1;', completion: 'y + 1', transform: trimSuffixOverlap, expected: 'y' },
  { name: 'overlap: only the cursor line counts', text: 'x = █\n)', completion: 'f(1)', transform: trimSuffixOverlap, expected: 'f(1)' },
  { name: 'overlap: none', text: 'x = █', completion: '1 + 2', transform: trimSuffixOverlap, expected: '1 + 2' },
  // balanceBrackets
  { name: 'balance: a closer for the open paren before the cursor stays', text: 'foo(a, █', completion: 'b)', transform: balanceBrackets, expected: 'b)' },
  { name: 'balance: one closer too many', text: 'foo(a, █', completion: 'b))', transform: balanceBrackets, expected: 'b)' },
  { name: 'balance: the document already has the closer', text: 'foo(a, █)', completion: 'b)', transform: balanceBrackets, expected: 'b' },
  { name: 'balance: own pair kept, extra dropped', text: 'bar(█)', completion: 'foo())', transform: balanceBrackets, expected: 'foo()' },
  { name: 'balance: stray brace after a block', text: 'if (x) {█', completion: '\n  y();\n}\n}', transform: balanceBrackets, expected: '\n  y();\n}' },
  { name: 'balance: wrong kind of closer', text: 'f(█', completion: 'a])', transform: balanceBrackets, expected: 'a)' },
  { name: 'balance: brackets in strings ignored', text: 'f(█', completion: '")")', transform: balanceBrackets, expected: '")")' },
  { name: 'balance: unmatched closer in the middle is left alone', text: '█', completion: 'a) + b', transform: balanceBrackets, expected: 'a) + b' },
  // trimTrailingWhitespace
  { name: 'whitespace: inner and final', text: 'x█', completion: 'a  \nb\t\n', transform: trimTrailingWhitespace, expected: 'a\nb' },
  { name: 'whitespace: final kept before the rest of the line', text: 'x = █+ 1', completion: 'a \nb ', transform: trimTrailingWhitespace, expected: 'a\nb ' },
  { name: 'whitespace: CRLF inner lines keep their CR', text: 'x█', completion: 'a  \r\nb', transform: trimTrailingWhitespace, expected: 'a\r\nb' },
  // dropWhitespaceOnly
  { name: 'whitespace only becomes nothing', text: 'x█', completion: '  \n\t ', transform: dropWhitespaceOnly, expected: '' },
  { name: 'text stays', text: 'x█', completion: ' a', transform: dropWhitespaceOnly, expected: ' a' },
  // the default chain
  { name: 'chain: trailing spaces then overlap', text: 'foo(█)', completion: 'a, b)  ', expected: 'a, b' },
  { name: 'chain: closers followed by a semicolon are not trailing, so left alone', text: 'foo(a, █', completion: 'b));', expected: 'b));' },
  { name: 'chain: a nested call inside parens', text: 'bar(█)', completion: 'foo(1)', expected: 'foo(1)' },
  { name: 'chain: a block with a stray closer', text: 'if (x) {█', completion: '\n  y();\n}\n}\n', expected: '\n  y();\n}' },
  { name: 'chain: only a closer the line has', text: 'foo(█)', completion: ') ', expected: '' },
];

function contextOf(text: string): TransformContext {
  const at = text.indexOf(CURSOR);
  const before = text.slice(0, at);
  return { lineBefore: before.slice(before.lastIndexOf('\n') + 1), textAfter: text.slice(at + CURSOR.length) };
}

for (const row of ROWS) {
  test(row.name, () => {
    const ctx = contextOf(row.text);
    const out = row.transform ? row.transform(row.completion, ctx) : applyTransforms(row.completion, ctx);
    assert.equal(out, row.expected);
  });
}

test('applyTransforms runs a given chain in order; the default chain is the four named transforms', () => {
  const ctx = contextOf('x█');
  assert.equal(applyTransforms(' a ', ctx, []), ' a ');
  const upper: Transform = (s) => s.toUpperCase();
  const exclaim: Transform = (s) => `${s}!`;
  assert.equal(applyTransforms('a', ctx, [upper, exclaim]), 'A!');
  assert.deepEqual(DEFAULT_TRANSFORMS, [trimTrailingWhitespace, trimSuffixOverlap, balanceBrackets, dropWhitespaceOnly]);
});

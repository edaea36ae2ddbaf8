import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer } from '../../server/src/model/tokenizer';
import { resolveFimTemplate, buildFimPrompt, type FimTemplate } from '../../server/src/model/fim';
import { buildPrompt, DEFAULT_PROMPT_OPTIONS, PromptTokenCache, promptTokenCacheFor, type BuiltPrompt, type PromptOptions } from '../../server/src/completion/prompt';
import { CODE_CORPUS, makeTinyTokenizerJson } from '../helpers/tiny-tokenizer';
import { seededRandom } from '../helpers/random';

const tok = Tokenizer.fromJson(makeTinyTokenizerJson({ vocabSize: 1000 }));
const template: FimTemplate = resolveFimTemplate(tok)!;

/** The corpus with identifiers renamed per copy, so the text is not one block repeated. */
function codeFile(copies: number): string {
  let out = '';
  for (let i = 0; i < copies; i++) out += CODE_CORPUS.replaceAll('count', `count${i}`).replaceAll('name', `name${i}`) + '\n';
  return out;
}

/** A 60-line function, as someone would type it. */
function sixtyLineFunction(): string {
  const lines = ['export function summarize(records: Record<string, number>[], limit: number): string[] {', '  const out: string[] = [];'];
  for (let i = 0; lines.length < 58; i++) {
    lines.push(`  if (records.length > ${i} && out.length < limit) {`);
    lines.push(`    const total${i} = Object.values(records[${i}]!).reduce((a, b) => a + b, 0);`);
    lines.push(`    out.push(\`row ${i}: \${total${i}}\`);`);
    lines.push('  }');
  }
  lines.push('  return out;', '}');
  return lines.slice(0, 60).join('\n') + '\n';
}

function lcp(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** Checks the invariants every prompt must satisfy. */
function checkPrompt(p: BuiltPrompt, text: string, offset: number, options: PromptOptions): void {
  assert.equal(p.prefix, text.slice(p.prefixStart, offset));
  assert.equal(p.suffix, text.slice(offset, p.suffixEnd));
  assert.ok(p.prefixTokens.length <= options.maxPrefixTokens, `prefix has ${p.prefixTokens.length} tokens`);
  assert.ok(p.suffixTokens.length <= options.maxSuffixTokens, `suffix has ${p.suffixTokens.length} tokens`);
  assert.deepEqual(p.tokens, buildFimPrompt(template, p.prefixTokens, p.suffixTokens, options.order));
}

test('windows: prefix starts at a line start, suffix ends at a line end, tokens decode to the windows', () => {
  const text = codeFile(8);
  const charsPerToken = text.length / tok.encode(text).length;
  const options = { ...DEFAULT_PROMPT_OPTIONS, maxPrefixTokens: 300, maxSuffixTokens: 80, charsPerToken };
  const rand = seededRandom(3);
  for (let k = 0; k < 40; k++) {
    const offset = Math.floor(rand() * text.length);
    const p = buildPrompt({ tokenizer: tok, template, text, offset, options });
    checkPrompt(p, text, offset, options);
    assert.ok(p.prefixStart === 0 || text[p.prefixStart - 1] === '\n', 'prefix starts at a line start');
    assert.ok(p.suffixEnd === text.length || text[p.suffixEnd - 1] === '\n', 'suffix ends at a line end');
    assert.equal(tok.decode(p.prefixTokens), p.prefix);
    assert.equal(tok.decode(p.suffixTokens), p.suffix);
    if (offset > 2000) assert.ok(p.prefixTokens.length > 150, 'the prefix window is not needlessly short');
  }
});

test('cached == uncached: the piece cache never changes the tokens', () => {
  const text = codeFile(6);
  const cache = new PromptTokenCache(tok);
  const rand = seededRandom(5);
  for (let k = 0; k < 60; k++) {
    const offset = Math.floor(rand() * text.length);
    for (const order of ['psm', 'spm'] as const) {
      const options = { ...DEFAULT_PROMPT_OPTIONS, maxPrefixTokens: 200 + (k % 3) * 150, order };
      const a = buildPrompt({ tokenizer: tok, template, text, offset, options, cache });
      const b = buildPrompt({ tokenizer: tok, template, text, offset, options, cache });
      const c = buildPrompt({ tokenizer: tok, template, text, offset, options, cache: null });
      assert.deepEqual(a, c);
      assert.deepEqual(b, c);
    }
  }
  assert.throws(() =>
    buildPrompt({ tokenizer: Tokenizer.fromJson(makeTinyTokenizerJson({ vocabSize: 300 })), template, text, offset: 10, options: DEFAULT_PROMPT_OPTIONS, cache }),
  );
});

/** Types `typed` char by char at `insertAt` and measures how much of each previous prompt stays valid. */
function typingTrace(file: string, insertAt: number, typed: string, options: PromptOptions) {
  const before = file.slice(0, insertAt);
  const after = file.slice(insertAt);
  let previous: BuiltPrompt | undefined;
  let good = 0;
  let dropped = 0;
  let reused = 0;
  let total = 0;
  const starts = new Set<number>();
  for (let n = 0; n <= typed.length; n++) {
    const text = before + typed.slice(0, n) + after;
    const p = buildPrompt({ tokenizer: tok, template, text, offset: before.length + n, options });
    checkPrompt(p, text, before.length + n, options);
    starts.add(p.prefixStart);
    if (previous !== undefined) {
      const shared = lcp(previous.tokens, p.tokens);
      if (previous.tokens.length - shared <= 4) good++;
      dropped += previous.tokens.length - shared;
      reused += shared;
      total += p.tokens.length;
    }
    previous = p;
  }
  const keystrokes = typed.length;
  return { share: good / keystrokes, meanDropped: dropped / keystrokes, reusedShare: reused / total, moves: starts.size - 1 };
}

test('typing a 60-line function: SPM keeps all but the last few tokens, PSM loses the suffix', (t) => {
  const whole = codeFile(3);
  const file = whole.slice(0, whole.lastIndexOf('\n', 3600) + 1);
  const insertAt = file.indexOf('export class Counter {', CODE_CORPUS.length);
  const typed = sixtyLineFunction();
  assert.ok(Math.abs(tok.encode(file).length - 1000) < 100, `file has ${tok.encode(file).length} tokens`);
  const calibrated = promptTokenCacheFor(tok).charsPerToken;
  const actual = file.length / tok.encode(file).length;
  for (const charsPerToken of [calibrated, actual]) {
    for (const order of ['spm', 'psm'] as const) {
      const options = { ...DEFAULT_PROMPT_OPTIONS, order, charsPerToken };
      const r = typingTrace(file, insertAt, typed, options);
      t.diagnostic(
        `${order}, ${charsPerToken.toFixed(2)} chars/token: ${(r.share * 100).toFixed(1)}% of ${typed.length} keystrokes drop ≤ 4 cached tokens; ` +
          `mean dropped ${r.meanDropped.toFixed(1)}, reused ${(r.reusedShare * 100).toFixed(1)}% of prompt tokens; ${r.moves} prefix-window moves`,
      );
      if (order === 'spm') {
        assert.ok(r.share >= 0.95, `SPM: only ${(r.share * 100).toFixed(1)}% of keystrokes kept all but ≤ 4 tokens`);
        const step = (DEFAULT_PROMPT_OPTIONS.maxPrefixTokens * charsPerToken) / 4;
        assert.ok(r.moves <= typed.length / step + 2, `the prefix window moved ${r.moves} times`);
      }
    }
  }
});

test('the window moves in jumps, never by a character', (t) => {
  const text = codeFile(10);
  const options = { ...DEFAULT_PROMPT_OPTIONS, maxPrefixTokens: 400 };
  let last = -1;
  let moves = 0;
  let back = 0;
  let distance = 0;
  for (let offset = 3000; offset < text.length; offset += 3) {
    const p = buildPrompt({ tokenizer: tok, template, text, offset, options });
    if (last >= 0 && p.prefixStart !== last) {
      assert.ok(Math.abs(p.prefixStart - last) >= 40, `moved by ${p.prefixStart - last} chars`);
      moves++;
      distance += Math.abs(p.prefixStart - last);
      if (p.prefixStart < last) back++;
    }
    last = p.prefixStart;
  }
  const step = (400 * promptTokenCacheFor(tok).charsPerToken) / 4;
  t.diagnostic(`${moves} moves over ${Math.floor((text.length - 3000) / 3)} cursor positions, mean ${(distance / moves).toFixed(0)} chars (step ${step.toFixed(0)}), ${back} back`);
  assert.ok(distance / moves >= step / 2);
});

/** Wraps the tokenizer to count how many chars it is asked to encode. */
function countingTokenizer(): { encode(text: string): number[]; chars: number; calls: number } {
  const counter = {
    chars: 0,
    calls: 0,
    encode(text: string): number[] {
      counter.chars += text.length;
      counter.calls++;
      return tok.encode(text);
    },
  };
  return counter;
}

test('a 5 MB single line costs only the windows', () => {
  const unit = 'a=[1,2,3].map(x=>x*2);';
  const text = unit.repeat(Math.ceil(5_000_000 / unit.length));
  const options = { ...DEFAULT_PROMPT_OPTIONS, maxPrefixTokens: 512, maxSuffixTokens: 128 };
  for (const offset of [0, 1, 1000, 2_500_000, text.length - 1, text.length]) {
    const counter = countingTokenizer();
    const p = buildPrompt({ tokenizer: counter, template, text, offset, options, cache: null });
    checkPrompt(p, text, offset, options);
    assert.ok(counter.chars < 20 * 512 * 3.5, `tokenized ${counter.chars} chars`);
    assert.ok(offset < 2000 || p.prefixTokens.length > 100, 'a useful prefix is kept');
  }
});

test('binary-looking text and surrogate pairs: bounded, never cut inside a pair', () => {
  const rand = seededRandom(11);
  let text = '';
  while (text.length < 200_000) {
    const r = rand();
    if (r < 0.3) text += '\u{1F600}\u{10437}';
    else if (r < 0.35) text += '\uD800';
    else if (r < 0.5) text += String.fromCharCode(Math.floor(rand() * 32));
    else text += String.fromCharCode(0x80 + Math.floor(rand() * 0x7000));
  }
  const options = { ...DEFAULT_PROMPT_OPTIONS, maxPrefixTokens: 256, maxSuffixTokens: 64 };
  const isLow = (c: number) => c >= 0xdc00 && c <= 0xdfff;
  const isHigh = (c: number) => c >= 0xd800 && c <= 0xdbff;
  for (let k = 0; k < 30; k++) {
    let offset = Math.floor(rand() * text.length);
    if (isLow(text.charCodeAt(offset)) && isHigh(text.charCodeAt(offset - 1))) offset++;
    const counter = countingTokenizer();
    const p = buildPrompt({ tokenizer: counter, template, text, offset, options, cache: null });
    checkPrompt(p, text, offset, options);
    assert.ok(counter.chars < 20 * 256 * 3.5, `tokenized ${counter.chars} chars`);
    for (const cut of [p.prefixStart, p.suffixEnd]) {
      assert.ok(!(isLow(text.charCodeAt(cut)) && isHigh(text.charCodeAt(cut - 1))), `cut at ${cut} splits a surrogate pair`);
    }
  }
});

test('dense tokens (a tiny vocabulary) still fit the budget by dropping whole pieces', () => {
  const dense = Tokenizer.fromJson(makeTinyTokenizerJson({ vocabSize: 263 }));
  const denseTemplate = resolveFimTemplate(dense)!;
  const text = codeFile(6);
  const options = { ...DEFAULT_PROMPT_OPTIONS, maxPrefixTokens: 300, maxSuffixTokens: 50 };
  for (const offset of [500, 4000, text.length - 10]) {
    const p = buildPrompt({ tokenizer: dense, template: denseTemplate, text, offset, options });
    assert.ok(p.prefixTokens.length <= 300 && p.prefixTokens.length > 100);
    assert.ok(p.suffixTokens.length <= 50);
    assert.ok(p.prefixStart === 0 || text[p.prefixStart - 1] === '\n');
    assert.ok(p.suffixEnd === text.length || text[p.suffixEnd - 1] === '\n');
  }
});

test('edges: empty text, cursor at either end, zero budgets, out-of-range offsets, bad options', () => {
  const text = codeFile(1);
  const spm = buildPrompt({ tokenizer: tok, template, text: '', offset: 0 });
  assert.deepEqual(spm.tokens, [template.prefixId, template.suffixId, template.middleId]);
  const atStart = buildPrompt({ tokenizer: tok, template, text, offset: 0 });
  assert.deepEqual(atStart.prefixTokens, []);
  assert.ok(atStart.suffixTokens.length > 0);
  const atEnd = buildPrompt({ tokenizer: tok, template, text, offset: text.length + 50 });
  assert.equal(atEnd.prefix, text);
  assert.deepEqual(atEnd.suffixTokens, []);
  const none = buildPrompt({ tokenizer: tok, template, text, offset: 700, options: { maxPrefixTokens: 0, maxSuffixTokens: 0, order: 'psm' } });
  assert.deepEqual(none.tokens, [template.prefixId, template.suffixId, template.middleId]);
  assert.throws(() => buildPrompt({ tokenizer: tok, template, text, offset: 1, options: { ...DEFAULT_PROMPT_OPTIONS, maxPrefixTokens: -1 } }), RangeError);
  assert.throws(() => buildPrompt({ tokenizer: tok, template, text, offset: 1, options: { ...DEFAULT_PROMPT_OPTIONS, charsPerToken: 0 } }), RangeError);
});

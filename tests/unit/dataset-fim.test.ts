import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer } from '../../server/src/model/tokenizer';
import { resolveFimTemplate, type FimTemplate } from '../../server/src/model/fim';
import { chunkByLines } from '../../server/src/dataset/chunk';
import { fimLineSplit, fimSplit, makeExample, type ExampleContext, type FimOptions } from '../../server/src/dataset/fim-transform';
import { keyedRandom } from '../../server/src/dataset/random';
import { CODE_CORPUS, writeTinyTokenizer } from '../helpers/tiny-tokenizer';
import { tempDir } from '../helpers/tiny-session';

const dir = tempDir('kiln-fim-ds-');
writeTinyTokenizer(dir, { vocabSize: 512 });
const tokenizer = Tokenizer.load(dir);
const template = resolveFimTemplate(tokenizer) as FimTemplate;
const endId = tokenizer.eosId!;

function context(options: Partial<FimOptions>): ExampleContext {
  return { tokenizer, template, endId, options: { fimRate: 0.9, spmRate: 0.5, lineSpanRate: 0, loss: 'all', ...options } };
}

const TEXT = CODE_CORPUS.slice(0, 600);

test('PSM examples: <pre> prefix <suf> suffix <mid> middle <eos>, and the parts rebuild the text', () => {
  for (let i = 0; i < 40; i++) {
    const e = makeExample(TEXT, context({ fimRate: 1, spmRate: 0 }), keyedRandom(i, 'psm'));
    assert.equal(e.kind, 'psm');
    const t = e.tokens;
    const suf = t.indexOf(template.suffixId);
    const mid = t.indexOf(template.middleId);
    assert.equal(t[0], template.prefixId);
    assert.ok(0 < suf && suf < mid);
    assert.equal(t[t.length - 1], endId);
    const prefix = tokenizer.decode(t.slice(1, suf));
    const suffix = tokenizer.decode(t.slice(suf + 1, mid));
    const middle = tokenizer.decode(t.slice(mid + 1, -1));
    assert.equal(prefix + middle + suffix, TEXT);
    assert.ok(e.loss.every((x) => x === 1));
  }
});

test('SPM examples: <pre> <suf> suffix <mid> prefix middle <eos>', () => {
  for (let i = 0; i < 40; i++) {
    const e = makeExample(TEXT, context({ fimRate: 1, spmRate: 1 }), keyedRandom(i, 'spm'));
    assert.equal(e.kind, 'spm');
    const t = e.tokens;
    assert.deepEqual(t.slice(0, 2), [template.prefixId, template.suffixId]);
    const mid = t.indexOf(template.middleId);
    assert.equal(t[t.length - 1], endId);
    const suffix = tokenizer.decode(t.slice(2, mid));
    const prefixAndMiddle = tokenizer.decode(t.slice(mid + 1, -1));
    assert.equal(prefixAndMiddle + suffix, TEXT);
    assert.equal(t.filter((id) => id === template.prefixId || id === template.suffixId || id === template.middleId).length, 3);
  }
});

test("'middle' loss trains only on the middle and the end token", () => {
  const e = makeExample(TEXT, context({ fimRate: 1, spmRate: 0, loss: 'middle' }), keyedRandom(3, 'loss'));
  const mid = e.tokens.indexOf(template.middleId);
  assert.ok(e.loss.slice(0, mid + 1).every((x) => x === 0));
  assert.ok(e.loss.slice(mid + 1).every((x) => x === 1));
  const plain = makeExample(TEXT, context({ fimRate: 0, loss: 'middle' }), keyedRandom(3, 'loss'));
  assert.equal(plain.kind, 'plain');
  assert.deepEqual(plain.tokens, [...tokenizer.encode(TEXT), endId]);
  assert.ok(plain.loss.every((x) => x === 1));
});

test('the FIM and SPM rates are honoured', () => {
  const counts = { plain: 0, psm: 0, spm: 0 };
  const n = 2000;
  for (let i = 0; i < n; i++) counts[makeExample('ab\ncd\n', context({ fimRate: 0.9, spmRate: 0.5 }), keyedRandom(1, `doc${i}`)).kind]++;
  const fim = counts.psm + counts.spm;
  assert.ok(Math.abs(fim / n - 0.9) < 0.03, JSON.stringify(counts));
  assert.ok(Math.abs(counts.spm / fim - 0.5) < 0.05, JSON.stringify(counts));
  const none = makeExample(TEXT, { ...context({ fimRate: 1 }), template: undefined }, keyedRandom(0, 'x'));
  assert.equal(none.kind, 'plain');
});

test('line spans: the middle starts on a line and ends where a line ends, the break left in the suffix', () => {
  const text = 'function f(a) {\r\n  if (a) {\n    return 1;\n  }\n\n  return 2;\n}\n// 😀 end';
  let atIndentation = 0;
  let multiLine = 0;
  const n = 400;
  for (let i = 0; i < n; i++) {
    const [prefix, middle, suffix] = fimLineSplit(text, keyedRandom(i, 'lines'));
    assert.equal(prefix + middle + suffix, text);
    assert.ok(suffix === '' || /^\r?\n/.test(suffix), JSON.stringify(suffix));
    assert.ok(!middle.endsWith('\n') && !middle.endsWith('\r'));
    assert.ok(middle.split('\n').filter((l) => l.trim() !== '').length <= 4, JSON.stringify(middle));
    const lineBefore = prefix.slice(prefix.lastIndexOf('\n') + 1);
    assert.notEqual(lineBefore + middle.split('\n')[0], '', 'starts on a non-blank line');
    for (const p of [prefix, middle, suffix]) assert.ok(!/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/.test(p));
    if (lineBefore.trim() === '' && middle !== '') atIndentation++;
    if (middle.includes('\n')) multiLine++;
  }
  assert.ok(atIndentation > 0.4 * n && atIndentation < 0.8 * n, `${atIndentation} of ${n} start at the indentation`);
  assert.ok(multiLine > 0.15 * n && multiLine < 0.45 * n, `${multiLine} of ${n} span several lines`);
  assert.deepEqual(fimLineSplit('  \n\n', keyedRandom(0, 'blank')).join(''), '  \n\n', 'no content line: a uniform cut');
});

test('lineSpanRate picks line spans in FIM examples: their middles end at a line end', () => {
  const text = CODE_CORPUS.slice(0, 600);
  const middles = (rate: number) =>
    Array.from({ length: 200 }, (_, i) => {
      const t = makeExample(text, context({ fimRate: 1, spmRate: 0, lineSpanRate: rate }), keyedRandom(i, 'span')).tokens;
      const suffix = tokenizer.decode(t.slice(t.indexOf(template.suffixId) + 1, t.indexOf(template.middleId)));
      return suffix === '' || suffix.startsWith('\n');
    }).filter(Boolean).length;
  assert.equal(middles(1), 200);
  const half = middles(0.5);
  assert.ok(half > 70 && half < 150, `${half} of 200 line-aligned at rate 0.5`);
  assert.ok(middles(0) < 40, 'uniform cuts rarely land on a line end');
});

test('FIM cuts never split a surrogate pair', () => {
  const text = '😀😀😀😀😀😀';
  for (let i = 0; i < 200; i++) {
    const parts = fimSplit(text, keyedRandom(i, 'emoji'));
    assert.equal(parts.join(''), text);
    for (const p of parts) assert.ok(!/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/.test(p), JSON.stringify(p));
  }
});

test('long documents are cut at line ends into pieces that fit, and join back', () => {
  const text = CODE_CORPUS.repeat(3);
  const ids = tokenizer.encode(text);
  const budget = 120;
  const pieces = chunkByLines(text, ids.length, budget);
  assert.equal(pieces.join(''), text);
  assert.ok(pieces.length > ids.length / budget);
  for (const p of pieces.slice(0, -1)) assert.ok(p.endsWith('\n'));
  for (const p of pieces) assert.ok(tokenizer.encode(p).length <= budget, `${tokenizer.encode(p).length}`);
  assert.deepEqual(chunkByLines('short\n', 2, 10), ['short\n']);
  const oneLine = 'x'.repeat(1000);
  assert.equal(chunkByLines(oneLine, 500, 100).join(''), oneLine);
});

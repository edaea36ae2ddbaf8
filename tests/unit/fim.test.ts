import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '../../server/src/model/tokenizer';
import { buildFimPrompt, resolveFimTemplate, type FimTemplate } from '../../server/src/model/fim';
import { makeTinyTokenizerJson, writeTinyTokenizer } from '../helpers/tiny-tokenizer';

/** A tiny byte-level tokenizer whose added tokens are `names`, at ids 256.. in order. */
function tokenizerWith(names: string[], config: object = {}): Tokenizer {
  const json = makeTinyTokenizerJson({ vocabSize: 263 }) as Record<string, unknown>;
  json.added_tokens = names.map((content, i) => ({ id: 256 + i, content, special: true, normalized: false }));
  return Tokenizer.fromJson(json, config);
}

function loadTiny(): Tokenizer {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-fim-'));
  writeTinyTokenizer(dir, { vocabSize: 300 });
  return Tokenizer.load(dir);
}

test('Qwen2.5-Coder names resolve from the tiny tokenizer', () => {
  const tok = loadTiny();
  const t = resolveFimTemplate(tok)!;
  const id = (s: string) => tok.tokenToId(s)!;
  assert.equal(t.family, 'qwen');
  assert.equal(t.prefixId, id('<|fim_prefix|>'));
  assert.equal(t.suffixId, id('<|fim_suffix|>'));
  assert.equal(t.middleId, id('<|fim_middle|>'));
  assert.equal(t.padId, id('<|fim_pad|>'));
  assert.equal(t.fileSepId, id('<|file_sep|>'));
  assert.equal(t.repoNameId, id('<|repo_name|>'));
  assert.equal(t.bosId, undefined);
  assert.ok(t.stopIds.includes(id('<|endoftext|>')));
  assert.ok(t.stopIds.includes(id('<|file_sep|>')));
  assert.equal(new Set(t.stopIds).size, t.stopIds.length);
  assert.deepEqual(t.orders, ['psm']);
});

test('each FIM token is one id, and its literal text in a file is not', () => {
  const tok = loadTiny();
  const t = resolveFimTemplate(tok)!;
  const control = new Set([t.prefixId, t.suffixId, t.middleId, ...t.stopIds]);
  for (const name of ['<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>', '<|fim_pad|>', '<|file_sep|>', '<|repo_name|>', '<|endoftext|>']) {
    assert.equal(typeof tok.tokenToId(name), 'number');
    assert.ok(
      tok.encode(`x = "${name}"`).every((id) => !control.has(id)),
      name,
    );
  }
});

test('StarCoder, SantaCoder, DeepSeek-Coder and CodeLlama resolve from their token sets', () => {
  const star = resolveFimTemplate(tokenizerWith(['<|endoftext|>', '<fim_prefix>', '<fim_middle>', '<fim_suffix>', '<fim_pad>', '<repo_name>', '<file_sep>']))!;
  assert.deepEqual(
    { family: star.family, p: star.prefixId, s: star.suffixId, m: star.middleId, pad: star.padId, repo: star.repoNameId, file: star.fileSepId },
    { family: 'starcoder', p: 257, s: 259, m: 258, pad: 260, repo: 261, file: 262 },
  );
  assert.ok(star.stopIds.includes(256) && star.stopIds.includes(262));
  assert.deepEqual(star.orders, ['psm', 'spm']);

  const santa = resolveFimTemplate(tokenizerWith(['<|endoftext|>', '<fim-prefix>', '<fim-middle>', '<fim-suffix>', '<fim-pad>']))!;
  assert.deepEqual([santa.family, santa.prefixId, santa.suffixId, santa.middleId, santa.padId], ['starcoder', 257, 259, 258, 260]);

  // DeepSeek's markers use U+FF5C FULLWIDTH VERTICAL LINE and U+2581 LOWER ONE EIGHTH BLOCK.
  const begin = '<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>';
  const end = '<\uFF5Cend\u2581of\u2581sentence\uFF5C>';
  const deepseekTok = tokenizerWith([begin, end, '<｜fim▁hole｜>', '<｜fim▁begin｜>', '<｜fim▁end｜>', '<|EOT|>'], { eos_token: end });
  const ds = resolveFimTemplate(deepseekTok)!;
  assert.deepEqual([ds.family, ds.prefixId, ds.suffixId, ds.middleId, ds.bosId], ['deepseek', 259, 258, 260, 256]);
  assert.ok(ds.stopIds.includes(257) && ds.stopIds.includes(261));
  // ASCII look-alikes are not DeepSeek's tokens.
  assert.equal(resolveFimTemplate(tokenizerWith(['<|fim▁begin|>', '<|fim▁hole|>', '<|fim▁end|>'])), undefined);

  const cl = resolveFimTemplate(tokenizerWith(['<unk>', '<s>', '</s>', '▁<PRE>', '▁<SUF>', '▁<MID>', '▁<EOT>'], { eos_token: '</s>' }))!;
  assert.deepEqual([cl.family, cl.prefixId, cl.suffixId, cl.middleId, cl.bosId], ['codellama', 259, 260, 261, 257]);
  assert.ok(cl.stopIds.includes(262) && cl.stopIds.includes(258));
});

test('a tokenizer without a complete set of FIM tokens has no template', () => {
  assert.equal(resolveFimTemplate(tokenizerWith(['<|endoftext|>'])), undefined);
  assert.equal(resolveFimTemplate(tokenizerWith(['<|endoftext|>', '<|fim_prefix|>', '<|fim_suffix|>'])), undefined);
});

const T: FimTemplate = { family: 'test', prefixId: 901, suffixId: 902, middleId: 903, stopIds: [900], orders: ['psm'] };

test('PSM layout: <pre> prefix <suf> suffix <mid>', () => {
  assert.deepEqual(buildFimPrompt(T, [1, 2], [3, 4, 5], 'psm'), [901, 1, 2, 902, 3, 4, 5, 903]);
  assert.deepEqual(buildFimPrompt(T, [], [], 'psm'), [901, 902, 903]);
});

test('SPM layout: <pre> <suf> suffix <mid> prefix', () => {
  assert.deepEqual(buildFimPrompt(T, [1, 2], [3, 4, 5], 'spm'), [901, 902, 3, 4, 5, 903, 1, 2]);
});

test('a BOS is prepended where the family uses one', () => {
  const withBos = { ...T, bosId: 1 };
  assert.deepEqual(buildFimPrompt(withBos, [7], [8], 'psm'), [1, 901, 7, 902, 8, 903]);
  assert.deepEqual(buildFimPrompt(withBos, [7], [8], 'spm'), [1, 901, 902, 8, 903, 7]);
});

test('SPM: typing at the cursor only appends tokens; PSM changes tokens after the prefix', () => {
  const tok = loadTiny();
  const t = resolveFimTemplate(tok)!;
  const suffix = tok.encode('\n  return total;\n}\n');
  const before = tok.encode('function sum(xs: number[]) {\n  let total = 0;\n');
  const after = tok.encode('function sum(xs: number[]) {\n  let total = 0;\n  for');
  const spmBefore = buildFimPrompt(t, before, suffix, 'spm');
  const spmAfter = buildFimPrompt(t, after, suffix, 'spm');
  const common = commonPrefixLength(spmBefore, spmAfter);
  // Everything up to the prefix is shared; only the last token or two of the old prefix may re-merge.
  assert.ok(common >= spmBefore.length - 2, `shared ${common} of ${spmBefore.length}`);
  const psmBefore = buildFimPrompt(t, before, suffix, 'psm');
  const psmAfter = buildFimPrompt(t, after, suffix, 'psm');
  assert.ok(commonPrefixLength(psmBefore, psmAfter) < psmBefore.length - suffix.length);
});

function commonPrefixLength(a: number[], b: number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

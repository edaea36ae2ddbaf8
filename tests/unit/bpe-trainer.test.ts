import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { corpusFiles } from '../../server/src/commands/tokenizer-train';
import { KILN_SPECIAL_TOKENS, learnMerges, trainBpe, truncateMerges, vocabularyOf } from '../../server/src/model/bpe-trainer';
import { tokenizerJson, writeTokenizerFiles, type BpeVocabulary } from '../../server/src/model/bpe/hf-files';
import { measureTokenizer } from '../../server/src/model/bpe/measure';
import { WordCounter } from '../../server/src/model/bpe/pretokenize';
import { resolveFimTemplate } from '../../server/src/model/fim';
import { BYTE_TO_UNICODE, Tokenizer } from '../../server/src/model/tokenizer';
import { seededRandom } from '../helpers/random';

const IDENTS = ['value', 'count', 'items', 'index', 'result', 'options', 'name', 'data', 'error', 'config', 'größe', 'naïve', '変数'];

/** Seeded code-like text: TypeScript and Python lines, tabs, CRLF, unicode and emoji. */
function syntheticCorpus(seed: number, lines: number): string {
  const random = seededRandom(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
  const shapes = [
    (a: string, b: string) => `  const ${a} = ${b}.map((x) => x + ${Math.floor(random() * 1000)});`,
    (a: string, b: string) => `\tif (${a} === undefined) throw new Error('${b} missing 🚀');`,
    (a: string, b: string) => `def ${a}(self, ${b}):\r\n        return self.${b} or "ünïcödé"`,
    (a: string, b: string) => `export function ${a}(${b}: string): number { return ${b}.length; } // 日本語`,
    (a: string, b: string) => `    for ${a} in range(len(${b})):  # count 👍🏽`,
  ];
  const out: string[] = [];
  for (let i = 0; i < lines; i++) out.push(pick(shapes)(pick(IDENTS), pick(IDENTS)));
  return `${out.join('\n')}\n`;
}

function countWords(...texts: string[]): Map<string, number> {
  const counter = new WordCounter();
  for (const t of texts) counter.add(t);
  return counter.counts;
}

function load(vocabulary: BpeVocabulary): Tokenizer {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bpe-'));
  writeTokenizerFiles(dir, vocabulary);
  return Tokenizer.load(dir);
}

/** NUL-free bytes-ish text: control characters, Latin-1, astral and lone-surrogate-free random code points. */
function binaryish(seed: number, length: number): string {
  const random = seededRandom(seed);
  let s = '';
  while (s.length < length) {
    const r = random();
    const cp = r < 0.5 ? 1 + Math.floor(random() * 0xff) : r < 0.8 ? 0x100 + Math.floor(random() * 0xd700) : 0x10000 + Math.floor(random() * 0xfffff);
    s += String.fromCodePoint(cp);
  }
  return s;
}

const VOCAB = 420;
const trained = trainBpe(countWords(syntheticCorpus(1, 400)), VOCAB);

test('the emitted tokenizer.json loads in Kiln and round-trips byte for byte', () => {
  const tok = load(trained);
  assert.equal(tok.vocabSize, VOCAB);
  assert.equal(tok.byteLevel, true);
  assert.equal(tok.exportVocabulary().preTokenizer, 'qwen2');
  const samples = [
    syntheticCorpus(99, 50),
    'line one\r\nline two\r\n\r\n\ttabbed\t\there  \n   \n',
    '// family: 👩‍👩‍👧‍👦 flags: 🇯🇵 keycap: 1️⃣ — ça va? 中文 \u00a0nbsp \u2028sep',
    "it's 12345 3.14159 0xDEADBEEF 'll 'RE",
    binaryish(7, 2000),
    ' ',
    '',
  ];
  const files = samples.map((text, i) => ({ path: `s${i}.ts`, text }));
  assert.deepEqual(measureTokenizer(tok, files).roundTripFailures, []);
  for (const text of samples) assert.equal(tok.decode(tok.encode(text)), text);
});

test('training text encodes with the merges learned from it: common words are single tokens', () => {
  const tok = load(trained);
  for (const word of [' value', 'export', ' function', ' return', '\tif']) {
    const ids = tok.encode(word);
    assert.ok(ids.length <= 2, `${JSON.stringify(word)} took ${ids.length} tokens`);
  }
  const digits = tok.encode('2024');
  assert.equal(digits.length, 4, 'numbers split into single digits');
});

test('FIM and file-separator tokens are single ids at the end of the vocabulary, and user text never yields them', () => {
  const tok = load(trained);
  KILN_SPECIAL_TOKENS.forEach((name, i) => {
    const id = tok.tokenToId(name);
    assert.equal(id, VOCAB - KILN_SPECIAL_TOKENS.length + i, name);
    assert.ok(tok.isControl(id!), name);
    assert.equal(tok.decode([id!]), name);
    assert.ok(!tok.encode(`x${name}y`).includes(id!), `${name} in plain text`);
  });
  assert.equal(tok.eosId, tok.tokenToId('<|endoftext|>'));
  const fim = resolveFimTemplate(tok);
  assert.equal(fim?.family, 'qwen');
  assert.deepEqual(
    [fim?.prefixId, fim?.suffixId, fim?.middleId],
    ['<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>'].map((t) => tok.tokenToId(t)),
  );
  assert.equal(fim?.fileSepId, tok.tokenToId('<|file_sep|>'));
  assert.equal(fim?.repoNameId, tok.tokenToId('<|repo_name|>'));
});

test('the same input gives identical tokenizer.json bytes; sampling depends only on the seed', async () => {
  const text = syntheticCorpus(3, 300);
  const a = JSON.stringify(tokenizerJson(trainBpe(countWords(text), 500)));
  const b = JSON.stringify(tokenizerJson(trainBpe(countWords(text), 500)));
  assert.equal(a, b);

  const dir = mkdtempSync(join(tmpdir(), 'kiln-bpe-corpus-'));
  for (let i = 0; i < 20; i++) {
    mkdirSync(join(dir, `pkg${i % 3}`), { recursive: true });
    writeFileSync(join(dir, `pkg${i % 3}`, `f${i}.ts`), syntheticCorpus(100 + i, 20));
  }
  const sample = async (seed: number) => {
    const paths: string[] = [];
    for await (const f of corpusFiles(dir, 5000, seed)) paths.push(f.path);
    return paths;
  };
  const trainedOn = async (seed: number) => {
    const counter = new WordCounter();
    for await (const f of corpusFiles(dir, 5000, seed)) counter.add(f.text);
    return JSON.stringify(tokenizerJson(trainBpe(counter.counts, 400)));
  };
  assert.deepEqual(await sample(1), await sample(1));
  assert.notDeepEqual(await sample(1), await sample(2));
  assert.ok((await sample(1)).length < 20);
  assert.equal(await trainedOn(5), await trainedOn(5));
  const all: string[] = [];
  for await (const f of corpusFiles(dir)) all.push(f.path);
  assert.deepEqual(all, [...all].sort());
  assert.equal(all.length, 20);
});

test('merges come in the expected order on a hand-checkable corpus', () => {
  // Words: "ab" ×1, " ab" ×3, " cd" ×3. (a,b) occurs 4 times; then (Ġ,ab), (Ġ,c) and (c,d) tie at
  // 3 and go by spelling: "c" < "Ġ" (U+0120), then "ab" < "c".
  const learned = learnMerges(countWords('ab ab ab ab cd cd cd'), { tokens: 300 });
  assert.deepEqual(
    learned.merges.map((m) => m.join(' ')),
    ['a b', 'c d', 'Ġ ab', 'Ġ cd'],
  );
  assert.deepEqual(learned.tokens.slice(256), ['ab', 'cd', 'Ġab', 'Ġcd']);
  // Overlapping pairs: "aaa" holds (a,a) twice but merges once, leaving (aa,a).
  const overlapping = learnMerges(new Map([['aaa', 5]]), { tokens: 300, minFrequency: 1 });
  assert.deepEqual(overlapping.merges, [
    ['a', 'a'],
    ['aa', 'a'],
  ]);
});

/** The textbook algorithm: recount every pair after every merge. */
function referenceMerges(counts: ReadonlyMap<string, number>, n: number): string[] {
  const words = [...counts].map(([w, f]) => ({ symbols: Array.from(new TextEncoder().encode(w), (b) => BYTE_TO_UNICODE[b]!), f }));
  const merges: string[] = [];
  while (merges.length < n) {
    const pairs = new Map<string, number>();
    for (const { symbols, f } of words)
      for (let i = 0; i + 1 < symbols.length; i++) pairs.set(`${symbols[i]} ${symbols[i + 1]}`, (pairs.get(`${symbols[i]} ${symbols[i + 1]}`) ?? 0) + f);
    let best: [string, number] | undefined;
    for (const [p, c] of pairs) {
      const [l, r] = p.split(' ') as [string, string];
      const [bl, br] = (best?.[0].split(' ') ?? []) as [string, string];
      if (best === undefined || c > best[1] || (c === best[1] && (l < bl || (l === bl && r < br)))) best = [p, c];
    }
    if (best === undefined || best[1] < 2) break;
    merges.push(best[0]);
    const [a, b] = best[0].split(' ') as [string, string];
    for (const w of words) {
      const next: string[] = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i + 1 < w.symbols.length && w.symbols[i] === a && w.symbols[i + 1] === b) next.push(a + b), i++;
        else next.push(w.symbols[i]!);
      }
      w.symbols = next;
    }
  }
  return merges;
}

test('incremental pair counting learns the same merges as recounting every pair each step', () => {
  const counts = countWords(syntheticCorpus(11, 120), 'aaaa aaaaa abab ababab xyxyxy  \t\t\t\n\n\n', binaryish(3, 300));
  const fast = learnMerges(counts, { tokens: 256 + 150 }).merges.map((m) => m.join(' '));
  assert.deepEqual(fast, referenceMerges(counts, fast.length));
  assert.ok(fast.length >= 100);
});

test('a run cut to a smaller vocabulary equals a run trained to that size', () => {
  const counts = countWords(syntheticCorpus(5, 200));
  const big = learnMerges(counts, { tokens: 500 });
  const small = learnMerges(counts, { tokens: 400 });
  assert.deepEqual(truncateMerges(big, 400), small);
  assert.equal(JSON.stringify(tokenizerJson(vocabularyOf(truncateMerges(big, 400)))), JSON.stringify(tokenizerJson(vocabularyOf(small))));
});

test('tokenizer_config.json names <|endoftext|> as EOS and every special token', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bpe-cfg-'));
  writeTokenizerFiles(dir, trained);
  const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(config.eos_token, '<|endoftext|>');
  assert.equal(config.bos_token, null);
  const decoder = config.added_tokens_decoder as Record<string, { content: string; special: boolean }>;
  assert.deepEqual(
    Object.values(decoder).map((t) => t.content),
    [...KILN_SPECIAL_TOKENS],
  );
  assert.ok(Object.values(decoder).every((t) => t.special));
});

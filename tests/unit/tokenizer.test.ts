import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { BYTE_TO_UNICODE, Tokenizer, TokenTextDecoder } from '../../server/src/model/tokenizer';
import { ModelFileError } from '../../server/src/model/errors';
import { makeTinyTokenizerJson, TINY_SPECIAL_TOKENS, writeTinyTokenizer } from '../helpers/tiny-tokenizer';

const VOCAB = 300;

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'kiln-tok-'));
}

function loadTiny(seed = 0): Tokenizer {
  const dir = tempDir();
  writeTinyTokenizer(dir, { vocabSize: VOCAB, seed });
  return Tokenizer.load(dir);
}

const SAMPLES = [
  'export function add(a: number, b: number): number {\n  return a + b;\n}\n',
  'def greet(name):\n\tprint(f"héllo, {name} — ça va? 日本語 中文")\n',
  'line one\r\nline two\r\n\r\n',
  'trailing spaces   \nand\ttabs\t\t\n   \n',
  '// family: 👩‍👩‍👧‍👦 flags: 🇯🇵 skin: 👍🏽 keycap: 1️⃣ emoji 😀\n',
  'const eot = "<|endoftext|>"; // <|fim_prefix|><|fim_suffix|><|fim_middle|> <|file_sep|>',
  '\uFEFFbom at start, NUL \u0000 and DEL \u007f and   ',
  "it's won't they're I'm we'll you'd 12345 3.14159",
  '',
  ' ',
  '\n\n\n',
];

test('decode(encode(x)) === x on code, unicode, emoji, CRLF, tabs, trailing spaces and special-token text', () => {
  const tok = loadTiny();
  for (const text of SAMPLES) {
    assert.equal(tok.decode(tok.encode(text)), text, JSON.stringify(text));
  }
});

test('round trips for other seeds and sizes too', () => {
  for (const [vocabSize, seed] of [
    [263, 1],
    [512, 7],
    [2000, 3],
  ] as const) {
    const tok = Tokenizer.fromJson(makeTinyTokenizerJson({ vocabSize, seed }));
    assert.equal(tok.vocabSize, vocabSize);
    for (const text of SAMPLES) assert.equal(tok.decode(tok.encode(text)), text);
  }
});

test('encode matches the library pipeline on text without added tokens, and adds no BOS/EOS', () => {
  const json = makeTinyTokenizerJson({ vocabSize: VOCAB });
  const tok = Tokenizer.fromJson(json);
  const reference = new HfTokenizer(json, {});
  for (const text of SAMPLES.filter((s) => s.length > 0 && !s.includes('<|'))) {
    assert.deepEqual(tok.encode(text), reference.encode(text, { add_special_tokens: false }).ids);
  }
  assert.deepEqual(tok.encode(''), []);
});

test('merges learned from the corpus make common code shorter than bytes', () => {
  const tok = loadTiny();
  const text = 'return this.count;';
  assert.ok(tok.encode(text).length < new TextEncoder().encode(text).length);
});

test('special tokens: one id each via tokenToId, decode back verbatim, never produced from user text', () => {
  const tok = loadTiny();
  const specialIds = TINY_SPECIAL_TOKENS.map((t) => tok.tokenToId(t));
  assert.deepEqual(specialIds, [293, 294, 295, 296, 297, 298, 299]);
  TINY_SPECIAL_TOKENS.forEach((t, i) => {
    assert.equal(tok.idToToken(specialIds[i]!), t);
    assert.equal(tok.decode([specialIds[i]!]), t);
    const fromText = tok.encode(t);
    assert.ok(fromText.length > 1, `${t} as text is several ordinary tokens`);
    assert.ok(
      fromText.every((id) => id < 293),
      `${t} as text yields no special id`,
    );
  });
  assert.equal(tok.eosId, tok.tokenToId('<|endoftext|>'));
  assert.equal(tok.vocabSize, VOCAB);
  const mixed = [tok.tokenToId('<|fim_prefix|>')!, ...tok.encode('a = 1'), tok.eosId!];
  assert.equal(tok.decode(mixed), '<|fim_prefix|>a = 1<|endoftext|>');
});

test('decode rejects ids outside the vocabulary', () => {
  const tok = loadTiny();
  assert.throws(() => tok.decode([VOCAB]), RangeError);
  assert.throws(() => tok.decode([-1]), RangeError);
  assert.throws(() => tok.decode([1.5]), RangeError);
});

test('TokenTextDecoder holds back split UTF-8 and matches decode', () => {
  const tok = loadTiny();
  for (const text of ['👩‍👩‍👧‍👦', 'x = "😀"; // 🇯🇵 é 日本\r\n', SAMPLES[4]!]) {
    const ids = tok.encode(text);
    const dec = new TokenTextDecoder(tok);
    const pieces = ids.map((id) => dec.push(id));
    assert.ok(
      pieces.every((p) => !p.includes('\uFFFD')),
      'no replacement characters while streaming',
    );
    assert.ok(
      pieces.some((p) => p === ''),
      'some tokens end mid-character and are held back',
    );
    assert.equal(pieces.join('') + dec.flush(), tok.decode(ids));
  }
  const dec = new TokenTextDecoder(tok);
  const emoji = tok.encode('😀'); // 4 byte tokens
  assert.equal(emoji.length, 4);
  assert.equal(dec.push(emoji[0]!) + dec.push(emoji[1]!), '');
  assert.equal(dec.flush(), '\uFFFD', 'an unfinished character becomes U+FFFD only at the end');
  assert.equal(dec.push(tok.tokenToId('<|endoftext|>')!), '<|endoftext|>');
});

test('exportVocabulary lists tokens by id, types, merges and the pre-tokenizer family', () => {
  const json = makeTinyTokenizerJson({ vocabSize: VOCAB }) as { model: { merges: string[] } };
  const tok = Tokenizer.fromJson(json);
  const v = tok.exportVocabulary();
  assert.equal(v.tokens.length, VOCAB);
  assert.equal(v.model, 'bpe');
  assert.equal(v.byteLevel, true);
  assert.equal(v.preTokenizer, 'gpt-2');
  for (let b = 0; b < 256; b++) assert.equal(v.tokens[b], BYTE_TO_UNICODE[b]);
  assert.deepEqual(v.tokens.slice(293), [...TINY_SPECIAL_TOKENS]);
  assert.deepEqual(v.types.slice(293), Array(7).fill('control'));
  assert.ok(v.types.slice(0, 293).every((t) => t === 'normal'));
  assert.deepEqual(v.merges, json.model.merges);
  assert.equal(v.merges.length, VOCAB - 7 - 256);
  const padded = tok.exportVocabulary(304);
  assert.deepEqual(padded.tokens.slice(300), ['[PAD300]', '[PAD301]', '[PAD302]', '[PAD303]']);
  assert.deepEqual(padded.types.slice(300), Array(4).fill('unused'));
});

test('merges as [a, b] pairs load the same and export as "a b"', () => {
  const json = makeTinyTokenizerJson({ vocabSize: VOCAB }) as { model: { merges: unknown[] } };
  const asStrings = Tokenizer.fromJson(json);
  const pairs = structuredClone(json);
  pairs.model.merges = json.model.merges.map((m) => (m as string).split(' '));
  const asPairs = Tokenizer.fromJson(pairs);
  for (const text of SAMPLES) assert.deepEqual(asPairs.encode(text), asStrings.encode(text));
  assert.deepEqual(asPairs.exportVocabulary().merges, json.model.merges);
});

test('a Qwen2-style Split regex pre-tokenizer round-trips and is recognised', () => {
  const json = makeTinyTokenizerJson({ vocabSize: VOCAB }) as Record<string, unknown>;
  json.pre_tokenizer = {
    type: 'Sequence',
    pretokenizers: [
      {
        type: 'Split',
        pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
        behavior: 'Isolated',
        invert: false,
      },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  };
  const tok = Tokenizer.fromJson(json);
  assert.equal(tok.exportVocabulary().preTokenizer, 'qwen2');
  for (const text of SAMPLES) assert.equal(tok.decode(tok.encode(text)), text);
  // Qwen2 splits digits one by one.
  assert.equal(tok.encode('12345').length, 5);
});

test('SentencePiece-style BPE with byte fallback round-trips and streams bytes', () => {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  const pieces = ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', 'he', 'll', 'hell', 'hello', '▁w', '▁wor'];
  const merges = ['h e', 'l l', 'he ll', 'hell o', '▁ w', '▁w o', '▁wo r'];
  for (const p of pieces) vocab[p] ??= Object.keys(vocab).length;
  vocab['▁wo'] = Object.keys(vocab).length;
  const json = {
    added_tokens: [0, 1, 2].map((id) => ({ id, content: ['<unk>', '<s>', '</s>'][id], special: true })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: { type: 'BPE', unk_token: '<unk>', byte_fallback: true, fuse_unk: true, ignore_merges: false, vocab, merges },
  };
  const tok = Tokenizer.fromJson(json, { eos_token: '</s>' });
  assert.equal(tok.byteLevel, false);
  assert.equal(tok.eosId, 2);
  for (const text of ['hello world', 'hello wörld 😀 </s>', 'tabs\tand\r\nCRLF  ']) {
    const ids = tok.encode(text);
    assert.equal(tok.decode(ids), text);
    const dec = new TokenTextDecoder(tok);
    // The stream keeps the dummy prefix space that decode strips.
    assert.equal(ids.map((id) => dec.push(id)).join('') + dec.flush(), ' ' + text);
  }
  const v = tok.exportVocabulary();
  assert.equal(v.types[3 + 0x41], 'byte');
  assert.equal(v.types[1], 'control');
  assert.equal(v.types[vocab['hello']!], 'normal');
  assert.equal(v.preTokenizer, 'default');
});

test('malformed tokenizer files throw ModelFileError naming the file and the problem', () => {
  const cases: [string, string | object, RegExp][] = [
    ['invalid JSON', '{ "model": ', /not valid JSON/],
    ['not an object', '[1, 2]', /JSON object/],
    ['missing model', { added_tokens: [] }, /no "model"/],
    ['unigram', { model: { type: 'Unigram', vocab: [['a', -1]] } }, /Unigram.*not supported/],
    ['bad merges', { model: { type: 'BPE', vocab: { a: 0 }, merges: [42] } }, /merges/],
    ['bad vocab id', { model: { type: 'BPE', vocab: { a: 'zero' }, merges: [] } }, /vocabulary id/],
    ['bad added token', { model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, added_tokens: [{ content: 'x' }] }, /added_tokens/],
    ['unknown pre-tokenizer', { model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, pre_tokenizer: { type: 'Nope' } }, /cannot be loaded/],
  ];
  for (const [name, content, problem] of cases) {
    const dir = tempDir();
    const file = join(dir, 'tokenizer.json');
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
    assert.throws(
      () => Tokenizer.load(dir),
      (err: unknown) => err instanceof ModelFileError && err.file === file && problem.test(err.problem) && err.message.includes(file),
      name,
    );
  }
});

test('unreadable paths and a malformed tokenizer_config.json name their file', () => {
  const missing = join(tempDir(), 'nowhere');
  assert.throws(
    () => Tokenizer.load(missing),
    (err: unknown) => err instanceof ModelFileError && err.file === join(missing, 'tokenizer.json') && /cannot be read/.test(err.problem),
  );
  const dir = tempDir();
  mkdirSync(join(dir, 'tokenizer.json')); // a directory where the file should be
  assert.throws(
    () => Tokenizer.load(dir),
    (err: unknown) => err instanceof ModelFileError && /is not a regular file \(a folder\)/.test(err.problem),
  );
  const withBadConfig = tempDir();
  writeTinyTokenizer(withBadConfig, { vocabSize: VOCAB });
  writeFileSync(join(withBadConfig, 'tokenizer_config.json'), '{ nope');
  assert.throws(
    () => Tokenizer.load(withBadConfig),
    (err: unknown) => err instanceof ModelFileError && err.file === join(withBadConfig, 'tokenizer_config.json'),
  );
});

test('tokenizer_config.json is optional', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(makeTinyTokenizerJson({ vocabSize: VOCAB })));
  const tok = Tokenizer.load(dir);
  assert.equal(tok.eosId, tok.tokenToId('<|endoftext|>'), 'EOS falls back to a well-known name');
});

// The real Qwen2 byte-level BPE (Qwen2.5-Coder's tokenizer.json) through Kiln's tokenizer path gives
// exactly the ids of Hugging Face's Rust `tokenizers` on real source files of this repository.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveFimTemplate } from '../../server/src/model/fim';
import { Tokenizer } from '../../server/src/model/tokenizer';
import { loadHfRustTokenizer, qwen2TokenizerDir } from '../helpers/qwen2-tokenizer';

const ROOT = join(__dirname, '..', '..');

/** Real files of several kinds: TypeScript, JavaScript, Python, JSON, Markdown with box drawing and arrows. */
const SOURCE_FILES = [
  'server/src/completion/engine.ts',
  'server/src/model/safetensors.ts',
  'server/src/kvcache/kv-pool.ts',
  'scripts/test-peers.mjs',
  'tests/bench/torch_train_step.py',
  'tsconfig.json',
  'docs/ARCHITECTURE.md',
  'README.md',
];

/** Text that is not in any file above: non-Latin scripts, emoji sequences, CRLF, tabs, digit runs. */
const EXTRA_TEXT = 'def grüß(name):\r\n\tprint(f"héllo {name} — 日本語 中文 한국어 👩‍👩‍👧‍👦 🇯🇵 1️⃣")  # 1234567 3.14159\r\n   \n';

test('Kiln tokenizes real source files to the ids of Hugging Face tokenizers (Qwen2.5-Coder tokenizer.json)', async () => {
  const dir = qwen2TokenizerDir();
  const kiln = Tokenizer.load(dir);
  const hf = loadHfRustTokenizer(join(dir, 'tokenizer.json'));
  const added = kiln.addedTokens().map((t) => t.content);
  let tokens = 0;
  for (const file of SOURCE_FILES) {
    // HF matches added-token text inside input; Kiln (on purpose) does not, so the docs' mentions of
    // `<|file_sep|>` and the like are taken out: they would differ by design, not by a bug
    const text = added.reduce((t, a) => t.split(a).join(''), readFileSync(join(ROOT, file), 'utf8'));
    const ids = kiln.encode(text);
    assert.deepEqual(ids, (await hf.encode(text, null, { addSpecialTokens: false })).getIds(), file);
    assert.equal(kiln.decode(ids), text, `${file} round-trips`);
    tokens += ids.length;
  }
  assert.deepEqual(kiln.encode(EXTRA_TEXT), (await hf.encode(EXTRA_TEXT, null, { addSpecialTokens: false })).getIds());
  assert.ok(tokens > 20_000, `compared ${tokens} tokens`);
});

test("the real Qwen2 tokenizer resolves Qwen2.5-Coder's FIM template, PSM order", () => {
  const kiln = Tokenizer.load(qwen2TokenizerDir());
  const fim = resolveFimTemplate(kiln);
  assert.ok(fim);
  assert.equal(fim.family, 'qwen');
  assert.deepEqual([fim.prefixId, fim.suffixId, fim.middleId], [151_659, 151_661, 151_660]);
  assert.deepEqual(fim.orders, ['psm']);
  assert.ok(fim.stopIds.includes(151_643)); // <|endoftext|>
});

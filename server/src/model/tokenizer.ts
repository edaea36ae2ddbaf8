// The model's tokenizer: a Hugging Face `tokenizer.json` (byte-level or SentencePiece-style BPE),
// loaded with @huggingface/tokenizers and wrapped so that user text never yields control tokens.
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ModelFileError } from './errors';
import { MODEL_FILE_CAPS, pathExists, readModelJson, type ReadModelFileOptions } from './read-model-file';

/** GPT-2's bytes-to-unicode table: byte b is spelled BYTE_TO_UNICODE[b] in byte-level vocabularies. */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let shifted = 0;
  // Printable Latin-1 bytes stand for themselves; the rest move to U+0100 and up, in byte order.
  for (let b = 0; b < 256; b++) table.push(String.fromCharCode(printable(b) ? b : 256 + shifted++));
  return table;
})();

/** The inverse of BYTE_TO_UNICODE. */
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((c, b) => [c, b]));

/** GPT-2's pre-tokenizer split (contractions, letters, digits, punctuation, whitespace runs). */
export const GPT2_SPLIT_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export type TokenType = 'normal' | 'control' | 'user_defined' | 'byte' | 'unused';

/** What a GGUF writer needs to rebuild this tokenizer. */
export interface ExportedVocabulary {
  /** index = id; holes are filled with `[PAD<id>]` and typed 'unused'. */
  tokens: string[];
  types: TokenType[];
  /** "a b" pairs in rank order. */
  merges: string[];
  model: 'bpe';
  /** True for GPT-2-style byte-level vocabularies (GGUF "gpt2"), false for SentencePiece-style (GGUF "llama"). */
  byteLevel: boolean;
  /** Pre-tokenizer family: 'qwen2' | 'llama-bpe' | 'deepseek-coder' | 'starcoder' | 'gpt-2' | 'default'. */
  preTokenizer: string;
}

export interface AddedTokenInfo {
  id: number;
  content: string;
  special: boolean;
}

interface RawAddedToken {
  id: number;
  content: string;
  special?: boolean;
}

const EOS_FALLBACKS = ['<|endoftext|>', '</s>', '<｜end▁of▁sentence｜>', '<|end_of_text|>'];
const BYTE_FALLBACK_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;
const utf8 = new TextEncoder();

export class Tokenizer {
  readonly vocabSize: number;
  readonly eosId: number | undefined;
  /** True when tokens spell bytes through BYTE_TO_UNICODE (GPT-2 style). */
  readonly byteLevel: boolean;
  private readonly added = new Map<number, AddedTokenInfo>();
  private readonly bytesCache = new Map<number, Uint8Array>();

  private constructor(
    private readonly hf: HfTokenizer,
    private readonly json: Record<string, unknown>,
    config: Record<string, unknown>,
  ) {
    for (const t of json.added_tokens as RawAddedToken[]) {
      this.added.set(t.id, { id: t.id, content: t.content, special: t.special === true });
    }
    this.vocabSize = (hf.model as { vocab: unknown[] }).vocab.length;
    this.byteLevel = mentionsType(json.decoder, 'ByteLevel') || mentionsType(json.pre_tokenizer, 'ByteLevel');
    this.eosId = this.resolveEos(config.eos_token);
  }

  /** Loads `tokenizer.json` (and `tokenizer_config.json` when present) from a model folder. */
  static load(dir: string): Tokenizer {
    const file = join(dir, 'tokenizer.json');
    const json = readJsonObject(file, { maxBytes: MODEL_FILE_CAPS.tokenizer });
    const configFile = join(dir, 'tokenizer_config.json');
    const config = pathExists(configFile) ? readJsonObject(configFile, { maxBytes: MODEL_FILE_CAPS.tokenizerConfig }) : {};
    return Tokenizer.fromJson(json, config, file);
  }

  /**
   * `load` in three steps with a turn of the event loop between them (read and parse, checks, the
   * library's build), for a thread that serves requests: a 151,936-token vocabulary takes ~0.9 s to
   * load here, which in one block would hold every request queued behind it (now ~0.35 s at most).
   */
  static async loadInSteps(dir: string): Promise<Tokenizer> {
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    const file = join(dir, 'tokenizer.json');
    const json = readJsonObject(file, { maxBytes: MODEL_FILE_CAPS.tokenizer });
    const configFile = join(dir, 'tokenizer_config.json');
    const config = pathExists(configFile) ? readJsonObject(configFile, { maxBytes: MODEL_FILE_CAPS.tokenizerConfig }) : {};
    await turn();
    const checked = validateTokenizerJson(json, file);
    await turn();
    return Tokenizer.fromChecked(checked, config, file);
  }

  /** Builds a tokenizer from already-parsed JSON; `source` names the file in errors. */
  static fromJson(json: unknown, config: unknown = {}, source = 'tokenizer.json'): Tokenizer {
    return Tokenizer.fromChecked(validateTokenizerJson(json, source), config, source);
  }

  private static fromChecked(checked: Record<string, unknown>, config: unknown, source: string): Tokenizer {
    const cfg = isObject(config) ? config : {};
    try {
      // The library wants every component key present (null when absent) and a config object.
      return new Tokenizer(new HfTokenizer(checked, cfg), checked, cfg);
    } catch (err) {
      if (err instanceof ModelFileError) throw err;
      throw new ModelFileError(source, `cannot be loaded: ${(err as Error).message}`);
    }
  }

  /**
   * Raw text to ids: no BOS/EOS, and added-token text (e.g. a literal "<|endoftext|>" in a source
   * file) is tokenized as ordinary text. The library always matches added tokens in text, so this
   * runs its normalizer, pre-tokenizer and BPE model directly and skips that step (and the
   * post-processor, which would add BOS).
   */
  encode(text: string): number[] {
    if (text.length === 0) return [];
    const hf = this.hf;
    const normalized = hf.normalizer ? hf.normalizer(text) : text;
    const words = hf.pre_tokenizer ? hf.pre_tokenizer(normalized, { section_index: 0 }) : [normalized];
    const model = hf.model!;
    return model(words).map((token) => {
      const id = model.tokens_to_ids.get(token);
      if (id === undefined) throw new Error(`tokenizer produced a token outside its vocabulary: ${JSON.stringify(token)}`);
      return id;
    });
  }

  /** Ids to text, special tokens included verbatim and no clean-up of spaces (code must round-trip). */
  decode(ids: readonly number[]): string {
    if (ids.length === 0) return '';
    for (const id of ids) this.checkId(id);
    return this.hf.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** Tokens from `added_tokens` (control and user-defined), in id order. */
  addedTokens(): AddedTokenInfo[] {
    return [...this.added.values()].sort((a, b) => a.id - b.id);
  }

  /** True for added tokens marked special, and for `<|…|>` / `<｜…｜>` added tokens some models leave unmarked. */
  isControl(id: number): boolean {
    const t = this.added.get(id);
    return t !== undefined && (t.special || looksLikeControl(t.content));
  }

  /** The UTF-8 bytes this token stands for (what the incremental decoder concatenates). */
  tokenBytes(id: number): Uint8Array {
    const cached = this.bytesCache.get(id);
    if (cached) return cached;
    const token = this.checkId(id);
    let bytes: Uint8Array;
    const byteFallback = BYTE_FALLBACK_TOKEN.exec(token);
    if (this.added.has(id)) {
      bytes = utf8.encode(token);
    } else if (this.byteLevel) {
      bytes = Uint8Array.from(Array.from(token, (c) => UNICODE_TO_BYTE.get(c) ?? 0x3f));
    } else if (byteFallback) {
      bytes = Uint8Array.of(parseInt(byteFallback[1]!, 16));
    } else {
      bytes = utf8.encode(token.replaceAll('\u2581', ' ')); // SentencePiece spells spaces as '▁'
    }
    this.bytesCache.set(id, bytes);
    return bytes;
  }

  exportVocabulary(padTo = this.vocabSize): ExportedVocabulary {
    const tokens: string[] = [];
    const types: TokenType[] = [];
    for (let id = 0; id < Math.max(padTo, this.vocabSize); id++) {
      const token = this.hf.id_to_token(id);
      if (token === undefined) {
        tokens.push(`[PAD${id}]`);
        types.push('unused');
        continue;
      }
      tokens.push(token);
      if (this.added.has(id)) types.push(this.isControl(id) ? 'control' : 'user_defined');
      else if (!this.byteLevel && BYTE_FALLBACK_TOKEN.test(token)) types.push('byte');
      else types.push('normal');
    }
    const model = this.json.model as { merges: (string | [string, string])[] };
    const merges = model.merges.map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`));
    return { tokens, types, merges, model: 'bpe', byteLevel: this.byteLevel, preTokenizer: preTokenizerFamily(this.json.pre_tokenizer) };
  }

  private checkId(id: number): string {
    const token = Number.isInteger(id) ? this.hf.id_to_token(id) : undefined;
    if (token === undefined) throw new RangeError(`token id ${id} is not in the vocabulary (size ${this.vocabSize})`);
    return token;
  }

  private resolveEos(configured: unknown): number | undefined {
    const named = typeof configured === 'string' ? configured : isObject(configured) ? configured.content : undefined;
    if (typeof named === 'string') return this.tokenToId(named);
    for (const candidate of EOS_FALLBACKS) {
      const id = this.tokenToId(candidate);
      if (id !== undefined) return id;
    }
    return undefined;
  }
}

/**
 * Turns ids into text one token at a time for streaming. A token can end in the middle of a UTF-8
 * character (emoji are often split across byte tokens); those bytes are held back until complete.
 * It never strips a leading space, unlike `decode` on SentencePiece tokenizers: it decodes continuations.
 */
export class TokenTextDecoder {
  private decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

  constructor(private readonly tokenizer: Tokenizer) {}

  /** The text completed by this token (may be '' while a character is incomplete). */
  push(id: number): string {
    return this.decoder.decode(this.tokenizer.tokenBytes(id), { stream: true });
  }

  /** Ends the stream: any incomplete character left becomes U+FFFD. */
  flush(): string {
    const rest = this.decoder.decode();
    this.reset();
    return rest;
  }

  reset(): void {
    this.decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  }
}

/**
 * Checks, without building the tokenizer, that every id it can produce has a row in the model's
 * embedding (`vocabSize`, config.json's vocab_size). Run in the model worker before the server
 * thread loads the tokenizer: that load is bounded by real vocabulary sizes only once this holds.
 */
export function checkTokenizerFitsModel(dir: string, vocabSize: number): void {
  const file = join(dir, 'tokenizer.json');
  const json = validateTokenizerJson(readJsonObject(file, { maxBytes: MODEL_FILE_CAPS.tokenizer }), file);
  const model = json.model as { vocab: Record<string, number>; merges: unknown[] };
  const added = json.added_tokens as { id: number }[];
  let maxId = -1;
  for (const id of Object.values(model.vocab)) maxId = Math.max(maxId, id);
  for (const t of added) maxId = Math.max(maxId, t.id);
  if (maxId >= vocabSize) throw new ModelFileError(file, `has token id ${maxId}, but the model's vocab_size is ${vocabSize} (config.json): its embedding has no row for it`);
  // BPE learns one merge per vocabulary entry; far more merges than that is not a real tokenizer
  if (model.merges.length > 2 * vocabSize) throw new ModelFileError(file, `has ${model.merges.length} merges for a vocabulary of ${vocabSize}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A bounded read of a regular file (see read-model-file.ts), parsed, and an object at the top. */
function readJsonObject(file: string, limits: ReadModelFileOptions): Record<string, unknown> {
  const parsed = readModelJson(file, { ...limits, missing: 'cannot be read: not found', invalid: 'is not valid JSON' });
  if (!isObject(parsed)) throw new ModelFileError(file, 'must contain a JSON object');
  return parsed;
}

/** Checks the parts Kiln relies on and fills the component keys the library insists on. */
function validateTokenizerJson(json: unknown, file: string): Record<string, unknown> {
  if (!isObject(json)) throw new ModelFileError(file, 'must contain a JSON object');
  const model = json.model;
  if (!isObject(model)) throw new ModelFileError(file, 'has no "model" object');
  if (model.type !== 'BPE') {
    throw new ModelFileError(file, `model type ${JSON.stringify(model.type ?? null)} is not supported (Kiln supports BPE tokenizers)`);
  }
  if (!isObject(model.vocab)) throw new ModelFileError(file, '"model.vocab" must be an object of token → id');
  for (const [token, id] of Object.entries(model.vocab)) {
    if (!Number.isInteger(id) || (id as number) < 0) throw new ModelFileError(file, `vocabulary id of ${JSON.stringify(token)} is not a non-negative integer`);
  }
  const merges = model.merges ?? [];
  const mergeOk = (m: unknown) => (typeof m === 'string' && m.includes(' ')) || (Array.isArray(m) && m.length === 2 && m.every((s) => typeof s === 'string'));
  if (!Array.isArray(merges) || !merges.every(mergeOk)) {
    throw new ModelFileError(file, '"model.merges" must be a list of "a b" strings or [a, b] pairs');
  }
  const added = json.added_tokens ?? [];
  const addedOk = (t: unknown) => isObject(t) && Number.isInteger(t.id) && (t.id as number) >= 0 && typeof t.content === 'string';
  if (!Array.isArray(added) || !added.every(addedOk)) {
    throw new ModelFileError(file, '"added_tokens" must be a list of { id, content } objects');
  }
  const out: Record<string, unknown> = { ...json, model: { ...model, merges }, added_tokens: added };
  for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) out[key] ??= null;
  return out;
}

function looksLikeControl(content: string): boolean {
  return (content.startsWith('<|') && content.endsWith('|>')) || (content.startsWith('<｜') && content.endsWith('｜>'));
}

/** True when a component (or any member of a Sequence) has this type. */
function mentionsType(component: unknown, type: string): boolean {
  return flatten(component).some((c) => c.type === type);
}

function flatten(component: unknown): Record<string, unknown>[] {
  if (!isObject(component)) return [];
  const members = component.pretokenizers ?? component.decoders ?? component.normalizers;
  return Array.isArray(members) ? members.flatMap(flatten) : [component];
}

/** Names the pre-tokenizer regex family (llama.cpp's `tokenizer.ggml.pre` spelling) from its parts. */
function preTokenizerFamily(preTokenizer: unknown): string {
  const parts = flatten(preTokenizer);
  const regexes = parts.flatMap((p) => (p.type === 'Split' && isObject(p.pattern) && typeof p.pattern.Regex === 'string' ? [p.pattern.Regex] : []));
  const individualDigits = parts.some((p) => p.type === 'Digits' && p.individual_digits === true);
  const gpt2Regex = parts.some((p) => p.type === 'ByteLevel' && p.use_regex !== false);
  if (regexes.some((r) => r.includes('\\p{N}{1,3}'))) return 'llama-bpe';
  if (regexes.some((r) => r.includes('[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|'))) return 'qwen2';
  if (regexes.includes('[\\r\\n]') && regexes.includes('\\s?\\p{L}+')) return 'deepseek-coder';
  if (individualDigits && gpt2Regex) return 'starcoder';
  if (gpt2Regex && parts.length === 1) return 'gpt-2';
  return 'default';
}

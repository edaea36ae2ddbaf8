// Fill-in-the-middle templates, resolved per model family from the tokenizer's special tokens.

/** PSM: prefix, suffix, then middle. SPM: suffix first, so the prefix (the cursor) comes last. */
export type FimOrder = 'psm' | 'spm';

export interface FimTemplate {
  /** 'qwen' | 'starcoder' | 'deepseek' | 'codellama'. */
  family: string;
  prefixId: number;
  suffixId: number;
  middleId: number;
  /** Ids that end a completion: end-of-text, file separators, and any FIM marker the model emits. */
  stopIds: number[];
  fileSepId?: number;
  repoNameId?: number;
  padId?: number;
  /** Set where the family's reference prompts start with BOS (CodeLlama, DeepSeek-Coder). */
  bosId?: number;
  /** Orders the family was published as trained on, the documented one first. */
  orders: readonly FimOrder[];
}

/** What resolving a template needs from a tokenizer (model/tokenizer.ts's Tokenizer fits). */
export interface SpecialTokenLookup {
  tokenToId(token: string): number | undefined;
  readonly eosId?: number | undefined;
}

interface FamilySpec {
  family: string;
  /** Alternative spellings of [prefix, suffix, middle]; the first complete one wins. */
  markers: readonly (readonly [string, string, string])[];
  fileSep?: readonly string[];
  repoName?: readonly string[];
  pad?: readonly string[];
  bos?: readonly string[];
  /** Extra stop tokens beyond the markers above and the tokenizer's EOS. */
  stops: readonly string[];
  orders: readonly FimOrder[];
}

// Orders: StarCoder and CodeLlama trained on both (half the FIM samples SPM); the Qwen2.5-Coder and
// DeepSeek-Coder reports and model cards describe PSM only.
const FAMILIES: readonly FamilySpec[] = [
  {
    family: 'qwen',
    markers: [['<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>']],
    fileSep: ['<|file_sep|>', '<|file_separator|>'],
    repoName: ['<|repo_name|>'],
    pad: ['<|fim_pad|>'],
    stops: ['<|endoftext|>', '<|im_end|>'],
    orders: ['psm'],
  },
  {
    family: 'starcoder',
    markers: [
      ['<fim_prefix>', '<fim_suffix>', '<fim_middle>'],
      ['<fim-prefix>', '<fim-suffix>', '<fim-middle>'], // SantaCoder's spelling
    ],
    fileSep: ['<file_sep>'],
    repoName: ['<repo_name>', '<reponame>'],
    pad: ['<fim_pad>', '<fim-pad>'],
    stops: ['<|endoftext|>'],
    orders: ['psm', 'spm'],
  },
  {
    family: 'deepseek',
    // Fullwidth vertical bar U+FF5C and lower one-eighth block U+2581, as in DeepSeek's vocabulary.
    markers: [['<\uFF5Cfim\u2581begin\uFF5C>', '<\uFF5Cfim\u2581hole\uFF5C>', '<\uFF5Cfim\u2581end\uFF5C>']],
    bos: ['<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>'],
    stops: ['<\uFF5Cend\u2581of\u2581sentence\uFF5C>', '<|EOT|>'],
    orders: ['psm'],
  },
  {
    family: 'codellama',
    markers: [['\u2581<PRE>', '\u2581<SUF>', '\u2581<MID>']],
    bos: ['<s>'],
    stops: ['\u2581<EOT>', '</s>'],
    orders: ['psm', 'spm'],
  },
];

/** The FIM template for this tokenizer's family, or undefined when it has no FIM tokens. */
export function resolveFimTemplate(tokenizer: SpecialTokenLookup): FimTemplate | undefined {
  const idOf = (names: readonly string[] | undefined) => {
    for (const name of names ?? []) {
      const id = tokenizer.tokenToId(name);
      if (id !== undefined) return id;
    }
    return undefined;
  };
  for (const spec of FAMILIES) {
    for (const [pre, suf, mid] of spec.markers) {
      const prefixId = tokenizer.tokenToId(pre);
      const suffixId = tokenizer.tokenToId(suf);
      const middleId = tokenizer.tokenToId(mid);
      if (prefixId === undefined || suffixId === undefined || middleId === undefined) continue;
      const template: FimTemplate = { family: spec.family, prefixId, suffixId, middleId, stopIds: [], orders: spec.orders };
      const fileSepId = idOf(spec.fileSep);
      const repoNameId = idOf(spec.repoName);
      const padId = idOf(spec.pad);
      const bosId = idOf(spec.bos);
      if (fileSepId !== undefined) template.fileSepId = fileSepId;
      if (repoNameId !== undefined) template.repoNameId = repoNameId;
      if (padId !== undefined) template.padId = padId;
      if (bosId !== undefined) template.bosId = bosId;
      const stops = [...spec.stops.map((s) => tokenizer.tokenToId(s)), tokenizer.eosId, fileSepId, repoNameId, padId, prefixId, suffixId, middleId];
      template.stopIds = [...new Set(stops.filter((id): id is number => id !== undefined))];
      return template;
    }
  }
  return undefined;
}

/**
 * The prompt's token ids; the model generates the middle after the last id.
 *
 *   psm: [bos] <pre> prefix <suf> suffix <mid>
 *   spm: [bos] <pre> <suf> suffix <mid> prefix
 *
 * The SPM arrangement is the "SPM variant 2" of Bavarian et al. (2022) used by bigcode's Megatron-LM
 * (StarCoder, StarCoder2: `[prefix_tok, suffix_tok] suffix [middle_tok] prefix middle`) and by
 * CodeLlama's suffix-first infilling (`<PRE> <SUF>{suf} <MID> {pre}`). Qwen2.5-Coder and DeepSeek-Coder
 * document PSM only; for them SPM follows the same layout. Its property Kiln relies on: the prefix
 * comes last, so a keystroke at the cursor only appends tokens and the KV cache of the rest stays valid.
 *
 * Ids are taken as given: any family-specific text convention (CodeLlama's leading space before the
 * prefix, no dummy space before the suffix) belongs to whoever encodes the text.
 */
export function buildFimPrompt(template: FimTemplate, prefixIds: readonly number[], suffixIds: readonly number[], order: FimOrder): number[] {
  const head = template.bosId === undefined ? [] : [template.bosId];
  if (order === 'psm') {
    return [...head, template.prefixId, ...prefixIds, template.suffixId, ...suffixIds, template.middleId];
  }
  return [...head, template.prefixId, template.suffixId, ...suffixIds, template.middleId, ...prefixIds];
}

/**
 * A FIM prompt with a context block (snippets of other files, context/block.ts) in front of it,
 * after BOS where the family has one: `[bos] context <pre> …`. The block comes first so that it,
 * like the suffix in SPM order, is a stable token prefix the KV cache keeps across keystrokes.
 */
export function withContextBlock(template: FimTemplate, context: readonly number[], fimIds: number[]): number[] {
  if (context.length === 0) return fimIds;
  const head = template.bosId === undefined ? 0 : 1;
  return [...fimIds.slice(0, head), ...context, ...fimIds.slice(head)];
}

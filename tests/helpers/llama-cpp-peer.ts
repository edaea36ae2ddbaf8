// llama.cpp as an independent peer, through node-llama-cpp 3.21.1 installed only under tests/peers
// (a separate package, so the extension never depends on it). It is ESM: loaded by dynamic import of
// the resolved file URL. CPU only, never compiled here (`build: 'never'`).
import { createRequire } from 'node:module';
import { join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';

const PEERS_DIR = join(__dirname, '..', 'peers');
const INSTALL_HINT = 'run `npm ci --omit=optional --prefix tests/peers` to install it';

// The subset of node-llama-cpp's API used here (its own .d.ts lives outside this project's typecheck).
interface PeerSequence {
  /**
   * Evaluates the tokens; for items given as [token, { generateNext: { probabilities: true } }] the
   * output at that index has `next.probabilities`: a Map token -> probability holding EVERY vocabulary
   * entry (n_vocab of them), sorted by probability. The addon computes it as a float32 softmax of the raw
   * logits row after the sampler chain; with temperature 0 the chain is only the greedy picker, which
   * changes no logit, so this is softmax(logits) over the full vocabulary.
   */
  controlledEvaluate(
    input: Array<number | [number, { generateNext?: { probabilities?: boolean; options?: { temperature?: number } } }]>,
  ): Promise<Array<undefined | { next: { probabilities?: Map<number, number> } }>>;
}
interface PeerContext {
  getSequence(): PeerSequence;
  dispose(): Promise<void>;
}
export interface PeerModel {
  /** node-llama-cpp's own parse of the GGUF header (an independent reader of what we wrote). */
  readonly fileInfo: { metadata: { tokenizer?: { ggml?: { tokens?: readonly string[] } } } };
  readonly tokens: { readonly bos: number | null; readonly eos: number | null };
  tokenize(text: string, specialTokens?: boolean): number[];
  detokenize(tokens: readonly number[], specialTokens?: boolean): string;
  createContext(options: Record<string, unknown>): Promise<PeerContext>;
  dispose(): Promise<void>;
}
interface PeerLlama {
  loadModel(options: { modelPath: string; gpuLayers?: number; vocabOnly?: boolean }): Promise<PeerModel>;
}
interface PeerModule {
  getLlama(options: Record<string, unknown>): Promise<PeerLlama>;
  LlamaLogLevel: Record<string, string>;
}

let llamaPromise: Promise<PeerLlama> | undefined;

/** Resolves node-llama-cpp from tests/peers, or fails with how to install it (never a silent skip). */
async function loadPeer(): Promise<PeerLlama> {
  let entry: string | undefined;
  try {
    entry = createRequire(join(PEERS_DIR, 'package.json')).resolve('node-llama-cpp');
  } catch {
    entry = undefined;
  }
  // resolution walks up the tree: only the pinned copy under tests/peers counts
  if (!entry || !entry.startsWith(join(PEERS_DIR, 'node_modules') + sep)) {
    throw new Error(`node-llama-cpp (the llama.cpp peer) is not installed in tests/peers: ${INSTALL_HINT}`);
  }
  const mod = (await import(pathToFileURL(entry).href)) as PeerModule;
  try {
    // one Llama per process: it owns the native backend; models and contexts are disposed per call
    return await mod.getLlama({ gpu: false, build: 'never', logLevel: mod.LlamaLogLevel.error ?? 'error' });
  } catch (err) {
    throw new Error(`node-llama-cpp could not load its prebuilt CPU binary (${(err as Error).message}); ${INSTALL_HINT}`);
  }
}

export function getPeerLlama(): Promise<PeerLlama> {
  llamaPromise ??= loadPeer();
  return llamaPromise;
}

/** Loads a GGUF (or only its vocabulary), runs `fn`, and disposes the model whatever happens. */
export async function withLlamaCppModel<T>(ggufPath: string, fn: (model: PeerModel) => Promise<T>, options: { vocabOnly?: boolean } = {}): Promise<T> {
  const llama = await getPeerLlama();
  const model = await llama.loadModel({ modelPath: ggufPath, gpuLayers: 0, vocabOnly: options.vocabOnly ?? false });
  try {
    return await fn(model);
  } finally {
    await model.dispose();
  }
}

/**
 * Natural-log probabilities of the next token after each position of `tokens` (row t predicts
 * tokens[t + 1]), each row covering all n_vocab entries: [T][V]. F32 KV cache so only the weights'
 * own precision differs from a float64 reference.
 */
export async function llamaCppLogprobs(ggufPath: string, tokens: readonly number[]): Promise<Float64Array[]> {
  if (tokens.length === 0) return [];
  return withLlamaCppModel(ggufPath, async (model) => {
    const nVocab = model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length;
    if (!nVocab) throw new Error(`${ggufPath}: no tokenizer.ggml.tokens, cannot size the probability rows`);
    const context = await model.createContext({
      contextSize: Math.max(64, tokens.length + 8),
      batchSize: Math.max(64, tokens.length),
      sequences: 1,
      threads: 2,
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
    });
    try {
      const sequence = context.getSequence();
      const out = await sequence.controlledEvaluate(
        tokens.map(
          (t) =>
            [t, { generateNext: { probabilities: true, options: { temperature: 0 } } }] as [number, { generateNext: { probabilities: boolean; options: { temperature: number } } }],
        ),
      );
      return tokens.map((_, i) => {
        const probs = out[i]?.next.probabilities;
        if (!probs) throw new Error(`llama.cpp returned no probabilities for position ${i}`);
        if (probs.size !== nVocab) throw new Error(`llama.cpp returned ${probs.size} probabilities at position ${i}, expected all ${nVocab}`);
        const row = new Float64Array(nVocab).fill(NaN); // NaN marks an id llama.cpp did not return
        for (const [id, p] of probs) row[id] = Math.log(p); // p is float32; log(0) = -Infinity is kept visible
        if (row.some(Number.isNaN)) throw new Error(`llama.cpp probabilities at position ${i} do not cover ids 0..${nVocab - 1}`);
        return row;
      });
    } finally {
      await context.dispose();
    }
  });
}

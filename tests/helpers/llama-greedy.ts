// llama.cpp (node-llama-cpp, CPU, F32 KV cache) as the generation engine behind the fake inference
// server: greedy tokens of a prompt, reusing the sequence's common token prefix between requests as
// llama-server's `cache_prompt` does, one request at a time (one sequence). Also the reference the
// tests compare with: `greedyText` is llama.cpp's own greedy continuation of a prompt.
import { getPeerLlama, type PeerModel } from './llama-cpp-peer';
import type { FakeEngine } from './fake-inference-server';

// node-llama-cpp's API beyond llama-cpp-peer.ts's subset (its .d.ts is outside the typecheck)
interface GreedySequence {
  readonly nextTokenIndex: number;
  adaptStateToTokens(tokens: number[], allowShift: boolean): Promise<void>;
  eraseContextTokenRanges(ranges: { start: number; end: number }[]): Promise<void>;
  evaluate(tokens: number[], options: { temperature: number; yieldEogToken: boolean }): AsyncGenerator<number, void, void | number>;
}
interface GreedyModel extends PeerModel {
  isSpecialToken(token: number | undefined): boolean;
  isEogToken(token: number | undefined): boolean;
}
interface GreedyContext {
  getSequence(): GreedySequence;
  dispose(): Promise<void>;
}

/** The special token spellings of the FIM template the tiny test models use (Qwen2.5-Coder's). */
const FIM = { prefix: '<|fim_prefix|>', suffix: '<|fim_suffix|>', middle: '<|fim_middle|>', fileSep: '<|file_sep|>' };

export class LlamaGreedy implements FakeEngine {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly model: GreedyModel,
    private readonly context: GreedyContext,
    private readonly sequence: GreedySequence,
  ) {}

  static async load(ggufPath: string, contextSize = 2048): Promise<LlamaGreedy> {
    const llama = await getPeerLlama();
    const model = (await llama.loadModel({ modelPath: ggufPath, gpuLayers: 0 })) as GreedyModel;
    const context = (await model.createContext({
      contextSize,
      sequences: 1,
      threads: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
    })) as unknown as GreedyContext;
    return new LlamaGreedy(model, context, context.getSequence());
  }

  tokenizePrompt(text: string): number[] {
    return this.model.tokenize(text, true);
  }

  /** README, /infill: without FIM_REP/FIM_SEP use, extra context goes first, then PRE prefix SUF suffix MID prompt. */
  infillTokens(prefix: string, suffix: string, extra: { filename: string; text: string }[], prompt: string): number[] {
    const special = (s: string) => this.model.tokenize(s, true);
    const plain = (s: string) => (s === '' ? [] : this.model.tokenize(s, false));
    const context = extra.flatMap((e) => [...special(FIM.fileSep), ...plain(`${e.filename}\n${e.text}`)]);
    return [...context, ...special(FIM.prefix), ...plain(prefix), ...special(FIM.suffix), ...plain(suffix), ...special(FIM.middle), ...plain(prompt)];
  }

  /** Greedy pieces; a special token (end of text, a FIM marker, a file separator) ends the completion. */
  async *generate(tokens: number[], options: { maxTokens: number; signal: AbortSignal }): AsyncGenerator<string> {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const previous = this.queue;
    this.queue = previous.then(() => mine);
    await previous;
    try {
      const seq = this.sequence;
      await seq.adaptStateToTokens([...tokens], false);
      if (seq.nextTokenIndex >= tokens.length) await seq.eraseContextTokenRanges([{ start: tokens.length - 1, end: seq.nextTokenIndex }]);
      const stream = seq.evaluate(tokens.slice(seq.nextTokenIndex), { temperature: 0, yieldEogToken: true });
      const out: number[] = [];
      let shown = '';
      try {
        while (out.length < options.maxTokens && !options.signal.aborted) {
          const next = await stream.next();
          if (next.done || this.model.isEogToken(next.value) || this.model.isSpecialToken(next.value)) break;
          out.push(next.value);
          const text = this.model.detokenize(out, false);
          if (text.endsWith('\uFFFD')) continue; // a UTF-8 sequence split across tokens: wait for its end
          const piece = text.slice(shown.length);
          shown = text;
          yield piece;
        }
      } finally {
        await stream.return(undefined);
      }
    } finally {
      release();
    }
  }

  /** llama.cpp's greedy continuation of `text` (special tokens parsed), up to `maxTokens` tokens. */
  async greedyText(text: string, maxTokens: number): Promise<string> {
    let out = '';
    for await (const piece of this.generate(this.tokenizePrompt(text), { maxTokens, signal: new AbortController().signal })) out += piece;
    return out;
  }

  async dispose(): Promise<void> {
    await this.queue.catch(() => {});
    await this.context.dispose();
    await this.model.dispose();
  }
}

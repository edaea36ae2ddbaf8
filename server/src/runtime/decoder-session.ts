// The generation primitives over one ORT session: prefill S tokens onto a KV state, decode one
// token, and the forward step both are made of. Each step feeds the state's buffers as the past (in
// the layout attention reads, padding masked) and fetches back only the S new positions, so a
// decode step never copies or transposes the whole cache. Calls are
// serialised by their owner (the inference server); the session itself keeps no "busy" state.
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../model/config';
import { DecoderIO } from '../model/graph/decoder';
import type { ExecutionProvider } from './execution-provider';
import type { KvBuffers } from '../kvcache/kv-layout';
import { KvState } from '../kvcache/kv-state';
import { type MemoryReport, nvidiaProcessVram } from './memory';

export type LogitsWanted = 'last' | 'all';

export interface ForwardResult {
  /** [B, K, V] with K = 1 for 'last' and S for 'all'. */
  logits: Float32Array;
  positions: number;
}

/**
 * What a DecoderSession needs of an ORT session; tests wrap it (e.g. to count `run` calls). `lent`
 * names the KV buffers among the feeds that the runner may move elsewhere for the run (a session in a
 * worker thread takes them without a copy): when the run settles, each entry's `key` and `value`
 * are arrays with the same contents, possibly new objects, which the owner reads from then on.
 */
export interface SessionRunner {
  run(feeds: Record<string, ort.Tensor>, lent?: readonly KvBuffers[]): Promise<Record<string, ort.OnnxValue>>;
  release(): Promise<void>;
}

/** An ORT session in this thread as a runner (its own `run` takes fetches second, not lent buffers). */
export function threadRunner(session: ort.InferenceSession): SessionRunner {
  return { run: (feeds) => session.run(feeds), release: () => session.release() };
}

/** One forward over B rows of padded past: the inputs of `DecoderSession.run`. */
export interface RowsInput {
  /**
   * Per layer, keys [B, Hkv, D, P] and values [B, Hkv, P, D]; row b's first `pastLengths[b]` positions
   * are valid. Lent to the runner for the run (see SessionRunner): the owner reads them afresh after.
   */
  past: KvBuffers[];
  /** P, the padded past length (capacity) every row of `past` has. */
  paddedLength: number;
  pastLengths: readonly number[];
  /** [B][S] token ids, S equal for every row. */
  tokens: readonly (readonly number[])[];
  wanted: LogitsWanted;
}

export interface RowsOutput extends ForwardResult {
  /** Per layer, the new positions' keys and values [B, S, kvDim]. */
  newKeys: Float32Array[];
  newValues: Float32Array[];
}

export class DecoderSession {
  private readonly states = new Set<WeakRef<KvState>>();

  constructor(
    private readonly runner: SessionRunner,
    readonly config: ModelConfig,
    readonly provider: ExecutionProvider,
    readonly weightBytes: number,
  ) {}

  /** The same model over a wrapped runner (e.g. one that counts runs); shares the ORT session. */
  wrap(wrapper: (inner: SessionRunner) => SessionRunner): DecoderSession {
    return new DecoderSession(wrapper(this.runner), this.config, this.provider, this.weightBytes);
  }

  /** An empty KV state for `batch` sequences decoded together. */
  newState(batch = 1, capacity?: number): KvState {
    const state = new KvState({ numLayers: this.config.numLayers, heads: this.config.numKvHeads, kvDim: this.config.numKvHeads * this.config.headDim }, batch, capacity);
    this.track(state);
    return state;
  }

  /** Registers a state made elsewhere (slice, broadcast) so memory accounting sees it. */
  track(state: KvState): KvState {
    this.states.add(new WeakRef(state));
    return state;
  }

  /** Bytes held by KV states still alive. */
  kvBytes(): number {
    let total = 0;
    for (const ref of this.states) {
      const s = ref.deref();
      if (s) total += s.bytes;
      else this.states.delete(ref);
    }
    return total;
  }

  /** Runs `tokens` ([B][S]) on top of `state`, appends their KV, returns the wanted logits. */
  async forward(state: KvState, tokens: number[][], wanted: LogitsWanted = 'last'): Promise<ForwardResult> {
    if (tokens.length !== state.batch) throw new Error(`forward: ${tokens.length} token rows for a KV state of batch ${state.batch}`);
    const past = Array.from({ length: this.config.numLayers }, (_, l) => state.past(l));
    const out = await this.run({ past, paddedLength: state.paddedLength, pastLengths: Array<number>(state.batch).fill(state.length), tokens, wanted });
    state.append(tokens, out.newKeys, out.newValues);
    return { logits: out.logits, positions: out.positions };
  }

  /**
   * One session run over padded rows; appends nothing (the caller owns the KV). The past goes in as
   * the caller's buffers (no copy); only the new rows and the wanted logits come back.
   */
  async run(input: RowsInput): Promise<RowsOutput> {
    const { tokens, pastLengths, paddedLength: P, wanted } = input;
    const B = tokens.length;
    const S = tokens[0]?.length ?? 0;
    const c = this.config;
    if (S === 0 || tokens.some((row) => row.length !== S)) throw new Error('forward: token rows must be non-empty and of equal length');
    if (pastLengths.length !== B || pastLengths.some((n) => !(Number.isInteger(n) && n >= 0 && n <= P))) throw new Error(`forward: ${B} rows need past lengths within 0..${P}`);
    const longest = Math.max(...pastLengths) + S;
    if (longest > c.maxPositions) throw new RangeError(`context of ${longest} tokens exceeds the model's ${c.maxPositions} positions`);
    for (const row of tokens)
      for (const t of row) if (!Number.isInteger(t) || t < 0 || t >= c.vocabSize) throw new RangeError(`token id ${t} is outside the vocabulary (0..${c.vocabSize - 1})`);
    const feeds: Record<string, ort.Tensor> = {
      [DecoderIO.inputIds]: new ort.Tensor('int64', BigInt64Array.from(tokens.flat(), BigInt), [B, S]),
      [DecoderIO.logitsIndex]:
        wanted === 'last'
          ? new ort.Tensor('int64', BigInt64Array.of(BigInt(S - 1)), [1])
          : new ort.Tensor(
              'int64',
              BigInt64Array.from({ length: S }, (_, i) => BigInt(i)),
              [S],
            ),
      [DecoderIO.pastLengths]: new ort.Tensor('int64', BigInt64Array.from(pastLengths, BigInt), [B]),
    };
    for (let l = 0; l < c.numLayers; l++) {
      feeds[DecoderIO.pastKey(l)] = new ort.Tensor('float32', input.past[l]!.key, [B, c.numKvHeads, c.headDim, P]);
      feeds[DecoderIO.pastValue(l)] = new ort.Tensor('float32', input.past[l]!.value, [B, c.numKvHeads, P, c.headDim]);
    }
    const out = await this.runner.run(feeds, input.past);
    const newKeys: Float32Array[] = [];
    const newValues: Float32Array[] = [];
    for (let l = 0; l < c.numLayers; l++) {
      newKeys.push((out[DecoderIO.newKey(l)] as ort.Tensor).data as Float32Array); // [B, S, Hkv*D]
      newValues.push((out[DecoderIO.newValue(l)] as ort.Tensor).data as Float32Array);
    }
    const logits = out[DecoderIO.logits] as ort.Tensor; // [B, K, V]
    return { logits: logits.data as Float32Array, positions: logits.dims[1]!, newKeys, newValues };
  }

  /** Prefills a single sequence; returns the logits [V] after its last token. */
  async prefill(state: KvState, tokens: number[]): Promise<Float32Array> {
    return (await this.forward(state, [tokens], 'last')).logits;
  }

  /** One decode step of a single sequence; returns the next-token logits [V]. */
  async decode(state: KvState, token: number): Promise<Float32Array> {
    return (await this.forward(state, [[token]], 'last')).logits;
  }

  /** Weights and KV held, process RSS, and VRAM when running on an NVIDIA GPU. */
  async memory(): Promise<MemoryReport> {
    const onGpu = this.provider !== 'cpu';
    return {
      weightBytes: this.weightBytes,
      kvBytes: this.kvBytes(),
      rssBytes: process.memoryUsage.rss(),
      vramBytes: onGpu ? await nvidiaProcessVram() : undefined,
    };
  }

  async release(): Promise<void> {
    await this.runner.release();
  }
}

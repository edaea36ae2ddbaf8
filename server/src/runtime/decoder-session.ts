// The generation primitives over one ORT session: prefill S tokens onto a KV state, decode one
// token, and the forward step both are made of. Each step feeds the state's past as a view and
// fetches back only the S new positions, so a decode step never copies the whole cache.
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../model/config';
import { DecoderIO } from '../model/graph/decoder';
import type { ExecutionProvider } from './execution-provider';
import { KvState } from './kv-state';
import { type MemoryReport, nvidiaProcessVram } from './memory';

export type LogitsWanted = 'last' | 'all';

export interface ForwardResult {
  /** [B, K, V] with K = 1 for 'last' and S for 'all'. */
  logits: Float32Array;
  positions: number;
}

export class DecoderSession {
  private readonly states = new Set<WeakRef<KvState>>();
  private busy = false;

  constructor(
    private readonly session: ort.InferenceSession,
    readonly config: ModelConfig,
    readonly provider: ExecutionProvider,
    readonly weightBytes: number,
  ) {}

  /** An empty KV state for `batch` sequences decoded together. */
  newState(batch = 1, capacity?: number): KvState {
    const state = new KvState({ numLayers: this.config.numLayers, kvDim: this.config.numKvHeads * this.config.headDim }, batch, capacity);
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
    const B = tokens.length;
    const S = tokens[0]?.length ?? 0;
    if (B !== state.batch) throw new Error(`forward: ${B} token rows for a KV state of batch ${state.batch}`);
    if (S === 0 || tokens.some((row) => row.length !== S)) throw new Error('forward: token rows must be non-empty and of equal length');
    const c = this.config;
    if (state.length + S > c.maxPositions) throw new RangeError(`context of ${state.length + S} tokens exceeds the model's ${c.maxPositions} positions`);
    for (const row of tokens) for (const t of row) if (!Number.isInteger(t) || t < 0 || t >= c.vocabSize) throw new RangeError(`token id ${t} is outside the vocabulary (0..${c.vocabSize - 1})`);
    // ORT sessions are not re-entrant on one KV state; the server's inference loop serialises calls.
    if (this.busy) throw new Error('DecoderSession.forward called while another step is running');
    this.busy = true;
    try {
      const kvDim = c.numKvHeads * c.headDim;
      const P = state.length;
      const feeds: Record<string, ort.Tensor> = {
        [DecoderIO.inputIds]: new ort.Tensor('int64', BigInt64Array.from(tokens.flat(), BigInt), [B, S]),
        [DecoderIO.logitsIndex]:
          wanted === 'last' ? new ort.Tensor('int64', BigInt64Array.of(BigInt(S - 1)), [1]) : new ort.Tensor('int64', BigInt64Array.from({ length: S }, (_, i) => BigInt(i)), [S]),
      };
      for (let l = 0; l < c.numLayers; l++) {
        const past = state.past(l);
        feeds[DecoderIO.pastKey(l)] = new ort.Tensor('float32', past.key, [B, P, kvDim]);
        feeds[DecoderIO.pastValue(l)] = new ort.Tensor('float32', past.value, [B, P, kvDim]);
      }
      const out = await this.session.run(feeds);
      const newKeys: Float32Array[] = [];
      const newValues: Float32Array[] = [];
      for (let l = 0; l < c.numLayers; l++) {
        newKeys.push(out[DecoderIO.newKey(l)]!.data as Float32Array);
        newValues.push(out[DecoderIO.newValue(l)]!.data as Float32Array);
      }
      state.append(tokens, newKeys, newValues);
      const logits = out[DecoderIO.logits]!;
      const result = { logits: logits.data as Float32Array, positions: logits.dims[1]! };
      return result;
    } finally {
      this.busy = false;
    }
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
    await this.session.release();
  }
}

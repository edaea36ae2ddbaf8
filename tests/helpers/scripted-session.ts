// A real session made deliberately slow and, optionally, predictable: every run waits `msPerToken`
// for each token it computes (so a prefill is as slow as a real-size model's, relative to the time
// limit), and a `next` script overrides the logits so greedy decoding follows it (e.g. a line that
// ends after three tokens). The KV it computes is the real model's, so prefix reuse is real.
import type * as ort from 'onnxruntime-node';
import { DecoderIO } from '../../server/src/model/graph/decoder';
import type { DecoderSession, SessionRunner } from '../../server/src/runtime/decoder-session';

export interface ScriptOptions {
  /** Wait per computed token (rows × new positions) before each run. */
  msPerToken: number;
  /** The token greedy decoding should pick after `id`; undefined keeps the model's own logits. */
  next?: (id: number) => number;
}

export function scriptedSession(session: DecoderSession, options: ScriptOptions): DecoderSession {
  return session.wrap(
    (inner): SessionRunner => ({
      run: async (feeds, lent) => {
        const ids = feeds[DecoderIO.inputIds]!;
        const [B, S] = ids.dims as [number, number];
        await new Promise((r) => setTimeout(r, options.msPerToken * B * S));
        const out = await inner.run(feeds, lent);
        if (options.next) script(out[DecoderIO.logits] as ort.Tensor, ids.data as BigInt64Array, S, feeds[DecoderIO.logitsIndex]!.data as BigInt64Array, options.next);
        return out;
      },
      release: () => inner.release(),
    }),
  );
}

/** Rewrites logits [B, K, V]: at each wanted position, the scripted successor of its input token wins. */
function script(logits: ort.Tensor, ids: BigInt64Array, S: number, wanted: BigInt64Array, next: (id: number) => number): void {
  const [B, K, V] = logits.dims as [number, number, number];
  const data = logits.data as Float32Array;
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < K; k++) {
      const at = Number(wanted[k]!);
      const input = Number(ids[b * S + (at < 0 ? S - 1 : at)]!);
      const row = data.subarray((b * K + k) * V, (b * K + k + 1) * V);
      row.fill(0);
      row[next(input)] = 10;
    }
  }
}

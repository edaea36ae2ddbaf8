// Latency of the download presets on this class of machine, kept in this one table so the figures are
// replaced in one place. Kiln with random weights of the published shapes and the real Qwen2
// tokenizer, 2 threads, onnxruntime-node 1.30, CPU provider; random weights change nothing about the
// cost per token. Ranges span the two 2-vCPU machines this project has measured on:
// - an AMD EPYC (AVX-512, ~50 GB/s matrix-vector bandwidth), shared and noisy: the shared
//   ENVIRONMENT.md "Real-size models" and issue 14's table;
// - an Intel Xeon (AVX-512 VNNI, 35–44 GB/s), quiet (load 0–2): `node --import tsx
//   tests/bench/real-size.bench.ts --size 0.5b --precisions int8` (1.5b: int4), docs/performance/real-size-0.5b.json and
//   real-size-1.5b-int4.json (decode medians at context 50 and 1,000).
// A preset with no row says "not measured yet" rather than guess.

/** [low, high] over the runs recorded. */
export type Range = readonly [number, number];

export interface PresetLatency {
  /** Decode ms per token at each precision Kiln loads. */
  decodeMsPerToken: Partial<Record<'fp32' | 'int8' | 'int4', Range>>;
  /** Seconds to prefill a 1,007-token prompt (a cold request), at the fastest precision there (fp32: int8/int4 prefill slower, issue 14). */
  prefill1kSeconds?: Range;
  /** Keystroke p50 with KV reuse, in ms (a trace of typing in a real file). */
  keystrokeP50Ms?: Partial<Record<'fp32' | 'int8', number>>;
  /** Where the row comes from and how to measure it again. */
  source: string;
}

const SHARED_FIGURES =
  'Kiln, random weights of the published shape, 2 CPU threads: AMD EPYC (issue 14) and Intel Xeon (docs/performance/real-size-*.json); re-measure with `npm run bench -- --size 0.5b|1.5b`';

export const PRESET_LATENCY: Readonly<Record<string, PresetLatency>> = {
  'qwen2.5-coder-0.5b': {
    decodeMsPerToken: { fp32: [48, 65], int8: [18, 37], int4: [20, 27] },
    prefill1kSeconds: [2.1, 2.5],
    keystrokeP50Ms: { fp32: 521, int8: 351 }, // int8: the Xeon's quiet figure (EPYC, noisy: 238)
    source: SHARED_FIGURES,
  },
  'qwen2.5-coder-1.5b': {
    decodeMsPerToken: { fp32: [124, 164], int8: [49, 54], int4: [57, 96] },
    prefill1kSeconds: [7.3, 8.2],
    source: SHARED_FIGURES,
  },
};

// Latency of the download presets on this class of machine, kept in this one table so the figures are
// replaced in one place. Kiln with random weights of the published shapes and the real Qwen2
// tokenizer, 2 threads, onnxruntime-node 1.30, CPU provider; random weights change nothing about the
// cost per token. Ranges span the 2-vCPU machines this project has measured on:
// - an AMD EPYC (AVX-512, ~50 GB/s matrix-vector bandwidth), shared and noisy: the shared
//   ENVIRONMENT.md "Real-size models" and issue 14's table;
// - an AMD EPYC with AVX2 only, quiet (load 1–2, 2026-12-04): `node --import tsx
//   tests/bench/real-size.bench.ts --size 0.5b --precisions int8,fp32,fp16,int4 --reps 2 --keystrokes 32`,
//   docs/performance/real-size-0.5b-epyc-avx2-pairs.json (its fp32 decode at context 50, 120 ms, was read
//   while a compiler ran beside it and is left out; at 1,000 it read 76);
// - an Intel Xeon (AVX-512 VNNI, 35–44 GB/s), quiet (load 0–2): `node --import tsx
//   tests/bench/real-size.bench.ts --size 0.5b --precisions int8` (1.5b: int4), docs/performance/real-size-0.5b.json and
//   real-size-1.5b-int4.json (decode medians at context 50 and 1,000).
// A preset with no row says "not measured yet" rather than guess.

/** [low, high] over the runs recorded. */
export type Range = readonly [number, number];

export interface PresetLatency {
  /** Decode ms per token at each precision Kiln loads. */
  decodeMsPerToken: Partial<Record<'fp32' | 'int8' | 'int4', Range>>;
  /** Seconds to prefill a ~1,000-token prompt (a cold request), at the fastest precision measured there. */
  prefill1kSeconds?: Range;
  /** Keystroke p50 with KV reuse, in ms (a trace of typing in a real file). */
  keystrokeP50Ms?: Partial<Record<'fp32' | 'int8', number>>;
  /** Where the row comes from and how to measure it again. */
  source: string;
}

const SHARED_FIGURES =
  'Kiln, random weights of the published shape, 2 CPU threads: two AMD EPYCs (issue 14; AVX2 only, 2026-12-04) and an Intel Xeon (docs/performance/real-size-*.json); re-measure with `npm run bench -- --size 0.5b|1.5b`';

export const PRESET_LATENCY: Readonly<Record<string, PresetLatency>> = {
  'qwen2.5-coder-0.5b': {
    decodeMsPerToken: { fp32: [48, 76], int8: [18, 37], int4: [20, 28] },
    prefill1kSeconds: [2.1, 4.3],
    keystrokeP50Ms: { fp32: 673, int8: 236 }, // the quiet AVX2 EPYC (the Xeon: int8 351; the noisy EPYC: fp32 521, int8 238)
    source: SHARED_FIGURES,
  },
  'qwen2.5-coder-1.5b': {
    decodeMsPerToken: { fp32: [124, 164], int8: [49, 54], int4: [50, 96] },
    prefill1kSeconds: [7.3, 8.2],
    source: SHARED_FIGURES,
  },
};

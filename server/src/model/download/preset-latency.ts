// Latency of the download presets on this class of machine, kept in this one table so the figures are
// replaced in one place. Where they come from, for now: the measured real-size figures of the
// project's shared ENVIRONMENT.md ("Real-size models") and issue 14's table — Kiln with random
// weights of the published shapes and the real Qwen2 tokenizer, 2 threads of an AMD EPYC (AVX-512,
// ~50 GB/s matrix-vector bandwidth), onnxruntime-node 1.30, CPU provider, a shared and noisy machine
// (ranges, not single figures). Random weights change nothing about the cost per token. The rows are
// to be re-measured by the real-size benchmark (`npm run bench -- --size 0.5b|1.5b`, issue 14 item 1)
// and replaced here; a preset with no row says "not measured yet" rather than guess.

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
  'shared ENVIRONMENT.md "Real-size models" / issue 14 (Kiln, random weights of the published shape, 2 CPU threads, AMD EPYC); re-measure with `npm run bench -- --size 0.5b|1.5b`';

export const PRESET_LATENCY: Readonly<Record<string, PresetLatency>> = {
  'qwen2.5-coder-0.5b': {
    decodeMsPerToken: { fp32: [48, 65], int8: [18, 31], int4: [20, 27] },
    prefill1kSeconds: [2.1, 2.5],
    keystrokeP50Ms: { fp32: 521, int8: 238 },
    source: SHARED_FIGURES,
  },
  'qwen2.5-coder-1.5b': {
    decodeMsPerToken: { fp32: [124, 164], int8: [49, 54], int4: [57, 65] },
    prefill1kSeconds: [7.3, 8.2],
    source: SHARED_FIGURES,
  },
};

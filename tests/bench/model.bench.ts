// Model-core benchmark: Kiln (onnxruntime-node) side by side with llama.cpp (node-llama-cpp 3.21.1)
// on the same seeded random weights, in the same process and the same run, A/B interleaved.
//
//   npm run bench:model -- [--reps 5] [--steps 32] [--threads 2] [--ep cpu|webgpu|cuda|auto] [--quick] [--slots-only] [--out FILE]
//   npm run bench:model -- --size 0.5b|1.5b [real-size.bench.ts flags]   (real-size Qwen2.5-Coder shapes vs llama.cpp at the same precision)
//
// Reference config: d 512, 8 layers, 8 heads (MHA), vocab 8192, SiLU MLP 1536, tied head.
// Figures: prefill tokens/s (512 tokens), decode ms/token at context 50 and 1000, session creation ms,
// RSS deltas around each load, Kiln's memory() report. Each figure is the median (and min–max) over reps.
//
// Slot decode (slot-decode.ts; --slots-only runs just these): ms per InferenceServer step with 1, 2
// and 4 active slots (one batched forward each), fp32 and int8, at context 200 (--quick) or 500.
//
// Rows
//   kiln plain fp32 (the default), kiln fused fp32, kiln fused fp16     DecoderSession, the real runtime
//   kiln plain int8, kiln plain int4: Linear layers and head as MatMulNBits (block 32), embedding fp16
//   llama.cpp F16, F32, Q8_0, Q4_0 (its defaults: F16 KV cache, flash attention 'auto'); Q8_0/Q4_0 are the
//     same-precision peers of Kiln's int8/int4 rows (ggml blocks of 32, symmetric, fp16 scales)
//   conventional fp32: the default (plain) graph built with `emitPresent`, driven by a bench-only loop that
//     fetches present.{l}.key/value (past ⊕ new, the whole cache) and feeds them back as the next past;
//     Kiln feeds the past as a zero-copy view and fetches only the new positions.
//
// llama.cpp decode step: `sequence.evaluate([token], { temperature: 0, yieldEogToken: true })`, one
// generator per timed run, feeding our own token at each `next(token)`. It is node-llama-cpp's own
// generation loop: one sampler for the whole run, one native decode with logits for the new token
// only, then a greedy pick. `controlledEvaluate` creates and disposes a native sampler on every call
// (more overhead per step); `evaluateWithoutGeneratingNewTokens` asks for no logits, so llama.cpp skips
// the 8192×512 output head (~13% of a step's FLOPs) — cheaper, but not a decode step.
// Kiln's decode step returns the logits row (fetched, no sampling): the equivalent work.
//
// Both engines share one process: RSS is read as deltas around each load (after a GC), in a fixed
// order, so a delta includes whatever the allocator keeps from earlier loads and mmap'd weights count
// only once touched (hence a second delta after the first run).
import * as ort from 'onnxruntime-node';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { openCheckpoint } from '../../server/src/model/checkpoint';
import { exportGguf } from '../../server/src/model/export/gguf';
import { buildDecoderGraph, DECODER_OPSETS, DecoderIO, type AttentionPath, type WeightType } from '../../server/src/model/graph/decoder';
import { MODEL_FILE, writeModel } from '../../server/src/model/graph/write-model';
import type { KvState } from '../../server/src/kvcache/kv-state';
import { createWithFallback, type ExecutionProviderChoice, EXECUTION_PROVIDER_CHOICES } from '../../server/src/runtime/execution-provider';
import { DEFAULT_ATTENTION, loadModel, type LoadedModel } from '../../server/src/runtime/load-model';
import type { MemoryReport } from '../../server/src/runtime/memory';
import type { QuantBits } from '../../server/src/model/quantize';
import { getPeerLlama } from '../helpers/llama-cpp-peer';
import { writeTinyCheckpoint } from '../helpers/tiny-model';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer';
import { BenchArgs } from './bench-args';
import { parseRealSizeArgs, runRealSize } from './real-size.bench';
import { measureSlotDecode } from './slot-decode';
import { emitJson, log, MB, round, summarize, type Summary } from './bench-stats';
import { randomTokens, REFERENCE, referenceWeights } from './reference-model';

// ---------- settings ----------

/** `steps`: decode steps per timed run; `contexts`: the context lengths decode is measured at. */
interface Settings {
  reps: number;
  steps: number;
  prefillTokens: number;
  contexts: number[];
  threads: number;
  ep: ExecutionProviderChoice;
  quick: boolean;
  slotsOnly: boolean;
  out?: string;
} // prettier-ignore

function parseArgs(argv: string[]): Settings {
  const quick = argv.includes('--quick');
  const s: Settings = {
    reps: quick ? 2 : 5,
    steps: quick ? 8 : 32,
    prefillTokens: quick ? 128 : 512,
    contexts: quick ? [50, 200] : [50, 1000],
    threads: 2,
    ep: 'cpu',
    quick,
    slotsOnly: argv.includes('--slots-only'),
  };
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--reps') s.reps = args.positiveInt();
    else if (a === '--steps') s.steps = args.positiveInt();
    else if (a === '--threads') s.threads = args.positiveInt();
    else if (a === '--out') s.out = args.value();
    else if (a === '--ep') s.ep = args.oneOf(EXECUTION_PROVIDER_CHOICES);
    else if (a !== '--quick' && a !== '--slots-only') throw new Error(`unknown argument ${a}`);
  }
  const longest = Math.max(s.prefillTokens, ...s.contexts.map((n) => n + s.steps + 1));
  if (longest > REFERENCE.maxPositions) throw new Error(`context ${longest} exceeds the reference model's ${REFERENCE.maxPositions} positions`);
  return s;
}

// ---------- small helpers ----------

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** RSS after a full GC, in MiB. */
function rssMB(): number {
  gc();
  return process.memoryUsage.rss() / MB;
}

function argmax(xs: Float32Array): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** Runs `step` for each token in turn; the ms each took. */
async function timeSteps(tokens: number[], step: (token: number, i: number) => Promise<unknown>): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t0 = performance.now();
    await step(tokens[i]!, i);
    ms.push(performance.now() - t0);
  }
  return ms;
}

// ---------- engines: one interface for every row ----------

interface LoadFigures {
  rssLoadDeltaMB: number;
  rssWarmDeltaMB?: number;
  firstCreateMs: number;
  detail: Record<string, unknown>;
}

interface Engine {
  name: string;
  load: LoadFigures;
  /** Prefill `tokens` from empty; ms. Undefined when the row does not measure prefill. */
  prefill?(tokens: number[]): Promise<number>;
  /** Next-token id after the last prefill (argmax or greedy), for the same-weights check. */
  lastNext?: number;
  /** Prefill a context of N tokens once (untimed), kept for decode runs. */
  prepareDecode(n: number, tokens: number[]): Promise<void>;
  /** Decode `steps` tokens on top of the prepared context N, then roll back to N; ms of each step. */
  decode(n: number, steps: number[]): Promise<number[]>;
  /** Create (and dispose) a fresh session/model; ms. Undefined when not measured for the row. */
  recreate?(): Promise<number>;
  memory?(): Promise<MemoryReport>;
  dispose(): Promise<void>;
}

type KilnRow = { name: string; attention: AttentionPath; weightType: WeightType; quantization?: QuantBits };

async function loadKiln(row: KilnRow, modelDir: string, cacheDir: string, s: Settings): Promise<Engine> {
  const opts = { executionProvider: s.ep, threads: s.threads, attention: row.attention, weightType: row.weightType, quantization: row.quantization, cacheDir };
  const before = rssMB();
  const model: LoadedModel = await loadModel(modelDir, opts);
  const rssLoadDeltaMB = rssMB() - before;
  reportProvider(row.name, s.ep, model.session.provider, model.attempts);
  const states = new Map<number, KvState>();
  const engine: Engine = {
    name: row.name,
    load: {
      rssLoadDeltaMB,
      firstCreateMs: model.sessionCreateMs,
      detail: { provider: model.session.provider, buildMs: round(model.buildMs, 1), cacheHit: model.cacheHit, weightBytes: model.session.weightBytes },
    },
    async prefill(tokens) {
      const state = model.session.newState();
      const t0 = performance.now();
      const logits = await model.session.prefill(state, tokens);
      const ms = performance.now() - t0;
      engine.lastNext = argmax(logits);
      return ms;
    },
    async prepareDecode(n, tokens) {
      const state = model.session.newState();
      await model.session.prefill(state, tokens.slice(0, n));
      states.set(n, state);
    },
    async decode(n, steps) {
      const state = states.get(n)!;
      const ms = await timeSteps(steps, (t) => model.session.decode(state, t));
      state.truncate(n);
      return ms;
    },
    async recreate() {
      // a second session from the cached graph, released at once; the measured one stays in use
      const fresh = await loadModel(modelDir, opts);
      await fresh.session.release();
      return fresh.sessionCreateMs;
    },
    memory: () => model.session.memory(),
    async dispose() {
      states.clear();
      await model.session.release();
    },
  };
  return engine;
}

function reportProvider(name: string, wanted: ExecutionProviderChoice, used: string, attempts: { provider: string; error: string }[]): void {
  if (wanted !== 'cpu' && wanted !== used) log(`${name}: --ep ${wanted} not available, fell back to ${used} (${attempts.map((a) => `${a.provider}: ${a.error}`).join('; ')})`);
}

/** The conventional interface: fetch the whole present cache every step and feed it back as the past. */
async function loadConventional(modelDir: string, graphDir: string, s: Settings): Promise<Engine> {
  const c = REFERENCE;
  const kvDim = c.numKvHeads * c.headDim;
  const t0 = performance.now();
  const ckpt = openCheckpoint(modelDir);
  try {
    writeModel(buildDecoderGraph(c, ckpt.weights, { attention: DEFAULT_ATTENTION, weightType: 'float32', emitPresent: true }), graphDir, DECODER_OPSETS);
  } finally {
    ckpt.weights.close();
  }
  const buildMs = performance.now() - t0;
  const before = rssMB();
  const t1 = performance.now();
  const { session, provider, attempts } = await createWithFallback({ executionProvider: s.ep, threads: s.threads }, (_p, o) =>
    ort.InferenceSession.create(join(graphDir, MODEL_FILE), o),
  );
  const createMs = performance.now() - t1;
  reportProvider('conventional', s.ep, provider, attempts);
  const fetches = [DecoderIO.logits];
  for (let l = 0; l < c.numLayers; l++) fetches.push(DecoderIO.presentKey(l), DecoderIO.presentValue(l));
  type Past = { key: Float32Array; value: Float32Array }[];
  const prepared = new Map<number, Past>();

  const step = async (past: Past, tokens: number[]): Promise<Past> => {
    const P = past[0]!.key.length / kvDim;
    const feeds: Record<string, ort.Tensor> = {
      [DecoderIO.inputIds]: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, tokens.length]),
      [DecoderIO.logitsIndex]: new ort.Tensor('int64', BigInt64Array.of(BigInt(tokens.length - 1)), [1]),
      [DecoderIO.pastLengths]: new ort.Tensor('int64', BigInt64Array.of(BigInt(P)), [1]),
    };
    past.forEach((p, l) => {
      feeds[DecoderIO.pastKey(l)] = new ort.Tensor('float32', p.key, [1, c.numKvHeads, c.headDim, P]); // present comes back in the past's layout
      feeds[DecoderIO.pastValue(l)] = new ort.Tensor('float32', p.value, [1, c.numKvHeads, P, c.headDim]);
    });
    const out = await session.run(feeds, fetches);
    return past.map((_, l) => ({ key: out[DecoderIO.presentKey(l)]!.data as Float32Array, value: out[DecoderIO.presentValue(l)]!.data as Float32Array }));
  };
  const empty = (): Past => Array.from({ length: c.numLayers }, () => ({ key: new Float32Array(0), value: new Float32Array(0) }));

  return {
    name: 'conventional fp32',
    load: {
      rssLoadDeltaMB: rssMB() - before,
      firstCreateMs: createMs,
      detail: { provider, buildMs: round(buildMs, 1), note: 'default (plain) fp32 graph + present outputs; bench-only loop' },
    },
    async prepareDecode(n, tokens) {
      prepared.set(n, await step(empty(), tokens.slice(0, n)));
    },
    async decode(n, steps) {
      let past = prepared.get(n)!; // immutable: every run starts again from the context-N cache
      return timeSteps(steps, async (t) => {
        past = await step(past, [t]);
      });
    },
    async dispose() {
      prepared.clear();
      await session.release();
    },
  };
}

// ---------- llama.cpp through node-llama-cpp (the subset used here; its .d.ts is outside the typecheck) ----------

interface LlamaSequence {
  readonly nextTokenIndex: number;
  clearHistory(): Promise<void>;
  eraseContextTokenRanges(ranges: { start: number; end: number }[]): Promise<void>;
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  controlledEvaluate(
    input: Array<number | [number, { generateNext: { token: boolean; options: { temperature: number } } }]>,
  ): Promise<Array<undefined | { next: { token?: number | null } }>>;
  evaluate(tokens: number[], options: { temperature: number; yieldEogToken: boolean }): AsyncGenerator<number, void, void | number | number[]>;
}
interface LlamaContext {
  readonly contextSize: number;
  readonly batchSize: number;
  readonly flashAttention: 'auto' | boolean;
  readonly kvCacheKeyType: unknown;
  readonly idealThreads: number;
  getSequence(): LlamaSequence;
  dispose(): Promise<void>;
}
interface LlamaModel {
  createContext(options: Record<string, unknown>): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface Llama {
  loadModel(options: { modelPath: string; gpuLayers: number }): Promise<LlamaModel>;
  readonly llamaCppRelease: { repo: string; release: string };
  dispose(): Promise<void>;
}

/** ggml's type ids for the KV cache types that can show up here. */
const GGML_TYPE_NAMES: Record<number, string> = { 0: 'F32', 1: 'F16', 8: 'Q8_0', 30: 'BF16' };

/** llama.cpp's release as node-llama-cpp reports it (set by the first load). */
let llamaRelease: string | undefined;

async function loadLlamaCpp(name: string, gguf: string, s: Settings): Promise<Engine> {
  const llama = (await getPeerLlama()) as unknown as Llama;
  llamaRelease ??= `${llama.llamaCppRelease.repo} ${llama.llamaCppRelease.release}`;
  const contextOptions = (batchSize: number) => ({ contextSize: REFERENCE.maxPositions, batchSize, sequences: 1, threads: s.threads });
  const before = rssMB();
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  const loadMs = performance.now() - t0;
  const t1 = performance.now();
  const prefillContext = await model.createContext(contextOptions(s.prefillTokens));
  const contextMs = performance.now() - t1;
  const rssLoadDeltaMB = rssMB() - before;
  const prefillSeq = prefillContext.getSequence();
  // one context per decode length: a shared KV buffer would make short contexts attend over long ones' cells
  const decodeContexts = new Map<number, { ctx: LlamaContext; seq: LlamaSequence }>();
  const engine: Engine = {
    name,
    load: {
      rssLoadDeltaMB,
      firstCreateMs: loadMs + contextMs,
      detail: {
        modelLoadMs: round(loadMs, 1),
        contextCreateMs: round(contextMs, 1),
        flashAttention: prefillContext.flashAttention,
        kvCacheType: GGML_TYPE_NAMES[prefillContext.kvCacheKeyType as number] ?? String(prefillContext.kvCacheKeyType),
        contextSize: prefillContext.contextSize,
        batchSize: prefillContext.batchSize,
        threads: prefillContext.idealThreads,
      },
    },
    async prefill(tokens) {
      await prefillSeq.clearHistory();
      const input = tokens.map((t, i) => (i === tokens.length - 1 ? ([t, { generateNext: { token: true, options: { temperature: 0 } } }] as const) : t));
      const t2 = performance.now();
      const out = await prefillSeq.controlledEvaluate(input as Parameters<LlamaSequence['controlledEvaluate']>[0]);
      const ms = performance.now() - t2;
      engine.lastNext = out[tokens.length - 1]?.next.token ?? undefined;
      return ms;
    },
    async prepareDecode(n, tokens) {
      const ctx = await model.createContext(contextOptions(512));
      const seq = ctx.getSequence(); // a context hands out each of its sequences once
      decodeContexts.set(n, { ctx, seq });
      await seq.evaluateWithoutGeneratingNewTokens(tokens.slice(0, n));
    },
    async decode(n, steps) {
      const seq = decodeContexts.get(n)!.seq;
      const it = seq.evaluate([steps[0]!], { temperature: 0, yieldEogToken: true });
      // the first next() evaluates steps[0]; each next(t) after it evaluates t in place of the sampled token
      const ms = await timeSteps(steps, (t, i) => (i === 0 ? it.next() : it.next(t)));
      await it.return(undefined);
      await seq.eraseContextTokenRanges([{ start: n, end: seq.nextTokenIndex }]);
      if (seq.nextTokenIndex !== n) throw new Error(`${name}: context did not roll back to ${n} (at ${seq.nextTokenIndex})`);
      return ms;
    },
    async recreate() {
      const t2 = performance.now();
      const m = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
      const ctx = await m.createContext(contextOptions(s.prefillTokens));
      const ms = performance.now() - t2;
      await ctx.dispose();
      await m.dispose();
      return ms;
    },
    async dispose() {
      for (const { ctx } of decodeContexts.values()) await ctx.dispose();
      await prefillContext.dispose();
      await model.dispose();
    },
  };
  return engine;
}

// ---------- the run ----------

interface RowFigures {
  prefill: number[]; // tokens/s, one per rep
  decode: Map<number, { mean: number[]; stepMedian: number[] }>; // ms/token per rep: the run's mean, its median step
  create: number[]; // ms
}

async function main(): Promise<void> {
  // --size 0.5b|1.5b: the real-size core figures (real-size.bench.ts): loads, prefill, decode at 50 and 1,000
  if (process.argv.includes('--size')) return runRealSize(parseRealSizeArgs(['--parts', 'core', ...process.argv.slice(2)]));
  const s = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const loadavgBefore = os.loadavg().map((x) => round(x, 2));
  const root = mkdtempSync(join(os.tmpdir(), 'kiln-bench-model-'));
  const engines: Engine[] = [];
  try {
    // weights, tokenizer, GGUF exports
    let t = performance.now();
    const modelDir = join(root, 'model');
    writeTinyCheckpoint(modelDir, referenceWeights());
    writeTinyTokenizer(modelDir, { vocabSize: REFERENCE.vocabSize });
    const slotOptions = { modelDir, cacheDir: join(root, 'graph-cache'), ep: s.ep, threads: s.threads, context: s.quick ? 200 : 500, steps: s.steps, reps: s.reps, randomTokens };
    if (s.slotsOnly) {
      emitJson(
        {
          slotDecode: await measureSlotDecode(slotOptions),
          settings: { ...slotOptions, randomTokens: undefined },
          loadavgBefore,
          loadavgAfter: os.loadavg().map((x) => round(x, 2)),
        },
        s.out,
      );
      return;
    }
    const ggufF32 = join(root, 'model-f32.gguf');
    const ggufF16 = join(root, 'model-f16.gguf');
    const ggufQ8 = join(root, 'model-q8_0.gguf');
    const ggufQ4 = join(root, 'model-q4_0.gguf');
    await exportGguf(modelDir, ggufF32, { dtype: 'f32' });
    await exportGguf(modelDir, ggufF16, { dtype: 'f16' });
    await exportGguf(modelDir, ggufQ8, { dtype: 'q8_0' });
    await exportGguf(modelDir, ggufQ4, { dtype: 'q4_0' });
    log(`weights + GGUF exports: ${Math.round(performance.now() - t)} ms (${root})`);

    // load every row (fixed order, RSS deltas around each), A/B alternating
    t = performance.now();
    const cacheDir = join(root, 'graph-cache');
    engines.push(await loadKiln({ name: 'kiln fused fp32', attention: 'fused', weightType: 'float32' }, modelDir, cacheDir, s));
    engines.push(await loadLlamaCpp('llama.cpp F16', ggufF16, s));
    engines.push(await loadKiln({ name: 'kiln fused fp16', attention: 'fused', weightType: 'float16' }, modelDir, cacheDir, s));
    engines.push(await loadLlamaCpp('llama.cpp F32', ggufF32, s));
    engines.push(await loadKiln({ name: 'kiln plain fp32', attention: 'plain', weightType: 'float32' }, modelDir, cacheDir, s));
    engines.push(await loadConventional(modelDir, join(root, 'conventional'), s));
    engines.push(await loadKiln({ name: 'kiln plain int8', attention: 'plain', weightType: 'float32', quantization: 8 }, modelDir, cacheDir, s));
    engines.push(await loadLlamaCpp('llama.cpp Q8_0', ggufQ8, s));
    engines.push(await loadKiln({ name: 'kiln plain int4', attention: 'plain', weightType: 'float32', quantization: 4 }, modelDir, cacheDir, s));
    engines.push(await loadLlamaCpp('llama.cpp Q4_0', ggufQ4, s));
    log(`graphs built and sessions loaded: ${Math.round(performance.now() - t)} ms`);

    // warm-up (untimed): one prefill each, the decode contexts, one decode run each; RSS after it
    const prefillTokens = randomTokens(1, s.prefillTokens);
    const contextTokens = randomTokens(2, Math.max(...s.contexts));
    const stepTokens = randomTokens(3, s.steps);
    t = performance.now();
    for (const e of engines) {
      const before = rssMB();
      await e.prefill?.(prefillTokens);
      for (const n of s.contexts) {
        await e.prepareDecode(n, contextTokens);
        await e.decode(n, stepTokens.slice(0, 2));
      }
      e.load.rssWarmDeltaMB = rssMB() - before;
    }
    log(`warm-up (prefill, decode contexts ${s.contexts.join(', ')}): ${Math.round(performance.now() - t)} ms`);
    const next = (name: string) => engines.find((e) => e.name === name)?.lastNext;
    const sameWeights = {
      fp32: { kilnArgmax: next(DEFAULT_ROW), llamaCppGreedy: next('llama.cpp F32') },
      fp16: { kilnArgmax: next('kiln fused fp16'), llamaCppGreedy: next('llama.cpp F16') },
    };

    // timed reps, interleaved: every figure alternates Kiln and llama.cpp rows; the order rotates per rep
    const figures = new Map<string, RowFigures>(
      engines.map((e) => [e.name, { prefill: [], decode: new Map(s.contexts.map((n) => [n, { mean: [], stepMedian: [] }])), create: [] }]),
    );
    for (let rep = 0; rep < s.reps; rep++) {
      const order = engines.map((_, i) => engines[(i + rep * 2) % engines.length]!);
      for (const e of order) if (e.prefill) figures.get(e.name)!.prefill.push(s.prefillTokens / ((await e.prefill(prefillTokens)) / 1000));
      for (const n of s.contexts) {
        for (const e of order) {
          const steps = await e.decode(n, stepTokens);
          const d = figures.get(e.name)!.decode.get(n)!;
          d.mean.push(steps.reduce((a, b) => a + b, 0) / steps.length);
          d.stepMedian.push(summarize(steps).median);
        }
      }
      for (const e of order) if (e.recreate) figures.get(e.name)!.create.push(await e.recreate());
      log(`rep ${rep + 1}/${s.reps} done (${Math.round((performance.now() - started) / 1000)} s)`);
    }

    rssMB(); // a GC first, so states of finished prefill runs are no longer counted as live KV
    const kilnMemory: Record<string, MemoryReport> = {};
    for (const e of engines) if (e.memory) kilnMemory[e.name] = await e.memory();
    const slotDecode = await measureSlotDecode(slotOptions);
    const result = {
      ...report(s, engines, figures, sameWeights, kilnMemory, loadavgBefore, started),
      slotDecode,
      slotSettings: { context: slotOptions.context, steps: slotOptions.steps, reps: slotOptions.reps },
    };
    printTable(result);
    emitJson(result, s.out);
  } finally {
    for (const e of engines) await e.dispose().catch((err: Error) => log(`dispose ${e.name}: ${err.message}`));
    if (llamaRelease !== undefined) await ((await getPeerLlama()) as unknown as Llama).dispose(); // its native backend
    rmSync(root, { recursive: true, force: true });
  }
}

// ---------- report ----------

/** The row the headline speaks for: the runtime's defaults (plain attention, fp32, unquantized). */
const DEFAULT_ROW = 'kiln plain fp32';
const KILN_ROWS = [DEFAULT_ROW, 'kiln fused fp32', 'kiln fused fp16', 'kiln plain int8', 'kiln plain int4'];

/** fp32 KV rows held for the decode contexts: 2 (K and V) · layers · positions · Hkv·D · 4 bytes. */
function analyticKvBytes(s: Settings): number {
  const c = REFERENCE;
  const positions = s.contexts.reduce((a, n) => a + n, 0);
  return 2 * c.numLayers * positions * c.numKvHeads * c.headDim * 4;
}

/** Decode speed-up of the quantized rows over the default fp32 row (medians over reps), target ≥ 1.5 for int4. */
function quantizedSpeedups(figures: Map<string, RowFigures>, s: Settings) {
  const decode = (row: string, n: number) => figure(figures.get(row)!, n, 'median');
  const out: Record<string, number | boolean | string> = {};
  for (const bits of [8, 4]) {
    for (const n of s.contexts) out[`int${bits}Decode${n}SpeedupOverFp32`] = round(decode(DEFAULT_ROW, n) / decode(`kiln plain int${bits}`, n));
    out[`int${bits}PrefillOverFp32`] = round(figure(figures.get(`kiln plain int${bits}`)!, 'prefill', 'median') / figure(figures.get(DEFAULT_ROW)!, 'prefill', 'median'));
  }
  out.int4Target = 'decode >= 1.5x fp32';
  out.int4Met = s.contexts.every((n) => (out[`int4Decode${n}SpeedupOverFp32`] as number) >= 1.5);
  return out;
}

type Statistic = 'median' | 'best' | 'typicalStep';

/** One number per row and figure for a statistic: tokens/s for prefill (higher is better), ms/token for decode. */
function figure(f: RowFigures, what: 'prefill' | number, stat: Statistic): number {
  if (what === 'prefill') return stat === 'best' ? summarize(f.prefill).max : summarize(f.prefill).median;
  const d = f.decode.get(what)!;
  if (stat === 'typicalStep') return summarize(d.stepMedian).median;
  return stat === 'best' ? summarize(d.mean).min : summarize(d.mean).median;
}

/** A Kiln row against llama.cpp (prefill: the faster llama.cpp row; decode: F16) and the conventional loop against it. */
function kilnRatios(row: string, stat: Statistic, figures: Map<string, RowFigures>, s: Settings): Record<string, number> {
  const get = (name: string, what: 'prefill' | number) => figure(figures.get(name)!, what, stat);
  const out: Record<string, number> = {};
  if (stat !== 'typicalStep') {
    const llamaPrefill = Math.max(get('llama.cpp F16', 'prefill'), get('llama.cpp F32', 'prefill'));
    out.prefillOverBestLlamaCpp = round(get(row, 'prefill') / llamaPrefill);
    out.prefillOverLlamaCppF16 = round(get(row, 'prefill') / get('llama.cpp F16', 'prefill'));
  }
  for (const n of s.contexts) {
    out[`decode${n}OverLlamaCppF16`] = round(get(row, n) / get('llama.cpp F16', n));
    out[`conventionalOverDecode${n}`] = round(get('conventional fp32', n) / get(row, n));
  }
  return out;
}

type SameWeights = Record<'fp32' | 'fp16', { kilnArgmax?: number; llamaCppGreedy?: number }>;

function report(
  s: Settings,
  engines: Engine[],
  figures: Map<string, RowFigures>,
  sameWeights: SameWeights,
  kilnMemory: Record<string, MemoryReport>,
  loadavgBefore: number[],
  started: number,
) {
  const rows: Record<string, unknown> = {};
  for (const e of engines) {
    const f = figures.get(e.name)!;
    rows[e.name] = {
      prefillTokensPerS: f.prefill.length ? summarize(f.prefill) : undefined,
      decodeMsPerToken: Object.fromEntries([...f.decode].map(([n, d]) => [String(n), summarize(d.mean)])),
      decodeStepMedianMs: Object.fromEntries([...f.decode].map(([n, d]) => [String(n), summarize(d.stepMedian)])),
      sessionCreateMs: { first: round(e.load.firstCreateMs, 1), reps: f.create.length ? summarize(f.create) : undefined },
      rssLoadDeltaMB: round(e.load.rssLoadDeltaMB, 1),
      rssWarmDeltaMB: round(e.load.rssWarmDeltaMB ?? NaN, 1),
      ...e.load.detail,
    };
  }
  const ratios: Record<string, Record<Statistic, Record<string, number>>> = {};
  for (const k of KILN_ROWS) {
    ratios[k] = { median: kilnRatios(k, 'median', figures, s), best: kilnRatios(k, 'best', figures, s), typicalStep: kilnRatios(k, 'typicalStep', figures, s) };
  }
  const head = ratios[DEFAULT_ROW]!;
  const longest = Math.max(...s.contexts);
  const decodeKeys = s.contexts.map((n) => `decode${n}OverLlamaCppF16`);
  const ortVersion = (ort.env as unknown as { versions?: { node?: string; common?: string } }).versions;
  const peerPkg = JSON.parse(readFileSync(join(__dirname, '..', 'peers', 'node_modules', 'node-llama-cpp', 'package.json'), 'utf8')) as { version: string };
  return {
    headline: {
      prefillKilnOverLlamaCpp: head.median.prefillOverBestLlamaCpp,
      prefillTarget: '>= 2',
      prefillMet: head.median.prefillOverBestLlamaCpp! >= 2,
      ...Object.fromEntries(decodeKeys.map((key) => [key, head.median[key]])),
      decodeTarget: '<= 1',
      decodeMet: decodeKeys.every((key) => head.median[key]! <= 1),
      [`conventionalOverKilnDecode${longest}`]: head.median[`conventionalOverDecode${longest}`],
      quantized: quantizedSpeedups(figures, s),
      bestOfReps: head.best,
      typicalStep: head.typicalStep,
      note: 'Kiln = plain fp32 (the default); prefill against the faster llama.cpp row. Headline ratios use medians over reps of each figure; bestOfReps uses the best rep of each; typicalStep uses the median decode step of each run (spikes left out).',
    },
    ratios,
    rows,
    kilnMemory: Object.fromEntries(
      Object.entries(kilnMemory).map(([k, m]) => [
        k,
        {
          weightMB: round(m.weightBytes / MB, 1),
          kvMB: round(m.kvBytes / MB, 1),
          analyticKvMB: round(analyticKvBytes(s) / MB, 1),
          rssMB: round(m.rssBytes / MB, 1),
          vramMB: m.vramBytes === undefined ? undefined : round(m.vramBytes / MB, 1),
        },
      ]),
    ),
    sameWeightsCheck: { ...sameWeights, agree: sameWeights.fp32.kilnArgmax === sameWeights.fp32.llamaCppGreedy && sameWeights.fp16.kilnArgmax === sameWeights.fp16.llamaCppGreedy },
    settings: { reps: s.reps, decodeStepsPerRun: s.steps, prefillTokens: s.prefillTokens, contexts: s.contexts, threads: s.threads, executionProvider: s.ep, quick: s.quick },
    config: REFERENCE,
    machine: {
      cpu: os.cpus()[0]?.model,
      logicalCpus: os.cpus().length,
      threadsUsed: s.threads,
      loadavgBefore,
      loadavgAfter: os.loadavg().map((x) => round(x, 2)),
      node: process.version,
      onnxruntimeNode: ortVersion?.node ?? ortVersion?.common,
      nodeLlamaCpp: peerPkg.version,
      llamaCpp: llamaRelease,
      totalSeconds: round((performance.now() - started) / 1000, 1),
    },
    notes: [
      'Both engines run in one process: RSS figures are deltas around each load (after GC) and after its warm-up run; allocator reuse and mmap make them approximate.',
      'llama.cpp decode: sequence.evaluate generator (one sampler per run, logits for the new token, greedy pick); Kiln decode returns the logits row.',
      'llama.cpp uses its defaults: F16 KV cache and flash attention auto; Kiln keeps an fp32 KV cache.',
      'conventional: emitPresent graph, fetch present.{l}.key/value and feed back as the next past (copies the whole cache each step).',
    ],
  };
}

function printTable(r: ReturnType<typeof report>): void {
  const fmt = (x?: Summary) => (x ? `${x.median.toFixed(x.median < 100 ? 2 : 0)} (${x.min.toFixed(x.min < 100 ? 2 : 0)}–${x.max.toFixed(x.max < 100 ? 2 : 0)})` : '—');
  const ctxs = r.settings.contexts;
  const header = ['row', `prefill ${r.settings.prefillTokens} tok/s`, ...ctxs.map((n) => `decode@${n} ms/tok [typical step]`), 'create ms', 'RSS Δ load/warm MB'];
  const lines = Object.entries(r.rows).map(([name, row]) => {
    const x = row as {
      prefillTokensPerS?: Summary;
      decodeMsPerToken: Record<string, Summary>;
      decodeStepMedianMs: Record<string, Summary>;
      sessionCreateMs: { first: number; reps?: Summary };
      rssLoadDeltaMB: number;
      rssWarmDeltaMB: number;
    };
    const decode = (n: number) => `${fmt(x.decodeMsPerToken[String(n)])} [${x.decodeStepMedianMs[String(n)]!.median.toFixed(2)}]`;
    const create = x.sessionCreateMs.reps ? fmt(x.sessionCreateMs.reps) : `${x.sessionCreateMs.first.toFixed(0)} (once)`;
    return [name, fmt(x.prefillTokensPerS), ...ctxs.map(decode), create, `${x.rssLoadDeltaMB.toFixed(0)} / ${x.rssWarmDeltaMB.toFixed(0)}`];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  const m = r.machine;
  log('');
  log(
    `${m.cpu} (${m.logicalCpus} logical CPUs), ${m.threadsUsed} threads, node ${m.node}, onnxruntime-node ${m.onnxruntimeNode}, node-llama-cpp ${m.nodeLlamaCpp} (llama.cpp ${m.llamaCpp})`,
  );
  log(`loadavg before ${m.loadavgBefore.join(' ')}, after ${m.loadavgAfter.join(' ')}; ${r.settings.reps} reps, median (min–max)`);
  log(line(header));
  for (const l of lines) log(line(l));
  const { bestOfReps, typicalStep, note, ...headline } = r.headline;
  log(`headline (medians): ${JSON.stringify(headline)}`);
  log(`  best of reps:      ${JSON.stringify(bestOfReps)}`);
  log(`  typical step:      ${JSON.stringify(typicalStep)}`);
  log(`  ${note}`);
  log(`same weights: ${JSON.stringify(r.sameWeightsCheck)}`);
  log('');
}

main().catch((err: Error) => {
  log(`model bench failed: ${err.stack ?? err.message}`);
  process.exitCode = 1;
});

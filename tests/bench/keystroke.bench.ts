// Keystroke benchmark: a typing trace replayed through Kiln's real CompletionEngine with KV reuse on
// and off, and through llama.cpp (node-llama-cpp 3.21.1, `adaptStateToTokens` prefix reuse) fed the
// exact prompt token ids Kiln computed — same seeded random weights, same process, same run.
//
//   npm run bench:keystroke -- [--reps 1] [--keystrokes N] [--block 32] [--cold-every K] [--max-tokens 16] [--threads 2] [--ep cpu|webgpu|cuda|auto] [--quick] [--out FILE]
//                              [--model DIR] [--quantization none|auto|int8|int4] [--lookup [--lookup-drafts 4:1,6:2,...]]
//
//   npm run bench:keystroke -- --size 0.5b|1.5b [real-size.bench.ts flags]   (real-size Qwen2.5-Coder shapes vs llama.cpp at the same precision)
//
// --model replays the trace on a real model folder (e.g. models/kiln-code-4m, its own tokenizer; llama.cpp gets
// its GGUF export) instead of the random reference model; --quantization applies to the Kiln rows (default none).
//
// Reference config: d 512, 8 layers, 8 heads, vocab 8192, SiLU MLP 1536, tied head (the tiny byte-level
// BPE tokenizer, `kiln.json` {"fimOrders":["spm"]}: the prompt is suffix first, so typing appends).
// Trace: a TypeScript module of ~1,000 tokens; a 60-line function is typed into its middle one character
// per keystroke (Enter inserts the next line's indentation, as the editor does), one request each.
//
// Rows, interleaved in blocks of --block keystrokes: Kiln first (the llama.cpp rows replay its prompts
// and decode counts), then the others over the same block in an order that rotates per block. Each
// row keeps its own state across blocks, so every row sees every keystroke in order. Blocks rather
// than single keystrokes: right after another engine has streamed its weights through the caches a
// request runs slower (llama.cpp's 1-token first step went from ~5 ms to 30–60 ms here), a cost the
// product, running one engine, never pays; --block 1 interleaves per keystroke.
//   kiln reuse       one CompletionEngine for the whole replay: KV pool at its default budget, the
//                    product's settings except speculation off; line mode, greedy, token healing on.
//   kiln cold        the same engine class with kvBudgetMB 0: no state is ever pooled, so every prompt
//                    is prefilled from empty (checked: reused is 0 on every request). Every K-th keystroke.
//   llama.cpp F16/F32  `sequence.adaptStateToTokens(prompt, false)` (erases from the first differing
//                    token), evaluate the rest, then exactly as many greedy tokens as Kiln decoded on
//                    that keystroke; one context per row (its defaults: F16 KV cache, flash attention auto).
// Both Kiln rows send each request as a new document, so typing-through and the answer cache never
// answer: the rows measure the model path. How often typing-through WOULD have answered (the product,
// one document) is replayed separately with the engine's own `typeThrough` over the reuse row's answers.
// Latency is request to answer (wall time around `complete`, which includes building and tokenizing the
// prompt); llama.cpp is timed from `adaptStateToTokens` to its last token (it gets token ids, no text).
//
// Size: full replays all ~1,600 keystrokes (cold every 32nd); --quick the first 60 (cold every 6th).
// --lookup runs the lookup-decoding rows instead (lookup-rows.ts; no llama.cpp): Kiln with
// `kiln.lookupDecoding` off and on (one row per K:N, draft length K from n-grams of N tokens or more), interleaved per keystroke, the same
// suggestions checked on every keystroke; acceptance, tokens per forward and the one-line p50/p95.
// --threads applies to both engines. On a loaded machine, threads = cores can stall llama.cpp's
// spinning thread pool far more than ORT's (seen at load average ~7.5 on 2 cores: 16 decode steps
// took 5–12 s at 2 threads, 60 ms at 1): read the loadavg line, and compare at --threads 1 there too.
import * as ort from 'onnxruntime-node';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type CompletionModel, loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { type ShownSuggestion, typeThrough } from '../../server/src/completion/typing-through';
import { type KilnSettings, parseSettings } from '../../server/src/lsp/settings';
import type { InferenceServer } from '../../server/src/runtime/inference-server';
import { EXECUTION_PROVIDER_CHOICES, type ExecutionProviderChoice } from '../../server/src/runtime/execution-provider';
import { QUANTIZATION_SETTINGS, type QuantizationSetting } from '../../server/src/runtime/quantization-choice';
import { exportGguf } from '../../server/src/model/export/gguf';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { getPeerLlama, type PeerModel, withLlamaCppModel } from '../helpers/llama-cpp-peer';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { BenchArgs } from './bench-args';
import { emitJson, log, round, summarize } from './bench-stats';
import { lookupRows } from './lookup-rows';
import { parseRealSizeArgs, runRealSize } from './real-size.bench';
import {
  distribution,
  type Distribution,
  FILE_AFTER,
  FILE_BEFORE,
  type Keystroke,
  type KilnSample,
  kilnKeystroke,
  llamaKeystroke,
  recordingModel,
  REFERENCE,
  type Sample,
  type TraceContext,
  type TraceSequence,
  TYPED_FUNCTION,
  typingTrace,
  WEIGHTS_SEED,
} from './keystroke-trace';

// ---------- settings ----------

interface Settings {
  reps: number;
  keystrokes: number;
  block: number;
  coldEvery: number;
  maxTokens: number;
  threads: number;
  ep: ExecutionProviderChoice;
  quick: boolean;
  out?: string;
  model?: string;
  quantization: QuantizationSetting;
  lookup: boolean;
  lookupDrafts: { maxDraft: number; minNgram: number }[];
  /** The prompt order the model loaded with (set after loading). */
  fimOrder?: string;
} // prettier-ignore

function parseArgs(argv: string[]): Settings {
  const quick = argv.includes('--quick');
  const s: Settings = {
    reps: 1,
    keystrokes: quick ? 60 : Infinity,
    block: 32,
    coldEvery: quick ? 6 : 32,
    maxTokens: 16,
    threads: 2,
    ep: 'cpu',
    quick,
    quantization: 'none',
    lookup: false,
    lookupDrafts: [
      { maxDraft: 4, minNgram: 1 },
      { maxDraft: 4, minNgram: 2 },
      { maxDraft: 6, minNgram: 2 },
    ],
  };
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--reps') s.reps = args.positiveInt();
    else if (a === '--keystrokes') s.keystrokes = args.positiveInt();
    else if (a === '--block') s.block = args.positiveInt();
    else if (a === '--cold-every') s.coldEvery = args.positiveInt();
    else if (a === '--max-tokens') s.maxTokens = args.positiveInt();
    else if (a === '--threads') s.threads = args.positiveInt();
    else if (a === '--out') s.out = args.value();
    else if (a === '--model') s.model = args.value();
    else if (a === '--ep') s.ep = args.oneOf(EXECUTION_PROVIDER_CHOICES);
    else if (a === '--quantization') s.quantization = args.oneOf(QUANTIZATION_SETTINGS);
    else if (a === '--lookup') s.lookup = true;
    else if (a === '--lookup-drafts')
      s.lookupDrafts = args
        .value()
        .split(',')
        .map((d) => ({ maxDraft: Number(d.split(':')[0]), minNgram: Number(d.split(':')[1] ?? 1) }));
    else if (a !== '--quick') throw new Error(`unknown argument ${a}`);
  }
  return s;
}

// ---------- the typing trace ----------

// ---------- rows ----------

interface LlamaRow {
  name: string;
  context: TraceContext;
  sequence: TraceSequence;
}

async function llamaRow(name: string, model: PeerModel, s: Settings, contextSize: number): Promise<LlamaRow> {
  const context = (await model.createContext({ contextSize, sequences: 1, threads: s.threads })) as unknown as TraceContext;
  return { name, context, sequence: context.getSequence() };
}

// ---------- the run ----------

const ROWS = ['kiln reuse', 'kiln cold', 'llama.cpp F16', 'llama.cpp F32'] as const;
type RowName = (typeof ROWS)[number];

/** What one replay of the trace recorded. */
interface Replay {
  samples: Record<RowName, Sample[]>;
  /** Keystrokes typing-through would have answered in the product (one document, shown suggestion kept). */
  typingThroughHits: number;
  /** Cold requests whose decode count / suggestion equal the reuse row's on the same keystroke. */
  coldSameDecodeTokens: number;
  coldSameSuggestion: number;
  promptTokens: number[];
}

interface Kiln {
  model: CompletionModel;
  takePrompt: () => number[];
  serverFor: (settings: KilnSettings) => InferenceServer;
  reuse: KilnSettings;
  cold: KilnSettings;
}

async function replay(trace: Keystroke[], kiln: Kiln, llama: LlamaRow[], s: Settings, rep: number): Promise<Replay> {
  const reuse = new CompletionEngine(kiln.model, kiln.reuse, new LatencyStats(), { server: kiln.serverFor(kiln.reuse) });
  const cold = new CompletionEngine(kiln.model, kiln.cold, new LatencyStats(), { server: kiln.serverFor(kiln.cold) });
  for (const row of llama) await row.sequence.clearHistory();
  const r: Replay = {
    samples: { 'kiln reuse': [], 'kiln cold': [], 'llama.cpp F16': [], 'llama.cpp F32': [] },
    typingThroughHits: 0,
    coldSameDecodeTokens: 0,
    coldSameSuggestion: 0,
    promptTokens: [],
  };
  let shown: ShownSuggestion | undefined;
  const uri = (row: string, i: number) => `file:///bench/${row}/${rep}/${i}/jobs.ts`;
  const started = performance.now();
  let lastLog = started;
  for (let from = 0; from < trace.length; from += s.block) {
    const block = trace.slice(from, from + s.block).map((k, j) => ({ k, i: from + j }));
    const warm: KilnSample[] = [];
    for (const { k, i } of block) {
      const w = await kilnKeystroke(reuse, kiln.takePrompt, k, i, uri('reuse', i));
      warm.push(w);
      r.samples['kiln reuse'].push(w);
      r.promptTokens.push(w.prompt.length);
      // the product's typing-through, replayed as engine.complete/finish would for one document
      const before = k.text.slice(0, k.offset);
      const after = k.text.slice(k.offset);
      const rest = shown && typeThrough(shown, before, after);
      if (rest) r.typingThroughHits++;
      shown = rest ? { before, after, completion: rest } : w.suggestion ? { before, after, completion: w.suggestion } : undefined;
    }
    const others: (() => Promise<void>)[] = llama.map((row) => async () => {
      for (const w of warm) r.samples[row.name as RowName].push(await llamaKeystroke(row.sequence, w.prompt, Math.max(1, w.decodeTokens), w.keystroke));
    });
    others.push(async () => {
      for (const [j, { k, i }] of block.entries()) {
        if (i % s.coldEvery !== 0) continue;
        const c = await kilnKeystroke(cold, kiln.takePrompt, k, i, uri('cold', i));
        if (c.reused !== 0) throw new Error(`keystroke ${i}: the cold row reused ${c.reused} tokens`);
        if (c.prompt.join() !== warm[j]!.prompt.join()) throw new Error(`keystroke ${i}: cold and reuse rows built different prompts`);
        r.samples['kiln cold'].push(c);
        if (c.decodeTokens === warm[j]!.decodeTokens) r.coldSameDecodeTokens++;
        if (c.suggestion === warm[j]!.suggestion) r.coldSameSuggestion++;
      }
    });
    const turn = from / s.block + rep;
    for (let j = 0; j < others.length; j++) await others[(turn + j) % others.length]!();
    const done = from + block.length;
    if (performance.now() - lastLog > 30_000 || done === trace.length) {
      lastLog = performance.now();
      log(`  rep ${rep + 1}: ${done}/${trace.length} keystrokes (${Math.round((lastLog - started) / 1000)} s, loadavg ${os.loadavg()[0]!.toFixed(2)})`);
    }
  }
  return r;
}

async function main(): Promise<void> {
  // --size 0.5b|1.5b: the real-size rows (real-size.bench.ts): its keystroke trace and the product-defaults row
  if (process.argv.includes('--size')) return runRealSize(parseRealSizeArgs(['--parts', 'trace,defaults', ...process.argv.slice(2)]));
  const s = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const loadavgBefore = os.loadavg().map((x) => round(x));
  const root = mkdtempSync(join(os.tmpdir(), 'kiln-bench-keystroke-'));
  let llamaLoaded = false;
  let kilnSession: { release(): Promise<void> } | undefined;
  try {
    let t = performance.now();
    const modelDir = s.model ?? writeTinyCodeModel(join(root, 'model'), { seed: WEIGHTS_SEED, config: REFERENCE, fimOrders: ['spm'] });
    if (s.lookup) return await runLookupRows(s, modelDir, root, loadavgBefore);
    const gguf = { f16: join(root, 'model-f16.gguf'), f32: join(root, 'model-f32.gguf') };
    await exportGguf(modelDir, gguf.f16, { dtype: 'f16' });
    await exportGguf(modelDir, gguf.f32, { dtype: 'f32' });
    const loaded = await loadCompletionModel(
      modelDir,
      { fimOrder: 'auto', quantization: s.quantization },
      { executionProvider: s.ep, threads: s.threads, cacheDir: join(root, 'graph-cache') },
    );
    kilnSession = loaded.loaded.session;
    if (s.ep !== 'cpu' && loaded.loaded.session.provider !== s.ep) log(`--ep ${s.ep} not available: the Kiln rows run on ${loaded.loaded.session.provider}`);
    // the model's own FIM order: SPM for the reference model (kiln.json), PSM for Qwen2.5-Coder-style
    // models, where a keystroke re-prefills the suffix tokens after the cursor
    s.fimOrder = loaded.order;
    log(`FIM order: ${loaded.order}`);
    const update = parseSettings({
      executionProvider: s.ep,
      threads: s.threads,
      maxTokens: s.maxTokens,
      completionMode: 'line',
      candidates: 1,
      speculate: false,
      timeLimitMs: 60000,
    });
    if (update.problems.length) throw new Error(update.problems.join('; '));
    // kvBudgetMB 0 is below the setting's range on purpose: the pool then keeps nothing
    const kiln: Kiln = { ...recordingModel(loaded), reuse: update.settings, cold: { ...update.settings, kvBudgetMB: 0 } };
    const fullTrace = typingTrace();
    const trace = fullTrace.slice(0, s.keystrokes);
    log(`weights, GGUF exports, Kiln session: ${Math.round(performance.now() - t)} ms (${root}); ${trace.length} of ${fullTrace.length} keystrokes`);

    llamaLoaded = true;
    const result = await withLlamaCppModel(gguf.f16, (m16) =>
      withLlamaCppModel(gguf.f32, async (m32) => {
        const contextSize = loaded.contextTokens;
        const llama = [await llamaRow('llama.cpp F16', m16, s, contextSize), await llamaRow('llama.cpp F32', m32, s, contextSize)];
        try {
          // warm-up (untimed): one cold request per row on the trace's first prompt
          t = performance.now();
          const first = await kilnKeystroke(
            new CompletionEngine(kiln.model, kiln.cold, new LatencyStats(), { server: kiln.serverFor(kiln.cold) }),
            kiln.takePrompt,
            trace[0]!,
            -1,
            'file:///bench/warm-up.ts',
          );
          for (const row of llama) await llamaKeystroke(row.sequence, first.prompt, 2, -1);
          log(`warm-up: ${Math.round(performance.now() - t)} ms`);
          const replays: Replay[] = [];
          for (let rep = 0; rep < s.reps; rep++) {
            t = performance.now();
            replays.push(await replay(trace, kiln, llama, s, rep));
            log(`rep ${rep + 1}/${s.reps}: ${Math.round((performance.now() - t) / 1000)} s`);
          }
          const fileTokens = { beforeTyping: loaded.tokenizer.encode(FILE_BEFORE + FILE_AFTER).length, typedFunction: loaded.tokenizer.encode(TYPED_FUNCTION).length };
          const release = ((await getPeerLlama()) as unknown as { llamaCppRelease: { repo: string; release: string } }).llamaCppRelease;
          return report(
            s,
            replays,
            llama,
            { fileTokens, typed: trace.length, total: fullTrace.length },
            `${release.repo} ${release.release}`,
            loadavgBefore,
            started,
            loaded.loaded.session.provider,
          );
        } finally {
          for (const row of llama) await row.context.dispose();
        }
      }),
    );
    printTable(result);
    emitJson(result, s.out);
  } finally {
    await kilnSession?.release();
    if (llamaLoaded) await ((await getPeerLlama()) as unknown as { dispose(): Promise<void> }).dispose(); // its native backend
    rmSync(root, { recursive: true, force: true });
  }
}

/** `--lookup`: the lookup-decoding rows over the trace, with the machine's load. */
async function runLookupRows(s: Settings, modelDir: string, root: string, loadavgBefore: number[]): Promise<void> {
  if (s.lookupDrafts.some((d) => !(Number.isInteger(d.maxDraft) && d.maxDraft >= 1 && Number.isInteger(d.minNgram) && d.minNgram >= 1 && d.minNgram <= 4)))
    throw new Error('--lookup-drafts must list K:N pairs, K ≥ 1 and N in 1..4');
  const loaded = await loadCompletionModel(
    modelDir,
    { fimOrder: 'auto', quantization: s.quantization },
    { executionProvider: s.ep, threads: s.threads, cacheDir: join(root, 'graph-cache') },
  );
  try {
    const update = parseSettings({
      executionProvider: s.ep,
      threads: s.threads,
      maxTokens: s.maxTokens,
      completionMode: 'line',
      candidates: 1,
      temperature: 0,
      timeLimitMs: 60000,
    });
    const settings = { ...update.settings, speculate: false };
    const trace = typingTrace().slice(0, s.keystrokes);
    await new CompletionEngine(loaded, settings, new LatencyStats()).complete({ uri: 'file:///bench/warm-up.ts', text: trace[0]!.text, offset: trace[0]!.offset }); // untimed
    const result = {
      ...(await lookupRows({ model: loaded, trace, settings, drafts: s.lookupDrafts, log })),
      settings: { maxTokens: s.maxTokens, completionMode: 'line', tokenHealing: true, threads: s.threads, provider: loaded.loaded.session.provider },
      config: { model: s.model ?? 'random reference', quantization: s.quantization },
      loadavg: { before: loadavgBefore, after: os.loadavg().map((x) => round(x)) },
    };
    for (const [name, row] of Object.entries(result.rows)) log(`${name}: ${JSON.stringify(row)}`);
    log(`loadavg before ${result.loadavg.before.join(' ')}, after ${result.loadavg.after.join(' ')}`);
    emitJson(result, s.out);
  } finally {
    await loaded.loaded.session.release();
  }
}

// ---------- report ----------

function rowFigures(perRep: Sample[][]) {
  const all = perRep.flat();
  const share = (keep: (x: Sample) => boolean) => round(all.filter(keep).length / all.length, 4);
  const prompt = all.reduce((n, x) => n + x.computed + x.reused, 0);
  return {
    keystrokes: all.length,
    latencyMs: distribution(all.map((x) => x.ms)),
    p50MsAcrossReps: summarize(perRep.map((xs) => distribution(xs.map((x) => x.ms)).p50)),
    firstTokenMs: distribution(all.map((x) => x.firstTokenMs)),
    prefilledTokens: distribution(all.map((x) => x.computed)),
    computedAtMost4Share: share((x) => x.computed <= 4),
    cacheHitRatio: share((x) => x.reused > 0),
    tokenReuseRatio: round(all.reduce((n, x) => n + x.reused, 0) / prompt, 4),
    decodeTokens: distribution(all.map((x) => x.decodeTokens)),
    /** After the first token: (latency − first token) / (decode tokens − 1), over requests that decoded 2 or more. */
    msPerLaterToken: distribution(all.filter((x) => x.decodeTokens > 1).map((x) => (x.ms - x.firstTokenMs) / (x.decodeTokens - 1))),
  };
}

/** The reuse row's p50 over the keystrokes the cold row sampled where both decoded as many tokens, over the cold p50 there. */
function pairedReuseOverCold(replays: Replay[]): { ratio: number; keystrokes: number } {
  const warm: number[] = [];
  const cold: number[] = [];
  for (const r of replays) {
    const byKeystroke = new Map(r.samples['kiln reuse'].map((x) => [x.keystroke, x]));
    for (const c of r.samples['kiln cold']) {
      const w = byKeystroke.get(c.keystroke)!;
      if (w.decodeTokens !== c.decodeTokens) continue;
      warm.push(w.ms);
      cold.push(c.ms);
    }
  }
  return { ratio: round(distribution(warm).p50 / distribution(cold).p50, 4), keystrokes: warm.length };
}

/** ggml's type ids for the KV cache types that can show up here. */
const GGML_TYPE_NAMES: Record<number, string> = { 0: 'F32', 1: 'F16', 8: 'Q8_0' };

type TraceFacts = { fileTokens: { beforeTyping: number; typedFunction: number }; typed: number; total: number };

function report(s: Settings, replays: Replay[], llama: LlamaRow[], trace: TraceFacts, llamaCpp: string, loadavgBefore: number[], started: number, kilnProvider: string) {
  const rows = Object.fromEntries(ROWS.map((name) => [name, rowFigures(replays.map((r) => r.samples[name]))])) as Record<RowName, ReturnType<typeof rowFigures>>;
  const p50 = (name: RowName) => rows[name].latencyMs.p50;
  const reuseOverCold = round(p50('kiln reuse') / p50('kiln cold'), 4);
  const overF16 = round(p50('kiln reuse') / p50('llama.cpp F16'), 4);
  const overF32 = round(p50('kiln reuse') / p50('llama.cpp F32'), 4);
  const hits = replays.reduce((n, r) => n + r.typingThroughHits, 0);
  const coldN = rows['kiln cold'].keystrokes;
  const ortVersion = (ort.env as unknown as { versions?: { node?: string; common?: string } }).versions;
  const peer = JSON.parse(readFileSync(join(__dirname, '..', 'peers', 'node_modules', 'node-llama-cpp', 'package.json'), 'utf8')) as { version: string };
  return {
    headline: {
      kilnReuseP50Ms: p50('kiln reuse'),
      kilnColdP50Ms: p50('kiln cold'),
      reuseOverCold,
      reuseTarget: '<= 0.1',
      reuseMet: reuseOverCold <= 0.1,
      pairedReuseOverCold: pairedReuseOverCold(replays),
      firstTokenReuseOverCold: round(rows['kiln reuse'].firstTokenMs.p50 / rows['kiln cold'].firstTokenMs.p50, 4),
      llamaCppF16P50Ms: p50('llama.cpp F16'),
      llamaCppF32P50Ms: p50('llama.cpp F32'),
      kilnOverLlamaCppF16: overF16,
      kilnOverLlamaCppF32: overF32,
      llamaCppTarget: '<= 1 (against the faster llama.cpp row)',
      llamaCppMet: Math.max(overF16, overF32) <= 1,
      computedAtMost4Share: Object.fromEntries(ROWS.map((name) => [name, rows[name].computedAtMost4Share])),
      typingThrough: {
        hits,
        share: round(hits / (trace.typed * replays.length), 4),
        note: 'keystrokes the product (one document) would answer with no model work; the rows above ran the model on them',
      },
      coldAgreesWithReuse: {
        sampled: coldN,
        sameDecodeTokens: replays.reduce((n, r) => n + r.coldSameDecodeTokens, 0),
        sameSuggestion: replays.reduce((n, r) => n + r.coldSameSuggestion, 0),
      },
    },
    rows,
    /** Per row, [keystroke, latency ms] of the first replay: the data of the latency chart. */
    perKeystroke: Object.fromEntries(ROWS.map((name) => [name, replays[0]!.samples[name].map((x) => [x.keystroke, round(x.ms, 2)])])),
    trace: {
      keystrokes: trace.typed,
      traceKeystrokes: trace.total,
      functionLines: TYPED_FUNCTION.split('\n').length - 1,
      fileTokens: trace.fileTokens,
      promptTokens: distribution(replays.flatMap((r) => r.promptTokens)),
    },
    llamaCpp: Object.fromEntries(
      llama.map((row) => [
        row.name,
        {
          flashAttention: row.context.flashAttention,
          kvCacheType: GGML_TYPE_NAMES[row.context.kvCacheKeyType as number] ?? String(row.context.kvCacheKeyType),
          batchSize: row.context.batchSize,
        },
      ]),
    ),
    settings: {
      reps: s.reps,
      keystrokes: trace.typed,
      block: s.block,
      coldEvery: s.coldEvery,
      maxTokens: s.maxTokens,
      completionMode: 'line',
      tokenHealing: true,
      threads: s.threads,
      executionProvider: { asked: s.ep, used: kilnProvider },
      quick: s.quick,
    },
    config: { ...(s.model ? { model: s.model } : { ...REFERENCE, weightsSeed: WEIGHTS_SEED }), quantization: s.quantization, fimOrder: s.fimOrder },
    machine: {
      cpu: `${os.cpus()[0]?.model} (${os.cpus().length} logical CPUs, ${s.threads} threads used)`,
      loadavg: { before: loadavgBefore, after: os.loadavg().map((x) => round(x)) },
      versions: { node: process.version, onnxruntimeNode: ortVersion?.node ?? ortVersion?.common, nodeLlamaCpp: peer.version, llamaCpp },
      totalSeconds: round((performance.now() - started) / 1000, 1),
    },
    notes: [
      'Rows are interleaved in blocks of `block` keystrokes: kiln reuse first (llama.cpp replays its prompts and decode counts), then the others in an order rotating per block; each row sees every keystroke in order.',
      'kiln cold runs on every coldEvery-th keystroke only (a cold prompt does not depend on earlier keystrokes); pairedReuseOverCold compares the same keystrokes at equal decode tokens.',
      'Kiln latency includes building, tokenizing and healing the prompt, stop rules and post-processing; llama.cpp gets token ids and its tokens are not detokenized.',
      'Decode count: Kiln stops at a line end or maxTokens (+ the bytes token healing forces); llama.cpp then decodes exactly as many tokens greedily, with no stop rule.',
      'Random weights: suggestions are noise, so typing-through rarely applies; a trained model would answer more keystrokes that way. The machine is shared: see loadavg.',
    ],
  };
}

function printTable(r: ReturnType<typeof report>): void {
  const ms = (d: Distribution) => `${d.p50.toFixed(1)} / ${d.p95.toFixed(1)}`;
  const header = [
    'row',
    'keystrokes',
    'latency p50 / p95 ms',
    'first token p50 / p95 ms',
    'prefilled p50 / p95 / mean tok',
    'prefilled <= 4',
    'cache hit',
    'token reuse',
    'decode tok mean',
    'ms / later token',
  ];
  const cells = Object.entries(r.rows).map(([name, x]) => [
    name,
    String(x.keystrokes),
    ms(x.latencyMs),
    ms(x.firstTokenMs),
    `${x.prefilledTokens.p50} / ${x.prefilledTokens.p95} / ${x.prefilledTokens.mean.toFixed(1)}`,
    `${(100 * x.computedAtMost4Share).toFixed(1)}%`,
    `${(100 * x.cacheHitRatio).toFixed(1)}%`,
    `${(100 * x.tokenReuseRatio).toFixed(1)}%`,
    x.decodeTokens.mean.toFixed(1),
    x.msPerLaterToken.p50.toFixed(1),
  ]);
  const width = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const m = r.machine;
  log('');
  log(`${m.cpu}; node ${m.versions.node}, onnxruntime-node ${m.versions.onnxruntimeNode}, node-llama-cpp ${m.versions.nodeLlamaCpp} (llama.cpp ${m.versions.llamaCpp})`);
  log(
    `loadavg before ${m.loadavg.before.join(' ')}, after ${m.loadavg.after.join(' ')} (a shared machine: absolute times swing with it; rows interleaved in blocks of ${r.settings.block} keystrokes)`,
  );
  log(
    `trace: ${r.trace.keystrokes} of ${r.trace.traceKeystrokes} keystrokes, file ${r.trace.fileTokens.beforeTyping} tokens + a ${r.trace.functionLines}-line function of ${r.trace.fileTokens.typedFunction}; prompts ${r.trace.promptTokens.min}–${r.trace.promptTokens.max} tokens; ${r.settings.reps} rep(s)`,
  );
  for (const row of [header, ...cells]) log(row.map((c, i) => c.padEnd(width[i]!)).join('  '));
  log(`headline: ${JSON.stringify(r.headline)}`);
  log('');
}

main().catch((err: Error) => {
  log(`keystroke bench failed: ${err.stack ?? err.message}`);
  process.exitCode = 1;
});

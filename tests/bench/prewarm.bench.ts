// Pre-warm, the prefill budget and PSM's typed middle, on the 25M reference model (seeded random
// weights) and the keystroke trace's ~1,000-token file, through the real CompletionEngine:
//
//  1. cold first suggestion: the first keystroke after opening the file — cold (no rate measured),
//     cold after another request or after the calibration the model host runs at load (rates
//     measured), after a pre-warm that finished (the user paused), and after one the keystroke
//     interrupted — at the model's own speed and slowed per computed token to a 0.5B model's
//     prefill rate on 2 threads (where a cold prompt does not fit the 2 s time limit and the
//     prefill budget answers from a shorter window);
//  2. PSM first-token latency on the typing trace: plain PSM at several suffix budgets against the
//     typed middle, with SPM as the reference; every variant's keystroke k runs before any k + 1.
//
//   node --import tsx tests/bench/prewarm.bench.ts [--reps 5] [--keystrokes 240] [--threads 2]
//        [--slow-ms-per-token 2] [--model DIR [--quantization none|int8|int4]] [--only cold|trace] [--out FILE]
//
// With --model (e.g. a real-size checkpoint) the model runs in its own FIM order only, unslowed,
// and the trace compares PSM's plain and typed-middle prompts when that order is PSM.
//
// Timings are medians and nearest-rank p95 of one run; the machine's load is printed with them.
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type CompletionModel, loadCompletionModel } from '../../server/src/completion/completion-model';
import type { CompletionSettings } from '../../server/src/completion/completion-settings';
import { CompletionEngine } from '../../server/src/completion/engine';
import type { FimOrder } from '../../server/src/model/fim';
import { parseSettings } from '../../server/src/lsp/settings';
import { InferenceServer } from '../../server/src/runtime/inference-server';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { scriptedSession } from '../helpers/scripted-session';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { BenchArgs } from './bench-args';
import { emitJson, log, round } from './bench-stats';
import { distribution, FILE_AFTER, FILE_BEFORE, kilnKeystroke, REFERENCE, recordingModel, TYPED_FUNCTION, typingTrace, WEIGHTS_SEED } from './keystroke-trace';

interface Settings {
  reps: number;
  keystrokes: number;
  threads: number;
  slowMsPerToken: number;
  model?: string;
  quantization: QuantBitsSetting;
  only?: 'cold' | 'trace';
  out?: string;
}

type QuantBitsSetting = 'none' | 'int8' | 'int4';

function parseArgs(argv: string[]): Settings {
  const s: Settings = { reps: 5, keystrokes: 240, threads: 2, slowMsPerToken: 2, quantization: 'none' };
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--reps') s.reps = args.positiveInt();
    else if (a === '--keystrokes') s.keystrokes = args.positiveInt();
    else if (a === '--threads') s.threads = args.positiveInt();
    else if (a === '--slow-ms-per-token') s.slowMsPerToken = Number(args.value());
    else if (a === '--model') s.model = args.value();
    else if (a === '--quantization') s.quantization = args.oneOf(['none', 'int8', 'int4'] as const);
    else if (a === '--only') s.only = args.oneOf(['cold', 'trace'] as const);
    else if (a === '--out') s.out = args.value();
    else if (a === '--quick') {
      s.reps = 2;
      s.keystrokes = 60;
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!(s.slowMsPerToken >= 0)) throw new Error('--slow-ms-per-token needs a number ≥ 0');
  return s;
}

/** One suggestion as the bench records it. */
interface Answer {
  totalMs: number;
  firstTokenMs: number;
  computed: number;
  reused: number;
  decodeTokens: number;
  shortWindowTokens?: number;
}

const DECODE_TOKENS = 8; // a one-line suggestion, as the keystroke bench fixes it (random weights rarely stop)

function settingsFor(threads: number, extra: Partial<CompletionSettings> = {}): CompletionSettings {
  const update = parseSettings({ threads, maxTokens: DECODE_TOKENS, completionMode: 'line', candidates: 1, speculate: false, tokenHealing: true, kvBudgetMB: 96 });
  if (update.problems.length) throw new Error(update.problems.join('; '));
  return { ...update.settings, ...extra };
}

// ---------- 1. cold first suggestion ----------

type ColdCase = 'cold' | 'cold, rate known' | 'cold, calibrated' | 'pre-warmed' | 'pre-warm interrupted';
const COLD_CASES: ColdCase[] = ['cold', 'cold, rate known', 'cold, calibrated', 'pre-warmed', 'pre-warm interrupted'];

/**
 * The file opened and its first keystroke (the trace's first character). The trace's module is ~1,000
 * tokens for the reference model's tokenizer; a real model's (Qwen2's) packs it into ~450, so with
 * --model the module also holds the typed function above the cursor (~1,000 Qwen2 tokens).
 */
function openedFile(realModel: boolean) {
  const head = realModel
    ? `${FILE_BEFORE}${TYPED_FUNCTION.replaceAll('runQueue', 'runQueueOnce')}
`
    : FILE_BEFORE;
  return { opened: { text: head + FILE_AFTER, offset: head.length }, firstKey: { text: head + TYPED_FUNCTION[0] + FILE_AFTER, offset: head.length + 1 } };
}
let { opened: OPENED, firstKey: FIRST_KEY } = openedFile(false);
/** Another file, for measuring the prefill rate before the cold request ('cold, rate known'). */
const OTHER_FILE = `${FILE_AFTER.repeat(6)}\nexport const z = `;

async function coldCase(model: CompletionModel, s: Settings, slow: number, which: ColdCase): Promise<Answer> {
  const session = slow > 0 ? scriptedSession(model.loaded.session, { msPerToken: slow }) : model.loaded.session;
  const settings = settingsFor(s.threads);
  const server = new InferenceServer(session, { kvBudgetBytes: settings.kvBudgetMB * 2 ** 20 });
  const engine = new CompletionEngine(model, settings, new LatencyStats(), { server });
  const uri = 'file:///bench/queue.ts';
  if (which === 'cold, rate known') {
    await engine.complete({ uri: 'file:///bench/other.ts', text: OTHER_FILE, offset: OTHER_FILE.length });
    await server.whenIdle();
  }
  if (which === 'cold, calibrated') await engine.calibrate(); // what the model host runs once a model is ready
  if (which === 'pre-warmed') await engine.prewarm({ uri, ...OPENED });
  if (which === 'pre-warm interrupted') {
    let chunk!: () => void;
    const first = new Promise<void>((r) => (chunk = r));
    const stop = server.observeForwards((run) => run.priority === 'background' && chunk());
    void engine.prewarm({ uri, ...OPENED });
    await first; // the keystroke arrives after the warm's first chunk
    stop();
  }
  const t0 = performance.now();
  const answer = await engine.complete({ uri, ...FIRST_KEY });
  const totalMs = performance.now() - t0;
  await server.whenIdle(); // a short window's background prefill ends before the next case
  const t = answer.timings;
  return {
    totalMs,
    firstTokenMs: t.queueMs + t.tokenizeMs + t.prefillMs,
    computed: t.prefillComputed,
    reused: t.prefillReused,
    decodeTokens: t.decodeTokens,
    ...(t.shortWindowTokens === undefined ? {} : { shortWindowTokens: t.shortWindowTokens }),
  };
}

async function coldRows(model: CompletionModel, s: Settings) {
  const speeds = [0, ...(s.slowMsPerToken > 0 && !s.model ? [s.slowMsPerToken] : [])];
  const samples = new Map<string, Answer[]>();
  await coldCase(model, s, 0, 'cold'); // warm-up (untimed): the session's first runs
  for (let rep = 0; rep < s.reps; rep++) {
    for (const slow of speeds)
      for (const which of COLD_CASES) {
        const key = `${slow > 0 ? `slowed +${slow} ms/token` : 'model speed'} | ${which}`;
        const list = samples.get(key) ?? [];
        list.push(await coldCase(model, s, slow, which));
        samples.set(key, list);
      }
    log(`cold first suggestion: rep ${rep + 1}/${s.reps}`);
  }
  return [...samples].map(([row, xs]) => ({
    row,
    totalMs: distribution(xs.map((x) => x.totalMs)),
    firstTokenMs: distribution(xs.map((x) => x.firstTokenMs)),
    computed: distribution(xs.map((x) => x.computed)).p50,
    reused: distribution(xs.map((x) => x.reused)).p50,
    decodeTokens: distribution(xs.map((x) => x.decodeTokens)).p50,
    shortWindowTokens: xs[0]!.shortWindowTokens ?? null,
  }));
}

// ---------- 2. PSM first-token latency on the trace ----------

interface Variant {
  name: string;
  order: FimOrder;
  settings: Partial<CompletionSettings>;
}

const VARIANTS: Variant[] = [
  { name: 'SPM (reference)', order: 'spm', settings: {} },
  ...[256, 128, 64, 32, 0].map((suffix) => ({ name: `PSM plain, suffix ≤ ${suffix}`, order: 'psm' as const, settings: { maxSuffixTokens: suffix, psmTypedMiddle: false } })),
  ...[256, 64].map((suffix) => ({ name: `PSM typed middle, suffix ≤ ${suffix}`, order: 'psm' as const, settings: { maxSuffixTokens: suffix, psmTypedMiddle: true } })),
];

async function traceRows(models: Partial<Record<FimOrder, CompletionModel>>, s: Settings) {
  const trace = typingTrace().slice(0, s.keystrokes);
  const variants = s.model ? VARIANTS.filter((v) => models[v.order] && (v.order === 'spm' || v.settings.maxSuffixTokens === 256)) : VARIANTS;
  const rows = variants.map((v) => {
    const rec = recordingModel(models[v.order]!);
    const settings = { ...settingsFor(s.threads), ...v.settings, prewarm: false };
    return { v, rec, engine: new CompletionEngine(rec.model, settings, new LatencyStats(), { server: rec.serverFor(settings) }), samples: [] as Answer[] };
  });
  for (const [k, key] of trace.entries()) {
    for (const row of rows) {
      const sample = await kilnKeystroke(row.engine, row.rec.takePrompt, key, k, `file:///bench/${k}.ts`);
      row.samples.push({ totalMs: sample.ms, firstTokenMs: sample.firstTokenMs, computed: sample.computed, reused: sample.reused, decodeTokens: sample.decodeTokens });
    }
    if ((k + 1) % 40 === 0) log(`trace: ${k + 1}/${trace.length} keystrokes`);
  }
  return rows.map(({ v, samples }) => ({
    row: v.name,
    firstTokenMs: distribution(samples.slice(1).map((x) => x.firstTokenMs)), // the first keystroke is cold for every variant
    totalMs: distribution(samples.slice(1).map((x) => x.totalMs)),
    computed: distribution(samples.slice(1).map((x) => x.computed)),
  }));
}

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const loadavgBefore = os.loadavg().map((x) => round(x, 2));
  const root = mkdtempSync(join(os.tmpdir(), 'kiln-bench-prewarm-'));
  const models: CompletionModel[] = [];
  try {
    const dir = s.model ?? writeTinyCodeModel(join(root, 'model'), { seed: WEIGHTS_SEED, config: REFERENCE, fimOrders: ['spm', 'psm'] });
    // a given model keeps its graph in Kiln's own cache (a real-size build takes a while)
    const cacheDir = s.model ? undefined : join(root, 'graph-cache');
    const load = (fimOrder: FimOrder | 'auto') =>
      loadCompletionModel(dir, { fimOrder, quantization: s.quantization }, { executionProvider: 'cpu', threads: s.threads, cacheDir }).then((m) => {
        models.push(m);
        return m;
      });
    ({ opened: OPENED, firstKey: FIRST_KEY } = openedFile(s.model !== undefined));
    const first = await load(s.model ? 'auto' : 'spm');
    const byOrder: Partial<Record<FimOrder, CompletionModel>> = { [first.order]: first };
    if (!s.model) byOrder.psm = await load('psm');
    const fileTokens = first.tokenizer.encode(OPENED.text).length;
    log(
      `model ${s.model ?? 'reference'} (${first.order}, ${s.quantization}); file: ${fileTokens} tokens; ${s.reps} reps; ${s.keystrokes} trace keystrokes; loadavg ${loadavgBefore.join(' ')}`,
    );
    const cold = s.only === 'trace' ? [] : await coldRows(first, s);
    const trace = s.only === 'cold' ? [] : await traceRows(byOrder, s);
    const result = {
      settings: s,
      model: s.model ?? { ...REFERENCE, weightsSeed: WEIGHTS_SEED },
      fileTokens,
      decodeTokens: DECODE_TOKENS,
      cold,
      trace,
      loadavg: { before: loadavgBefore, after: os.loadavg().map((x) => round(x, 2)) },
    };
    printTables(result);
    emitJson(result, s.out);
  } finally {
    for (const m of models) await m.loaded.session.release();
    rmSync(root, { recursive: true, force: true });
  }
}

function printTables(r: {
  cold: Awaited<ReturnType<typeof coldRows>>;
  trace: Awaited<ReturnType<typeof traceRows>>;
  loadavg: { before: number[]; after: number[] };
  fileTokens: number;
}): void {
  log(`\ncold first suggestion on the ${r.fileTokens}-token file (ms; p50 / p95 over reps)`);
  log('| case | total | first token | computed | reused | decoded | short window |');
  log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const c of r.cold)
    log(
      `| ${c.row} | ${c.totalMs.p50} / ${c.totalMs.p95} | ${c.firstTokenMs.p50} / ${c.firstTokenMs.p95} | ${c.computed} | ${c.reused} | ${c.decodeTokens} | ${c.shortWindowTokens ?? '—'} |`,
    );
  log(`\ntyping trace, first token (queue + tokenize + prefill) and prompt tokens computed per keystroke (p50 / p95)`);
  log('| prompt | first token ms | total ms | computed tokens |');
  log('| --- | --- | --- | --- |');
  for (const t of r.trace) log(`| ${t.row} | ${t.firstTokenMs.p50} / ${t.firstTokenMs.p95} | ${t.totalMs.p50} / ${t.totalMs.p95} | ${t.computed.p50} / ${t.computed.p95} |`);
  log(`\nloadavg before ${r.loadavg.before.join(' ')}, after ${r.loadavg.after.join(' ')}`);
}

void main().catch((err: unknown) => {
  log(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});

// Typing while a fine-tune trains: the keystroke trace through the real CompletionEngine while a
// real fine-tune child (finetune/fine-tune-process.ts, its own defaults: nice 10, automatic − 1
// threads) trains the same model on a workspace. Rows, interleaved in blocks of --block keystrokes in
// an order that rotates per block, once the child has taken its first training step:
//   idle         the child held stopped for the whole block (no CPU; its memory stays resident)
//   yield off    the child trains throughout (kiln.fineTune.yieldToTyping off)
//   yield on     the product's default: TypingYield holds the child while each request is in flight
//                and --grace-ms after the last one (finetune/typing-yield.ts)
// plus "before" (--before keystrokes before the child is started: nothing else running).
// Typing has a cadence: --gap-ms from one keystroke to the next (less the request's own time), and
// --line-pause-ms after each Enter, longer than the grace, so under "yield on" the child runs again
// between lines and the first keystroke of a line finds it mid-step. Latency is request to answer
// (wall time around `complete`); what the policy costs the fine-tune is the trainer's CPU seconds per
// wall second of each row (from /proc: progress even when a step outlasts a block) and the training
// tokens per second of the steps finished in its blocks.
//
//   node --import tsx tests/bench/typing-while-training.bench.ts [--size 0.5b|1.5b | --model DIR | --tiny]
//       [--quantization int8] [--keystrokes 240] [--block 20] [--before 40] [--gap-ms 150] [--line-pause-ms 1500]
//       [--grace-ms 400] [--threads 0] [--train-threads N] [--batch 1] [--trainer-minutes 20] [--workspace DIR] [--max-files 200] [--eval-lines 4]
//       [--start-timeout-s 1800] [--cache DIR] [--out FILE]
//
// --tiny: a tiny random code model and a generated repository, for checking that the bench runs.
// --threads 0 is the product's automatic count for the engine; the child's are its own default.
// --batch: sequences per step (default 1: what the palette's 5-minute budget gives a 0.5B model on
// this class of machine, so several steps finish within a row). --trainer-minutes: the child's time
// budget, which bounds its evaluation before training (a fifth of it) and outlasts the measurement.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import type { FineTuneEvent } from '../../server/src/finetune/fine-tune';
import { buildFineTuneOptions } from '../../server/src/finetune/fine-tune-options';
import { type FineTuneProcess, startFineTuneProcess } from '../../server/src/finetune/fine-tune-process';
import { TYPING_GRACE_MS, TypingYield } from '../../server/src/finetune/typing-yield';
import { parseSettings } from '../../server/src/lsp/settings';
import { QUANTIZATION_SETTINGS, type QuantizationSetting } from '../../server/src/runtime/quantization-choice';
import { automaticThreads } from '../../server/src/runtime/threads';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { writeOverfitModel, writeOverfitRepo } from '../fixtures/overfit-repo';
import { BenchArgs } from './bench-args';
import { emitJson, log, round } from './bench-stats';
import { distribution, type Keystroke, kilnKeystroke, recordingModel, typingTrace } from './keystroke-trace';
import { benchCacheDir, REAL_SIZE_CHOICES, type RealSize, realSizeModel } from './real-size-model';

interface Settings {
  size?: RealSize;
  model?: string;
  tiny: boolean;
  quantization: QuantizationSetting;
  keystrokes: number;
  block: number;
  before: number;
  gapMs: number;
  linePauseMs: number;
  graceMs: number;
  threads: number;
  trainThreads?: number;
  batch: number;
  trainerMinutes: number;
  workspace: string;
  maxFiles: number;
  evalLines: number;
  startTimeoutS: number;
  cache: string;
  out?: string;
} // prettier-ignore

function parseArgs(argv: readonly string[]): Settings {
  const s: Settings = {
    tiny: false,
    quantization: 'int8',
    keystrokes: 240,
    block: 20,
    before: 40,
    gapMs: 150,
    linePauseMs: 1500,
    graceMs: TYPING_GRACE_MS,
    threads: 0,
    batch: 1,
    trainerMinutes: 20,
    workspace: join(__dirname, '..', '..', 'server', 'src'),
    maxFiles: 200,
    evalLines: 4,
    startTimeoutS: 1800,
    cache: join(benchCacheDir(), 'typing-while-training'),
  };
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--size') s.size = args.oneOf(REAL_SIZE_CHOICES);
    else if (a === '--model') s.model = args.value();
    else if (a === '--tiny') s.tiny = true;
    else if (a === '--quantization') s.quantization = args.oneOf(QUANTIZATION_SETTINGS);
    else if (a === '--keystrokes') s.keystrokes = args.positiveInt();
    else if (a === '--block') s.block = args.positiveInt();
    else if (a === '--before') s.before = args.positiveInt();
    else if (a === '--gap-ms') s.gapMs = args.positiveInt();
    else if (a === '--line-pause-ms') s.linePauseMs = args.positiveInt();
    else if (a === '--grace-ms') s.graceMs = args.positiveInt();
    else if (a === '--threads') s.threads = Number(args.value());
    else if (a === '--train-threads') s.trainThreads = args.positiveInt();
    else if (a === '--batch') s.batch = args.positiveInt();
    else if (a === '--trainer-minutes') s.trainerMinutes = args.positiveInt();
    else if (a === '--workspace') s.workspace = args.value();
    else if (a === '--max-files') s.maxFiles = args.positiveInt();
    else if (a === '--eval-lines') s.evalLines = args.positiveInt();
    else if (a === '--start-timeout-s') s.startTimeoutS = args.positiveInt();
    else if (a === '--cache') s.cache = args.value();
    else if (a === '--out') s.out = args.value();
    else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isInteger(s.threads) || s.threads < 0) throw new Error('--threads needs a whole number (0: automatic)');
  return s;
}

/** User plus system CPU seconds of a process and all its threads so far (Linux /proc; 0 elsewhere or once it has gone). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    // the command name (field 2) may hold spaces: the fields after it follow its closing parenthesis
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** Linux's USER_HZ, which /proc/<pid>/stat counts in (100 on every architecture Node runs on). */
const CLOCK_TICKS_PER_SECOND = 100;

const ROWS = ['idle', 'yield off', 'yield on'] as const;
type RowName = (typeof ROWS)[number];

interface Row {
  samples: number[];
  /** Training steps reported while the row's blocks ran, and the blocks' wall seconds. */
  steps: number;
  /** The trainer's CPU seconds (all its threads) while the row's blocks ran. */
  trainerCpu: number;
  seconds: number;
  /** Times the child was stopped during the row's blocks (yield on: once per burst). */
  stops: number;
}

/** Counts the stops the yield asks for. */
function countingStops(run: FineTuneProcess): { target: FineTuneProcess; stops: () => number } {
  let stops = 0;
  const target = {
    ...run,
    suspend: () => {
      stops++;
      run.suspend();
    },
  };
  return { target, stops: () => stops };
}

/** Waits the typist's cadence after a keystroke that took `ms`: a line's end is a longer pause. */
async function cadence(k: Keystroke, ms: number, s: Settings): Promise<void> {
  const typedEnter = /\n[ \t]*$/.test(k.text.slice(Math.max(0, k.offset - 256), k.offset)); // Enter types the newline and the indentation
  await sleep(typedEnter ? s.linePauseMs : Math.max(0, s.gapMs - ms));
}

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const root = mkdtempSync(join(os.tmpdir(), 'kiln-bench-typing-training-'));
  mkdirSync(s.cache, { recursive: true });
  const loadavgBefore = os.loadavg().map((x) => round(x));
  let run: FineTuneProcess | undefined;
  try {
    const modelDir = s.tiny ? writeOverfitModel(join(root, 'model')) : (s.model ?? realSizeModel(s.size ?? '0.5b', { log }));
    const workspace = s.tiny ? join(root, 'repo') : s.workspace;
    if (s.tiny) writeOverfitRepo(workspace, 40);
    const threads = s.threads || automaticThreads();
    let t = performance.now();
    // the session where the server puts it (a worker thread of its own at real size)
    const model = await loadCompletionModel(
      modelDir,
      { fimOrder: 'auto', quantization: s.quantization },
      { executionProvider: 'cpu', threads, cacheDir: s.cache, sessionThread: 'auto' },
    );
    const precision = model.loaded.quantization ? `int${model.loaded.quantization}` : 'float32';
    log(`${modelDir} (${precision}) loaded in ${Math.round(performance.now() - t)} ms, ${threads} threads, session on the ${model.loaded.sessionThread} thread`);
    const { settings } = parseSettings({ threads, speculate: false, candidates: 1 });
    const rec = recordingModel(model);
    const engine = new CompletionEngine(rec.model, settings, new LatencyStats(), { server: rec.serverFor(settings) });
    const trace = typingTrace();
    const keystroke = async (i: number) => {
      const k = trace[i % trace.length]!;
      const sample = await kilnKeystroke(engine, rec.takePrompt, k, i, `file:///bench/${i}/jobs.ts`);
      return { k, ms: sample.ms };
    };
    await keystroke(0); // warm-up: allocation, first prefill

    // before: nothing else running
    const before: number[] = [];
    for (let i = 1; i <= s.before; i++) {
      const { k, ms } = await keystroke(i);
      before.push(ms);
      await cadence(k, ms, s);
    }

    const events: FineTuneEvent[] = [];
    const steps = () => events.filter((e) => e.type === 'step').length;
    const options = buildFineTuneOptions({
      workspace,
      modelDir,
      cacheDir: s.cache,
      outDir: join(root, 'run'),
      maxSteps: 100_000,
      epochs: 1000,
      batchSize: s.batch,
      // a budget sizes the evaluation before training to a few minutes at real size (unbounded, it
      // scores every held-out token first); the bench stops the child long before the budget ends
      minutes: s.trainerMinutes,
      patience: 1000,
      maxFiles: s.maxFiles,
      evalLines: s.evalLines,
      ...(s.tiny ? { seqLen: 128 } : {}),
      ...(s.trainThreads ? { threads: s.trainThreads } : {}),
    });
    t = performance.now();
    run = startFineTuneProcess(options, (e) => {
      events.push(e);
      if (e.type === 'phase') log(`  fine-tune: ${e.phase} (${Math.round((performance.now() - t) / 1000)} s)`);
    });
    const ended = run.result.then(
      (r) => `ended: ${r.endReason}`,
      (err: Error) => `failed: ${err.message}`,
    );
    let end: string | undefined;
    void ended.then((e) => (end = e));
    // the first step pays for allocation: measure from the second on
    while (steps() < 2) {
      if (end) throw new Error(`the fine-tune ${end} before training`);
      if (performance.now() - t > s.startTimeoutS * 1000) throw new Error(`no training step within ${s.startTimeoutS} s`);
      await sleep(100);
    }
    log(`  training from ${Math.round((performance.now() - t) / 1000)} s; ${options.threads} training threads`);

    const rows: Record<RowName, Row> = {
      idle: { samples: [], steps: 0, trainerCpu: 0, seconds: 0, stops: 0 },
      'yield off': { samples: [], steps: 0, trainerCpu: 0, seconds: 0, stops: 0 },
      'yield on': { samples: [], steps: 0, trainerCpu: 0, seconds: 0, stops: 0 },
    };
    const typing = new TypingYield({ graceMs: s.graceMs });
    const counted = countingStops(run);
    let next = s.before + 1;
    for (let block = 0; block * s.block * ROWS.length < s.keystrokes; block++) {
      for (let j = 0; j < ROWS.length; j++) {
        const name = ROWS[(block + j) % ROWS.length]!;
        const row = rows[name];
        const stepsAtStart = steps();
        const cpuAtStart = cpuSeconds(run.pid);
        const stopsAtStart = counted.stops();
        const blockStarted = performance.now();
        if (name === 'idle') run.suspend();
        const detach = name === 'yield on' ? typing.attach(counted.target) : undefined;
        for (let n = 0; n < s.block; n++, next++) {
          const done = name === 'yield on' ? typing.begin() : () => {};
          const { k, ms } = await keystroke(next).finally(done);
          row.samples.push(ms);
          await cadence(k, ms, s);
        }
        detach?.();
        if (name === 'idle') run.resume();
        row.steps += steps() - stepsAtStart;
        row.trainerCpu += cpuSeconds(run.pid) - cpuAtStart;
        row.seconds += (performance.now() - blockStarted) / 1000;
        row.stops += name === 'idle' ? 1 : counted.stops() - stopsAtStart;
        if (end) throw new Error(`the fine-tune ${end} during the measurement`);
      }
      log(`  block ${block + 1}: ${(block + 1) * s.block * ROWS.length} keystrokes, ${steps()} steps, loadavg ${os.loadavg()[0]!.toFixed(2)}`);
    }

    const idle = distribution(rows.idle.samples);
    const result = {
      model: modelDir,
      precision,
      sessionThread: model.loaded.sessionThread,
      engineThreads: threads,
      trainingThreads: options.threads,
      trainingBatch: `${options.batchSize} × ${options.seqLen}`,
      graceMs: s.graceMs,
      gapMs: s.gapMs,
      linePauseMs: s.linePauseMs,
      before: distribution(before),
      rows: ROWS.map((name) => {
        const r = rows[name];
        const d = distribution(r.samples);
        return {
          row: name,
          latencyMs: d,
          p50VsIdle: round(d.p50 / idle.p50),
          p95VsIdle: round(d.p95 / idle.p95),
          trainingStepsPerSecond: round(r.steps / r.seconds),
          trainingTokensPerSecond: round((r.steps * options.batchSize * options.seqLen) / r.seconds),
          trainerCpuPerSecond: round(r.trainerCpu / r.seconds),
          stops: r.stops,
        };
      }),
      machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, loadavgBefore, loadavgAfter: os.loadavg().map((x) => round(x)) },
    };
    log(`${modelDir} (${precision}), engine ${threads} threads, training ${options.threads}; grace ${s.graceMs} ms, gap ${s.gapMs} ms, line pause ${s.linePauseMs} ms`);
    log(`before the fine-tune: p50 ${result.before.p50} / p95 ${result.before.p95} ms (${result.before.n} keystrokes)`);
    log('| row | keystrokes | p50 / p95 ms | p50 ÷ idle | p95 ÷ idle | trainer CPU s per s | training tokens/s | stops |');
    log('|---|---|---|---|---|---|---|---|');
    for (const r of result.rows)
      log(
        `| ${r.row} | ${r.latencyMs.n} | ${r.latencyMs.p50} / ${r.latencyMs.p95} | ${r.p50VsIdle} | ${r.p95VsIdle} | ${r.trainerCpuPerSecond} | ${r.trainingTokensPerSecond} | ${r.stops} |`,
      );
    emitJson(result, s.out);
    run.cancel();
    await ended;
    await model.loaded.session.release();
  } finally {
    run?.cancel();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

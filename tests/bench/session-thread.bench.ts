// Where the ORT session lives, measured: the language server's thread or a worker thread of its own
// (runtime/worker-session.ts). Per placement, in one run: the longest event-loop stall while the model
// loads as the language server loads it (the graph checked and found in the model worker; session
// creation is synchronous in onnxruntime-node) and the keystroke trace through the real
// CompletionEngine (KV reuse, the product's settings, greedy), the two placements interleaved in blocks.
//
//   node --import tsx tests/bench/session-thread.bench.ts [--model DIR] [--quantization none|auto|int8|int4] [--keystrokes 200] [--block 8] [--threads 2] [--out FILE]
//   (--model defaults to the embedded models/kiln-code-4m; a real-size checkpoint: see real-size-model.ts)
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { type CompletionModel, loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { defaultModelPath } from '../../server/src/default-model';
import { prepareGraphInWorker } from '../../server/src/lsp/model-worker-client';
import { parseSettings } from '../../server/src/lsp/settings';
import type { SessionThread } from '../../server/src/runtime/load-model';
import { QUANTIZATION_SETTINGS, type QuantizationSetting } from '../../server/src/runtime/quantization-choice';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { BenchArgs } from './bench-args';
import { emitJson, log, round } from './bench-stats';
import { distribution, kilnKeystroke, type KilnSample, recordingModel, typingTrace } from './keystroke-trace';

interface Settings {
  model: string;
  quantization: QuantizationSetting;
  keystrokes: number;
  block: number;
  threads: number;
  out?: string;
}

function parseArgs(argv: readonly string[]): Settings {
  const s: Settings = { model: defaultModelPath() ?? 'models/kiln-code-4m', quantization: 'auto', keystrokes: 200, block: 8, threads: 2 };
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--model') s.model = args.value();
    else if (a === '--quantization') s.quantization = args.oneOf(QUANTIZATION_SETTINGS);
    else if (a === '--keystrokes') s.keystrokes = args.positiveInt();
    else if (a === '--block') s.block = args.positiveInt();
    else if (a === '--threads') s.threads = args.positiveInt();
    else if (a === '--out') s.out = args.value();
    else throw new Error(`unknown flag ${a}`);
  }
  return s;
}

/** Loads the model with its session in `thread`, watching this thread's event loop meanwhile. */
async function watchedLoad(s: Settings, thread: SessionThread, cacheDir: string) {
  const stalls = monitorEventLoopDelay({ resolution: 5 });
  stalls.enable();
  await new Promise((resolve) => setTimeout(resolve, 20)); // the histogram's first tick only starts its clock
  const t0 = performance.now();
  const model = await loadCompletionModel(
    s.model,
    { fimOrder: 'auto', quantization: s.quantization },
    // as the language server loads: the checks and the cached build's lookup in the model worker
    { executionProvider: 'cpu', threads: s.threads, cacheDir, sessionThread: thread, prepare: prepareGraphInWorker },
  );
  const loadMs = performance.now() - t0;
  await new Promise((resolve) => setTimeout(resolve, 20)); // the last stall is recorded at the next tick
  stalls.disable();
  return { model, load: { ms: round(loadMs), sessionCreateMs: round(model.loaded.sessionCreateMs), longestStallMs: round(stalls.max / 1e6) } };
}

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const root = mkdtempSync(join(os.tmpdir(), 'kiln-bench-session-thread-'));
  const loadavgBefore = os.loadavg();
  const placements: SessionThread[] = ['main', 'worker'];
  try {
    // one build for both: the first load fills the graph cache, both timed loads find it there
    const warm = await loadCompletionModel(s.model, { fimOrder: 'auto', quantization: s.quantization }, { executionProvider: 'cpu', threads: s.threads, cacheDir: root });
    await warm.loaded.session.release();
    const loaded: Record<string, { model: CompletionModel; load: object }> = {};
    for (const thread of placements) loaded[thread] = await watchedLoad(s, thread, root);
    const { settings } = parseSettings({ threads: s.threads, speculate: false, candidates: 1 });
    const rows = placements.map((thread) => {
      const rec = recordingModel(loaded[thread]!.model);
      return { thread, rec, engine: new CompletionEngine(rec.model, settings, new LatencyStats(), { server: rec.serverFor(settings) }), samples: [] as KilnSample[] };
    });
    const trace = typingTrace().slice(0, s.keystrokes);
    for (const r of rows) await kilnKeystroke(r.engine, r.rec.takePrompt, trace[0]!, -1, 'file:///bench/warm-up.ts');
    let differing = 0;
    for (let from = 0, turn = 0; from < trace.length; from += s.block, turn++) {
      const order = turn % 2 === 0 ? rows : [...rows].reverse();
      for (const r of order)
        for (let i = from; i < Math.min(trace.length, from + s.block); i++)
          r.samples.push(await kilnKeystroke(r.engine, r.rec.takePrompt, trace[i]!, i, `file:///bench/${r.thread}/${i}.ts`));
    }
    for (const [i, a] of rows[0]!.samples.entries()) if (a.suggestion !== rows[1]!.samples[i]!.suggestion) differing++;
    const result = {
      model: s.model,
      quantization: s.quantization,
      keystrokes: trace.length,
      differingSuggestions: differing,
      rows: rows.map((r) => ({
        thread: r.thread,
        load: loaded[r.thread]!.load,
        latencyMs: distribution(r.samples.map((x) => x.ms)),
        firstTokenMs: distribution(r.samples.map((x) => x.firstTokenMs)),
        decodeTokens: distribution(r.samples.map((x) => x.decodeTokens)),
      })),
      machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, loadavgBefore, loadavgAfter: os.loadavg() },
    };
    const [here, there] = result.rows;
    log(
      `${s.model} (${s.quantization}), ${trace.length} keystrokes, ${differing} differing suggestions; loadavg ${loadavgBefore.map((x) => x.toFixed(2)).join(' ')} → ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
    log('| session in | load ms | session create ms | longest stall during load ms | keystroke p50 / p95 ms | first token p50 ms |');
    log('|---|---|---|---|---|---|');
    for (const r of result.rows) {
      const l = r.load as { ms: number; sessionCreateMs: number; longestStallMs: number };
      log(
        `| ${r.thread === 'main' ? 'main thread' : 'worker thread'} | ${l.ms} | ${l.sessionCreateMs} | ${l.longestStallMs} | ${r.latencyMs.p50} / ${r.latencyMs.p95} | ${r.firstTokenMs.p50} |`,
      );
    }
    log(`worker ÷ main thread, keystroke p50 ${round(there!.latencyMs.p50 / here!.latencyMs.p50)}, p95 ${round(there!.latencyMs.p95 / here!.latencyMs.p95)}`);
    emitJson(result, s.out);
    for (const thread of placements) await loaded[thread]!.model.loaded.session.release();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

// Remote-backend benchmark: the keystroke trace (keystroke-trace.ts) replayed through Kiln's real
// CompletionEngine with its local runtime and with each remote backend (openai, llamacpp, ollama)
// talking over loopback HTTP to a server with llama.cpp behind it (tests/helpers/fake-inference-server.ts
// in front of node-llama-cpp; one llama.cpp context per backend, so no row warms another's cache),
// same seeded weights, same run, interleaved per keystroke in a rotating order. Plus the protocol's
// own cost: each backend against a server whose "model" answers the same pieces instantly, so the
// request time is HTTP, JSON and streaming alone.
//
//   npm run bench:remote -- [--keystrokes 60] [--max-tokens 16] [--threads 1] [--small] [--out FILE]
//
// Model: the 25M reference shape (keystroke-trace.ts's REFERENCE), PSM order (what llama.cpp's /infill
// builds, so every row sees the same prompt layout); llama.cpp gets its F32 GGUF export. --small uses
// the tiny test model instead (a quick run). Each request is a new document (no typing-through, no
// answer cache): the rows measure the model path. Latency is request to answer around `complete`.
// The fake server runs in this process: its HTTP handling shares this event loop with the client, as
// a real llama-server would not (it would share the CPU cores instead).
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type CompletionModel, loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { type KilnSettings, parseSettings } from '../../server/src/lsp/settings';
import { exportGguf } from '../../server/src/model/export/gguf';
import { createTextBackend } from '../../server/src/remote/backend-settings';
import type { RemoteKind, TextBackend } from '../../server/src/remote/text-backend';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { type FakeInferenceServer, scriptedEngine, startFakeInferenceServer } from '../helpers/fake-inference-server';
import { LlamaGreedy } from '../helpers/llama-greedy';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { BenchArgs } from './bench-args';
import { emitJson, log, round } from './bench-stats';
import { distribution, REFERENCE, typingTrace, WEIGHTS_SEED } from './keystroke-trace';

const KINDS: RemoteKind[] = ['openai', 'llamacpp', 'ollama'];
const ROWS = ['kiln local', ...KINDS] as const;
type Row = (typeof ROWS)[number];
const MODEL_NAME = 'bench-model';

interface Settings {
  keystrokes: number;
  maxTokens: number;
  threads: number;
  small: boolean;
  out?: string;
}

function parseArgs(argv: string[]): Settings {
  const s: Settings = { keystrokes: 60, maxTokens: 16, threads: 1, small: false };
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--keystrokes') s.keystrokes = args.positiveInt();
    else if (a === '--max-tokens') s.maxTokens = args.positiveInt();
    else if (a === '--threads') s.threads = args.positiveInt();
    else if (a === '--small') s.small = true;
    else if (a === '--out') s.out = args.value();
    else throw new Error(`unknown argument ${a}`);
  }
  return s;
}

interface RowSample {
  ms: number;
  /** Remote rows: the HTTP request's wall time, and whether Kiln's stop rules closed it early. */
  requestMs?: number;
  stoppedEarly?: boolean;
  serverPromptMs?: number;
  suggestion: string;
}

async function timeRequest(engine: CompletionEngine, text: string, offset: number, uri: string): Promise<RowSample> {
  const t0 = performance.now();
  const answer = await engine.complete({ uri, text, offset });
  const ms = performance.now() - t0;
  engine.forgetDocument(uri);
  if (answer.timings.source !== 'model') throw new Error(`${uri}: answered by ${answer.timings.source}, not the model`);
  const r = answer.timings.remote;
  return { ms, requestMs: r?.requestMs, stoppedEarly: r?.stoppedEarly, serverPromptMs: r?.server?.promptMs, suggestion: answer.items[0] ?? '' };
}

/** The protocol alone: `n` requests to a server that answers `pieces` instantly, per backend. */
async function protocolOverhead(n: number, pieces: number): Promise<Record<RemoteKind, ReturnType<typeof distribution>>> {
  const echo = await startFakeInferenceServer({ engine: scriptedEngine(Array.from({ length: pieces }, (_, i) => ` t${i}`)), modelName: MODEL_NAME });
  try {
    const backends = KINDS.map((kind) => createTextBackend({ kind, url: echo.url, model: MODEL_NAME, fallbackToLocal: false })!);
    const ms: Record<RemoteKind, number[]> = { openai: [], llamacpp: [], ollama: [] };
    const prefix = 'x'.repeat(4000); // a prompt window's worth of text each way
    const request = { prefix, suffix: prefix.slice(0, 1000), prompt: prefix, extra: [], maxTokens: pieces, timeLimitMs: 60000, indent: 0, temperature: 0, topP: 1 };
    for (let i = 0; i < n + 5; i++) {
      for (const backend of backends) {
        const r = await backend.complete(request, { signal: new AbortController().signal });
        if (i >= 5) ms[backend.kind].push(r.requestMs); // the first few warm the connection pool and the JIT
      }
    }
    return { openai: distribution(ms.openai), llamacpp: distribution(ms.llamacpp), ollama: distribution(ms.ollama) };
  } finally {
    await echo.close();
  }
}

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const loadavgBefore = os.loadavg().map((x) => round(x));
  const root = mkdtempSync(join(os.tmpdir(), 'kiln-bench-remote-'));
  const llamas: LlamaGreedy[] = [];
  const servers: FakeInferenceServer[] = [];
  let model: CompletionModel | undefined;
  try {
    const modelDir = writeTinyCodeModel(join(root, 'model'), { seed: WEIGHTS_SEED, fimOrders: ['psm'], ...(s.small ? {} : { config: REFERENCE }) });
    const gguf = join(root, 'model.gguf');
    await exportGguf(modelDir, gguf, { dtype: 'f32' });
    model = await loadCompletionModel(modelDir, { fimOrder: 'auto', quantization: 'none' }, { executionProvider: 'cpu', threads: s.threads, cacheDir: join(root, 'graphs') });
    const update = parseSettings({ threads: s.threads, maxTokens: s.maxTokens, completionMode: 'line', candidates: 1, speculate: false, timeLimitMs: 60000, tokenHealing: false });
    if (update.problems.length) throw new Error(update.problems.join('; '));
    const settings: KilnSettings = update.settings;
    const engines = new Map<Row, CompletionEngine>();
    const backends = new Map<RemoteKind, TextBackend>();
    engines.set('kiln local', new CompletionEngine(model, settings, new LatencyStats()));
    for (const kind of KINDS) {
      const llama = await LlamaGreedy.load(gguf, 2048);
      llamas.push(llama);
      const server = await startFakeInferenceServer({ engine: llama, modelName: MODEL_NAME });
      servers.push(server);
      const backend = createTextBackend({ kind, url: server.url, model: MODEL_NAME, fallbackToLocal: false })!;
      backends.set(kind, backend);
      // the local engine's inference server is shared but never used by a remote row
      engines.set(kind, new CompletionEngine(model, settings, new LatencyStats(), { server: engines.get('kiln local')!.server, remote: { backend, fallbackToLocal: false } }));
    }
    const trace = typingTrace().slice(0, s.keystrokes);
    const samples: Record<Row, RowSample[]> = { 'kiln local': [], openai: [], llamacpp: [], ollama: [] };
    log(
      `model ${s.small ? 'tiny test model' : '25M reference'}, ${trace.length} keystrokes, max ${s.maxTokens} tokens, threads ${s.threads}; load average before ${loadavgBefore.join(' ')}`,
    );
    for (const [i, k] of trace.entries()) {
      const order = ROWS.map((_, j) => ROWS[(i + j) % ROWS.length]!);
      for (const row of order) samples[row].push(await timeRequest(engines.get(row)!, k.text, k.offset, `file:///bench/${row}/${i}.ts`));
      if ((i + 1) % 10 === 0) log(`  ${i + 1}/${trace.length} keystrokes`);
    }
    const overhead = await protocolOverhead(Math.max(20, s.keystrokes), s.maxTokens);
    const loadavgAfter = os.loadavg().map((x) => round(x));
    const rows = Object.fromEntries(
      ROWS.map((row) => {
        const xs = samples[row];
        const remote = row !== 'kiln local';
        return [
          row,
          {
            keystroke: distribution(xs.map((x) => x.ms)),
            ...(remote
              ? {
                  request: distribution(xs.map((x) => x.requestMs ?? NaN)),
                  stoppedEarly: xs.filter((x) => x.stoppedEarly).length,
                  sameSuggestionAsLocal: xs.filter((x, j) => x.suggestion === samples['kiln local'][j]!.suggestion).length,
                }
              : {}),
          },
        ];
      }),
    );
    log('\nrow          keystroke p50   p95     (remote: HTTP request p50, stopped early by Kiln)');
    for (const row of ROWS) {
      const r = rows[row] as { keystroke: { p50: number; p95: number }; request?: { p50: number }; stoppedEarly?: number };
      log(
        `${row.padEnd(12)} ${String(r.keystroke.p50).padStart(9)} ms ${String(r.keystroke.p95).padStart(7)} ms${r.request ? `   request ${r.request.p50} ms, ${r.stoppedEarly}/${trace.length} stopped early` : ''}`,
      );
    }
    log(`\nprotocol alone (loopback, a server answering ${s.maxTokens} pieces instantly, 4 KB prompt windows):`);
    for (const kind of KINDS) log(`  ${kind.padEnd(9)} p50 ${overhead[kind].p50} ms, p95 ${overhead[kind].p95} ms per request`);
    log(`load average before ${loadavgBefore.join(' ')}, after ${loadavgAfter.join(' ')}`);
    emitJson(
      { settings: s, model: s.small ? 'tiny' : 'reference-25M', keystrokes: trace.length, rows, protocolOverhead: overhead, loadavgBefore, loadavgAfter, cpus: os.cpus().length },
      s.out,
    );
  } finally {
    for (const server of servers) await server.close();
    for (const llama of llamas) await llama.dispose();
    await model?.loaded.session.release();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  log(String((err as Error)?.stack ?? err));
  process.exit(1);
});

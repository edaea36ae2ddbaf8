// Context benchmark: the keystroke trace (keystroke-trace.ts) typed through two CompletionEngines on
// the same model in the same process — context off, and context on over a real workspace — to see
// whether the context block keeps KV reuse (tokens prefilled per keystroke) and what it costs in
// keystroke latency. Rows interleave in blocks of --block keystrokes, alternating which goes first.
//
//   node --import tsx tests/bench/context.bench.ts [--model DIR] [--workspace DIR] [--keystrokes N] [--block 32] [--threads 1] [--out FILE]
//
// Defaults: the embedded model (models/kiln-code-4m, SPM, 512 trained tokens) and this repository's
// server/src as the workspace (~200 real TypeScript files, read through the dataset's rules). The
// typed document is `bench/queue.ts` in that workspace (not a file there: its own text never gives
// context). Each request is a fresh suggestion (typing-through and the answer cache never answer),
// but the document's context block is kept between keystrokes as the editor keeps it.
import * as os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { commandContext } from '../../server/src/dataset/workspace-context';
import { parseSettings } from '../../server/src/lsp/settings';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { BenchArgs } from './bench-args';
import { emitJson, log, round } from './bench-stats';
import { distribution, typingTrace } from './keystroke-trace';

const REPO = join(__dirname, '..', '..');

function parseArgs(argv: readonly string[]) {
  const a = new BenchArgs(argv);
  const o = {
    model: join(REPO, 'models', 'kiln-code-4m'),
    workspace: join(REPO, 'server', 'src'),
    keystrokes: Infinity,
    block: 32,
    threads: 1,
    out: undefined as string | undefined,
  };
  for (let f = a.flag(); f !== undefined; f = a.flag()) {
    if (f === '--model') o.model = a.value();
    else if (f === '--workspace') o.workspace = a.value();
    else if (f === '--keystrokes') o.keystrokes = a.positiveInt();
    else if (f === '--block') o.block = a.positiveInt();
    else if (f === '--threads') o.threads = a.positiveInt();
    else if (f === '--out') o.out = a.value();
    else throw new Error(`unknown flag ${f}`);
  }
  return o;
}

interface Row {
  name: string;
  engine: CompletionEngine;
  ms: number[];
  computed: number[];
  blockTokens: number[];
  blockChanges: number;
  lastKey: string | undefined;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const trace = typingTrace().slice(0, o.keystrokes);
  const model = await loadCompletionModel(o.model, { fimOrder: 'auto', quantization: 'auto' }, { executionProvider: 'cpu', threads: o.threads });
  const t0 = performance.now();
  const workspace = await commandContext(o.workspace);
  log(`indexed ${workspace.context.index.fileCount} files (${workspace.context.index.windowCount} windows) of ${o.workspace} in ${round(performance.now() - t0, 0)} ms`);
  const uri = pathToFileURL(join(workspace.root, 'bench', 'queue.ts')).href;
  workspace.context.openDocument('bench/queue.ts', trace[0]!.text);
  await workspace.context.settled();
  const settings = { ...parseSettings({ completionMode: 'line', temperature: 0, maxTokens: 16 }).settings, speculate: false };
  const make = (name: string, enabled: boolean): Row => {
    const engine = new CompletionEngine(model, { ...settings, 'context.enabled': enabled }, new LatencyStats(), { context: workspace.supplier() });
    // forgetDocument drops the suggestion shown (so every keystroke is a model request) and the block;
    // the editor keeps the block between keystrokes, so the bench does too
    engine.blocks.forget = () => {};
    return { name, engine, ms: [], computed: [], blockTokens: [], blockChanges: 0, lastKey: undefined };
  };
  const rows = [make('context off', false), make('context on', true)];
  for (let start = 0, b = 0; start < trace.length; start += o.block, b++) {
    const order = b % 2 === 0 ? rows : [...rows].reverse();
    for (const row of order) {
      for (const k of trace.slice(start, start + o.block)) {
        workspace.context.changeDocument('bench/queue.ts', k.text, []);
        const block = row.engine.promptFor({ uri, text: k.text, offset: k.offset }).block;
        const t = performance.now();
        const answer = await row.engine.complete({ uri, text: k.text, offset: k.offset });
        row.ms.push(performance.now() - t);
        row.engine.forgetDocument(uri);
        if (answer.timings.source !== 'model') throw new Error(`${row.name}: answered by ${answer.timings.source}`);
        row.computed.push(answer.timings.prefillComputed);
        row.blockTokens.push(block.tokens.length);
        if (row.lastKey !== undefined && block.key !== row.lastKey) row.blockChanges++;
        row.lastKey = block.key;
      }
    }
  }
  const result = {
    model: o.model,
    workspace: o.workspace,
    keystrokes: trace.length,
    threads: o.threads,
    loadavg: os.loadavg().map((x) => round(x, 2)),
    rows: rows.map((r) => ({
      name: r.name,
      ms: distribution(r.ms),
      computedTokens: distribution(r.computed),
      shareAtMost4Prefilled: round(r.computed.filter((c) => c <= 4).length / r.computed.length),
      blockTokens: distribution(r.blockTokens),
      blockChanges: r.blockChanges,
    })),
  };
  const [off, on] = result.rows;
  log(`loadavg ${result.loadavg.join(' ')}; ${trace.length} keystrokes, ${o.threads} thread(s)`);
  for (const r of result.rows)
    log(
      `${r.name.padEnd(12)} p50 ${r.ms.p50} ms, p95 ${r.ms.p95} ms; ≤4 tokens prefilled on ${(100 * r.shareAtMost4Prefilled).toFixed(1)}%; block ${r.blockTokens.p50} tokens (p50), changed ${r.blockChanges} times`,
    );
  log(`p50 with context / without: ${round(on!.ms.p50 / off!.ms.p50, 3)}`);
  emitJson(result, o.out);
  workspace.dispose();
  await model.loaded.session.release();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

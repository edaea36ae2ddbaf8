// Two built decoder graphs of the same model, side by side: their logits compared and one forward
// (S new tokens after a past of P) timed in interleaved reps, so a change to the graph builder is
// measured against the graph it replaces on the same machine at the same moment.
//
//   node --import tsx tests/bench/graph-ab.bench.ts A/model.onnx B/model.onnx --config <model folder>
//        [--past 500] [--tokens 1] [--reps 25] [--steps 15] [--threads 2] [--out FILE]
//
// A and B are graph files from the build cache (`kiln model cache` lists them; build the old one by
// checking out the old builder). Both must take the same inputs (Kiln's decoder graphs do).
// Figures: per rep the median of --steps forwards; reported, the median and best rep of each, and the
// median over reps of B ÷ A within a rep (the pairing cancels most of a shared machine's drift).
import * as ort from 'onnxruntime-node';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import { loadModelConfig } from '../../server/src/model/config';
import { DecoderIO } from '../../server/src/model/graph/decoder';
import { sessionOptions } from '../../server/src/runtime/execution-provider';
import { BenchArgs } from './bench-args';
import { emitJson, log, round, summarize } from './bench-stats';

interface Settings {
  graphs: [string, string];
  config: string;
  past: number;
  tokens: number;
  reps: number;
  steps: number;
  threads: number;
  out?: string;
}

function parseArgs(argv: string[]): Settings {
  const graphs: string[] = [];
  const s = { config: '', past: 500, tokens: 1, reps: 25, steps: 15, threads: 2 } as Omit<Settings, 'graphs'>;
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--past') s.past = args.positiveInt();
    else if (a === '--tokens') s.tokens = args.positiveInt();
    else if (a === '--reps') s.reps = args.positiveInt();
    else if (a === '--steps') s.steps = args.positiveInt();
    else if (a === '--threads') s.threads = args.positiveInt();
    else if (a === '--config') s.config = args.value();
    else if (a === '--out') s.out = args.value();
    else if (a.startsWith('--')) throw new Error(`unknown flag ${a}`);
    else graphs.push(a);
  }
  if (graphs.length !== 2) throw new Error('give two graph files, A and B');
  if (!s.config) throw new Error('--config <model folder> is needed: its config.json gives the KV shapes');
  return { ...s, graphs: graphs as [string, string] };
}

/** Deterministic inputs: S tokens after a past of P rows of smooth values. */
function feeds(dir: string, past: number, tokens: number): Record<string, ort.Tensor> {
  const c = loadModelConfig(dir);
  const rows = c.numKvHeads * c.headDim * past;
  const f: Record<string, ort.Tensor> = {
    [DecoderIO.inputIds]: new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: tokens }, (_, i) => BigInt(42 + i)),
      [1, tokens],
    ),
    [DecoderIO.logitsIndex]: new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: tokens }, (_, i) => BigInt(i)),
      [tokens],
    ),
    [DecoderIO.pastLengths]: new ort.Tensor('int64', BigInt64Array.of(BigInt(past)), [1]),
  };
  for (let l = 0; l < c.numLayers; l++) {
    f[DecoderIO.pastKey(l)] = new ort.Tensor(
      'float32',
      Float32Array.from({ length: rows }, (_, i) => Math.sin(i) * 0.1),
      [1, c.numKvHeads, c.headDim, past],
    );
    f[DecoderIO.pastValue(l)] = new ort.Tensor(
      'float32',
      Float32Array.from({ length: rows }, (_, i) => Math.cos(i) * 0.1),
      [1, c.numKvHeads, past, c.headDim],
    );
  }
  return f;
}

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const loadBefore = os.loadavg();
  const sessions = await Promise.all(s.graphs.map((g) => ort.InferenceSession.create(g, sessionOptions('cpu', s.threads))));
  const input = feeds(s.config, s.past, s.tokens);
  const [a, b] = [await sessions[0]!.run(input), await sessions[1]!.run(input)];
  const la = a[DecoderIO.logits]!.data as Float32Array;
  const lb = b[DecoderIO.logits]!.data as Float32Array;
  let maxDifference = 0;
  let maxLogit = 0;
  for (let i = 0; i < la.length; i++) {
    maxDifference = Math.max(maxDifference, Math.abs(la[i]! - lb[i]!));
    maxLogit = Math.max(maxLogit, Math.abs(la[i]!));
  }
  const perRep: [number[], number[]] = [[], []];
  for (let r = 0; r < s.reps; r++) {
    for (const k of [0, 1] as const) {
      const times: number[] = [];
      for (let i = 0; i < s.steps; i++) {
        const t = performance.now();
        await sessions[k]!.run(input);
        times.push(performance.now() - t);
      }
      perRep[k].push(summarize(times).median);
    }
  }
  const ratio = summarize(perRep[1].map((t, i) => t / perRep[0][i]!));
  const [ma, mb] = perRep.map(summarize) as [ReturnType<typeof summarize>, ReturnType<typeof summarize>];
  log(`past ${s.past}, ${s.tokens} new token(s), ${s.threads} threads, ${s.reps} reps of ${s.steps}`);
  log(`logits max |A − B| ${maxDifference.toExponential(2)} (max |A| ${maxLogit.toFixed(3)})`);
  log(`A ms: median ${ma.median}, best ${ma.min} | B ms: median ${mb.median}, best ${mb.min} | B ÷ A paired median ${ratio.median}`);
  for (const x of sessions) await x.release();
  emitJson(
    {
      graphs: s.graphs,
      settings: { past: s.past, tokens: s.tokens, reps: s.reps, steps: s.steps, threads: s.threads },
      logitsMaxDifference: maxDifference,
      maxLogit: round(maxLogit),
      msA: ma,
      msB: mb,
      pairedRatio: ratio,
      loadavg: { before: loadBefore.map((x) => round(x, 2)), after: os.loadavg().map((x) => round(x, 2)) },
      machine: `${os.cpus()[0]?.model.trim()} (${os.cpus().length} logical CPUs)`,
      date: new Date().toISOString(),
    },
    s.out,
  );
}

void main();

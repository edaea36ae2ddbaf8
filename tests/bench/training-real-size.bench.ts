// Real-size training benchmark: one LoRA step (r 8, q/k/v/o) of Qwen2.5-Coder-0.5B's shape (hidden
// 896, 14 heads, 2 KV heads, MLP 4864, vocab 151,936, tied, QKV biases; random weights made lazily),
// `--layers` deep, before and after the memory and work changes, A/B interleaved in one run:
//   before   logits and their gradient for every position, ORT's pre-packed copies of the base
//   after    the chunked loss head over loss positions, the base held once (the trainer's settings)
//   top-half after, plus LoRA on the top half of the layers only (no backward below them)
//   qlora    after, on an int8 base (MatMulNBits, exact compute; the backward through dequantized codes)
// Every variant is a long-lived child (tests/helpers/real-size-train-probe.ts --serve), so its peak
// RSS is its own; each rep runs `--steps` steps on every variant in turn (order rotated per rep).
//
//   npm run bench:training-real-size -- [--layers 4] [--seq 256] [--batch 1]
//        [--reps 3] [--steps 2] [--threads 2] [--variants before,after,top-half,qlora] [--out FILE]
//
// Every variant is alive at once (about 1.3–3 GB each at 2–4 layers): pick fewer with --variants.
//
// MFU: FLOPs per token counted over matmuls only, against the fp32 MatMul peak measured each rep:
//   LM head (tied, V×d):                    4·V·d   (forward + the activation gradient; no weight gradient)
//   a layer LoRA trains, or above one:      4·P_layer + 6·P_lora + 12·S·H·D
//   a layer below every trainable one:      2·P_layer + 4·S·H·D   (forward only)
// P_layer is the layer's projection weights; 12·S·H·D is QKᵀ and PV over the S×S square (forward and backward).
import { type ChildProcess, spawn } from 'node:child_process';
import * as os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ModelConfig } from '../../server/src/model/config';
import { TRAINING_SESSION_CONFIG } from '../../server/src/training/trainer-session';
import { type ProbeOptions, type ProbeResult, QWEN25_05B } from '../helpers/real-size-train-probe';
import { tempDir } from '../helpers/tiny-session';
import { BenchArgs } from './bench-args';
import { emitJson, log, MB, round, summarize } from './bench-stats';
import { ortPeakSession } from './matmul-peak';

interface Settings {
  layers: number;
  seq: number;
  batch: number;
  reps: number;
  steps: number;
  threads: number;
  variants: string[];
  out?: string;
}

function parseArgs(argv: string[]): Settings {
  const s: Settings = { layers: 4, seq: 256, batch: 1, reps: 3, steps: 2, threads: 2, variants: ['before', 'after', 'top-half'] };
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--layers') s.layers = args.positiveInt();
    else if (a === '--seq') s.seq = args.positiveInt();
    else if (a === '--batch') s.batch = args.positiveInt();
    else if (a === '--reps') s.reps = args.positiveInt();
    else if (a === '--steps') s.steps = args.positiveInt();
    else if (a === '--threads') s.threads = args.positiveInt();
    else if (a === '--out') s.out = args.value();
    else if (a === '--variants') s.variants = args.value().split(',');
    else throw new Error(`unknown argument ${a}`);
  }
  const unknown = s.variants.filter((v) => !VARIANTS.includes(v));
  if (unknown.length) throw new Error(`unknown --variants ${unknown.join(', ')} (choose from ${VARIANTS.join(', ')})`);
  return s;
}

const RANK = 8;

function variants(s: Settings): { name: string; options: ProbeOptions }[] {
  const base = { layers: s.layers, seq: s.seq, batch: s.batch, threads: s.threads, rank: RANK };
  return [
    { name: 'before', options: { ...base, lossChunks: 0, sessionConfig: {} } },
    { name: 'after', options: { ...base, sessionConfig: TRAINING_SESSION_CONFIG } },
    { name: 'top-half', options: { ...base, sessionConfig: TRAINING_SESSION_CONFIG, loraLayers: Math.ceil(s.layers / 2) } },
    { name: 'qlora', options: { ...base, sessionConfig: TRAINING_SESSION_CONFIG, baseBits: 8 as const } },
  ].filter((v) => s.variants.includes(v.name));
}

const VARIANTS = ['before', 'after', 'top-half', 'qlora'];

/** Training FLOPs per token (see the header). */
export function realSizeFlopsPerToken(c: ModelConfig, S: number, loraLayers: number): number {
  const d = c.hiddenSize;
  const qd = c.numHeads * c.headDim;
  const kvd = c.numKvHeads * c.headDim;
  const pLayer = d * (qd + 2 * kvd) + qd * d + 3 * d * c.intermediateSize;
  const pLora = RANK * (d + qd + (d + kvd) * 2 + qd + d);
  const trained = Math.min(loraLayers, c.numLayers);
  const head = 4 * c.vocabSize * d;
  return head + trained * (4 * pLayer + 6 * pLora + 12 * S * qd) + (c.numLayers - trained) * (2 * pLayer + 4 * S * qd);
}

class Child {
  private readonly waiting: ((line: string) => void)[] = [];
  readonly ready: Promise<string>;
  private stderr = '';

  constructor(
    readonly name: string,
    private readonly proc: ChildProcess,
  ) {
    this.ready = new Promise((resolve) => this.waiting.push(resolve));
    createInterface({ input: proc.stdout! }).on('line', (line) => this.waiting.shift()?.(line));
    proc.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-2000)));
    proc.on('exit', (code) => {
      if (this.waiting.length) log(`${name} exited (${code}):\n${this.stderr}`);
    });
  }

  async steps(n: number): Promise<ProbeResult & { seconds: number[] }> {
    const line = new Promise<string>((resolve) => this.waiting.push(resolve));
    this.proc.stdin!.write(`${JSON.stringify({ steps: n })}\n`);
    return JSON.parse(await line) as ProbeResult & { seconds: number[] };
  }

  stop(): void {
    this.proc.stdin!.end();
  }
}

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const loadBefore = os.loadavg();
  const probe = join(__dirname, '..', 'helpers', 'real-size-train-probe.ts');
  const config = { ...QWEN25_05B, numLayers: s.layers };
  const rows = variants(s).map((v) => ({
    ...v,
    child: undefined as Child | undefined,
    tokensPerS: [] as number[],
    mfu: [] as number[],
    last: undefined as ProbeResult | undefined,
  }));
  // Started one after another: building a graph writes its weights, and builds at once would overlap their peaks.
  for (const r of rows) {
    log(`starting ${r.name} …`);
    r.child = new Child(r.name, spawn(process.execPath, ['--import', 'tsx', probe, JSON.stringify(r.options), '--serve'], { stdio: ['pipe', 'pipe', 'pipe'] }));
    await r.child.ready;
    await r.child.steps(1); // warm-up step, untimed
  }
  const peak = await ortPeakSession(join(tempDir('kiln-real-size-peak-'), 'peak'), s.threads);
  const peaks: number[] = [];
  const tokens = s.batch * s.seq;
  for (let rep = 0; rep < s.reps; rep++) {
    const { gflops } = await peak.run();
    peaks.push(gflops);
    for (let k = 0; k < rows.length; k++) {
      const r = rows[(rep + k) % rows.length]!;
      const reply = await r.child!.steps(s.steps);
      const seconds = reply.seconds.reduce((a, b) => a + b, 0);
      const tps = (tokens * s.steps) / seconds;
      r.tokensPerS.push(tps);
      r.mfu.push((tps * realSizeFlopsPerToken(config, s.seq, r.options.loraLayers ?? s.layers)) / (gflops * 1e9));
      r.last = reply;
    }
  }
  for (const r of rows) r.child!.stop();
  await peak.release();
  const result = {
    bench: 'training-real-size',
    shape: `Qwen2.5-Coder-0.5B, ${s.layers} layers, LoRA r ${RANK} q/k/v/o, batch ${s.batch} × ${s.seq}`,
    threads: s.threads,
    loadavg: { before: loadBefore.map((x) => round(x, 2)), after: os.loadavg().map((x) => round(x, 2)) },
    matmulPeakGflops: summarize(peaks),
    flopCount: 'matmuls only: head 4·V·d; trained layers 4·P+6·P_lora+12·S·H·D; layers below 2·P+4·S·H·D',
    rows: rows.map((r) => ({
      variant: r.name,
      loraLayers: r.options.loraLayers ?? s.layers,
      tokensPerSecond: summarize(r.tokensPerS),
      mfu: summarize(r.mfu),
      gflopPerToken: round(realSizeFlopsPerToken(config, s.seq, r.options.loraLayers ?? s.layers) / 1e9, 3),
      peakRssMB: round(r.last!.peakRssBytes / MB, 0),
      analyticStateMB: Object.fromEntries(Object.entries(r.last!.stateBytes).map(([k, v]) => [k, round(v / MB, 0)])),
    })),
  };
  for (const row of result.rows) {
    log(
      `${row.variant.padEnd(9)} ${String(row.tokensPerSecond.median).padStart(8)} tok/s (${row.tokensPerSecond.min}–${row.tokensPerSecond.max})  MFU ${(100 * row.mfu.median).toFixed(1)}%  peak RSS ${row.peakRssMB} MB (analytic ${row.analyticStateMB.total} MB)`,
    );
  }
  log(`fp32 MatMul peak ${result.matmulPeakGflops.median} GFLOP/s; load average ${result.loadavg.before.join(' ')} → ${result.loadavg.after.join(' ')}`);
  emitJson(result, s.out);
}

if (require.main === module) {
  main().catch((err: Error) => {
    log(`real-size training bench failed: ${err.stack ?? err.message}`);
    process.exitCode = 1;
  });
}

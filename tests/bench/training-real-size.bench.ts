// Real-size training benchmark: one LoRA step (r 8, q/k/v/o) of Qwen2.5-Coder-0.5B's shape (hidden
// 896, 14 heads, 2 KV heads, MLP 4864, vocab 151,936, tied, QKV biases; random weights made lazily;
// `--size 1.5b`: the 1.5B's), `--layers` deep, before and after the memory and work changes, A/B interleaved in one run:
//   before   logits and their gradient for every position, ORT's pre-packed copies of the base
//   after    the chunked loss head over loss positions, the base held once (the trainer's settings)
//   top-half after, plus LoRA on the top half of the layers only (no backward below them)
//   qlora    after, on an int8 base (MatMulNBits, exact compute; the backward through dequantized codes)
//   recompute, qlora-recompute   after and qlora with each layer's activations recomputed in the backward
//   torch    the same LoRA step in PyTorch (tests/bench/torch_train_step.py: frozen fp32 base, the same
//            weights written as a checkpoint, the same batch, LoRA A/B initial values, rank, alpha,
//            targets, lr, AdamW and clipping; LM head over the loss positions, full logits)
// Every variant is a long-lived child (tests/helpers/real-size-train-probe.ts --serve, or the Python
// peer), so its peak RSS is its own; each rep runs `--steps` steps on every variant in turn (order
// rotated per rep). With torch, its losses and gradient norms are checked against Kiln's `after`
// (or `before`) step by step: same weights, same batch, both fp32.
//
//   npm run bench:training-real-size -- [--size 0.5b|1.5b] [--layers 4] [--seq 256] [--batch 1] [--reps 3] [--steps 2]
//        [--threads 2] [--variants before,after,top-half,qlora,recompute,qlora-recompute,torch] [--python /usr/bin/python3] [--out FILE]
//
// Every variant is alive at once (about 1.3–3 GB each at 2–4 layers): pick fewer with --variants.
// The torch row's OpenBLAS kernels follow the CPU's flags (openblas-core.ts); OPENBLAS_CORETYPE set
// in the environment wins (set but empty: OpenBLAS's own detection).
//
// MFU: FLOPs per token counted over matmuls only, against the fp32 MatMul peak measured each rep:
//   LM head (tied, V×d):                    4·V·d   (forward + the activation gradient; no weight gradient)
//   a layer LoRA trains, or above one:      4·P_layer + 6·P_lora + 12·S·H·D
//   a layer below every trainable one:      2·P_layer + 4·S·H·D   (forward only)
// P_layer is the layer's projection weights; 12·S·H·D is QKᵀ and PV over the S×S square (forward and backward).
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import type { ModelConfig } from '../../server/src/model/config';
import { TRAINING_SESSION_CONFIG, TRAINING_SESSION_OPTIONS } from '../../server/src/training/trainer-session';
import { PROBE_LR, type ProbeOptions, type ProbeResult, probeLoraMode } from '../helpers/real-size-train-probe';
import { tempDir } from '../helpers/tiny-session';
import { PYTHON } from '../helpers/torch-python';
import { BenchArgs } from './bench-args';
import { emitJson, log, MB, round, summarize } from './bench-stats';
import { ortPeakSession, PEAK } from './matmul-peak';
import { REAL_SIZE_CHOICES, REAL_SIZES, type RealSize } from './real-size-model';
import { type StepsReply, TorchRow, writeTorchInputs } from './real-size-torch-row';

interface Settings {
  /** The published shape (layers: its first `layers`). */
  size: RealSize;
  layers: number;
  seq: number;
  batch: number;
  reps: number;
  steps: number;
  threads: number;
  variants: string[];
  python: string;
  out?: string;
}

function parseArgs(argv: string[]): Settings {
  const s: Settings = { size: '0.5b', layers: 4, seq: 256, batch: 1, reps: 3, steps: 2, threads: 2, variants: ['before', 'after', 'top-half'], python: PYTHON };
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--size') s.size = args.oneOf(REAL_SIZE_CHOICES);
    else if (a === '--layers') s.layers = args.positiveInt();
    else if (a === '--seq') s.seq = args.positiveInt();
    else if (a === '--batch') s.batch = args.positiveInt();
    else if (a === '--reps') s.reps = args.positiveInt();
    else if (a === '--steps') s.steps = args.positiveInt();
    else if (a === '--threads') s.threads = args.positiveInt();
    else if (a === '--out') s.out = args.value();
    else if (a === '--variants') s.variants = args.value().split(',');
    else if (a === '--python') s.python = args.value();
    else throw new Error(`unknown argument ${a}`);
  }
  const unknown = s.variants.filter((v) => !VARIANTS.includes(v));
  if (unknown.length) throw new Error(`unknown --variants ${unknown.join(', ')} (choose from ${VARIANTS.join(', ')})`);
  if (s.variants.includes('torch') && !LOSS_REFERENCES.some((v) => s.variants.includes(v))) {
    throw new Error(`the torch row starts from a Kiln row's LoRA values and is checked against its losses: add ${LOSS_REFERENCES.join(' or ')} to --variants`);
  }
  return s;
}

const RANK = 8;

function kilnVariants(s: Settings): { name: string; options: ProbeOptions }[] {
  const base = { shape: REAL_SIZES[s.size], layers: s.layers, seq: s.seq, batch: s.batch, threads: s.threads, rank: RANK };
  const trainer = { ...base, ...TRAINING_SESSION_OPTIONS }; // the trainer's session settings
  return [
    { name: 'before', options: { ...base, lossChunks: 0, sessionConfig: {} } },
    { name: 'after', options: { ...trainer, sessionConfig: TRAINING_SESSION_CONFIG } },
    { name: 'top-half', options: { ...trainer, sessionConfig: TRAINING_SESSION_CONFIG, loraLayers: Math.ceil(s.layers / 2) } },
    { name: 'qlora', options: { ...trainer, sessionConfig: TRAINING_SESSION_CONFIG, baseBits: 8 as const } },
    { name: 'recompute', options: { ...trainer, sessionConfig: TRAINING_SESSION_CONFIG, recomputeLayers: true } },
    { name: 'qlora-recompute', options: { ...trainer, sessionConfig: TRAINING_SESSION_CONFIG, baseBits: 8 as const, recomputeLayers: true } },
  ].filter((v) => s.variants.includes(v.name));
}

const VARIANTS = ['before', 'after', 'top-half', 'qlora', 'recompute', 'qlora-recompute', 'torch'];
/** Kiln rows with LoRA on every layer of an fp32 base, in order of preference as the torch row's reference. */
const LOSS_REFERENCES = ['after', 'before'];

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

/** A row's long-lived child: a Kiln probe or the PyTorch peer. */
interface RowChild {
  steps(n: number): Promise<StepsReply & { stateBytes?: ProbeResult['stateBytes'] }>;
  stop(): void;
}

class Child implements RowChild {
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

interface Row {
  name: string;
  /** Kiln rows: the probe's options; the torch row has none. */
  options?: ProbeOptions;
  loraLayers: number;
  child?: RowChild;
  tokensPerS: number[];
  mfu: number[];
  last?: StepsReply & { stateBytes?: ProbeResult['stateBytes'] };
}

/** The torch row's inputs: the probe's weights and batch on disk, and the file its reference Kiln row writes its LoRA values to. */
interface TorchSetup {
  dir: string;
  inputs: ReturnType<typeof writeTorchInputs>;
  loraInit: string;
  reference: string;
}

function prepareTorch(s: Settings, config: ModelConfig, kiln: { name: string; options: ProbeOptions }[]): TorchSetup | undefined {
  if (!s.variants.includes('torch')) return undefined;
  const dir = tempDir('kiln-real-size-torch-');
  const t = performance.now();
  const inputs = writeTorchInputs(dir, config, { batch: s.batch, seq: s.seq });
  log(`torch row: the probe's weights written as a checkpoint in ${Math.round(performance.now() - t)} ms (${inputs.modelDir})`);
  const reference = LOSS_REFERENCES.find((v) => s.variants.includes(v))!;
  const loraInit = join(dir, 'lora-init.safetensors');
  kiln.find((v) => v.name === reference)!.options.loraInitOut = loraInit;
  return { dir, inputs, loraInit, reference };
}

/**
 * Starts every row into `rows`, one after another (building a graph writes its weights; builds at
 * once would overlap their peaks), each with one untimed warm-up step.
 */
async function startRows(
  s: Settings,
  kiln: { name: string; options: ProbeOptions }[],
  torch: TorchSetup | undefined,
  rows: Row[],
): Promise<{ torchRow?: TorchRow; torchReady?: Record<string, unknown> }> {
  const probe = join(__dirname, '..', 'helpers', 'real-size-train-probe.ts');
  const fresh = (name: string, loraLayers: number, options?: ProbeOptions): Row => ({ name, options, loraLayers, tokensPerS: [], mfu: [] });
  for (const v of kiln) {
    log(`starting ${v.name} …`);
    const row = fresh(v.name, v.options.loraLayers ?? s.layers, v.options);
    rows.push(row);
    const child = new Child(v.name, spawn(process.execPath, ['--import', 'tsx', probe, JSON.stringify(v.options), '--serve'], { stdio: ['pipe', 'pipe', 'pipe'] }));
    row.child = child;
    await child.ready;
    row.last = await child.steps(1);
  }
  if (!torch) return {};
  log('starting torch …');
  const lora = probeLoraMode({ layers: s.layers, seq: s.seq, rank: RANK });
  const spec = { python: s.python, config: { ...REAL_SIZES[s.size], numLayers: s.layers }, batch: s.batch, seq: s.seq, threads: s.threads, lr: PROBE_LR, loraInit: torch.loraInit };
  const torchRow = TorchRow.start({ ...spec, rank: lora.rank, alpha: lora.alpha, targets: lora.targets }, torch.inputs);
  const row = fresh('torch', s.layers);
  row.child = torchRow;
  rows.push(row);
  const torchReady = await torchRow.ready;
  row.last = await torchRow.steps(1);
  return { torchRow, torchReady };
}

/** The torch row against its reference Kiln row: every step's loss and gradient norm (same weights, batch and LoRA values; both fp32). */
function lossCheck(rows: Row[], reference: string) {
  const kiln = rows.find((r) => r.name === reference)!.last!;
  const torch = rows.find((r) => r.name === 'torch')!.last!;
  const n = Math.min(kiln.losses.length, torch.losses.length);
  const lossDiffs = Array.from({ length: n }, (_, i) => Math.abs(kiln.losses[i]! - torch.losses[i]!));
  const normDiffs = Array.from({ length: n }, (_, i) => Math.abs(kiln.gradNorms[i]! - torch.gradNorms[i]!) / Math.max(kiln.gradNorms[i]!, 1e-12));
  return {
    reference,
    steps: n,
    firstStepLoss: { kiln: round(kiln.losses[0]!, 6), torch: round(torch.losses[0]!, 6), absDiff: lossDiffs[0]! },
    firstStepGradNorm: { kiln: round(kiln.gradNorms[0]!, 6), torch: round(torch.gradNorms[0]!, 6), relDiff: normDiffs[0]! },
    lastStepLoss: { kiln: round(kiln.losses[n - 1]!, 6), torch: round(torch.losses[n - 1]!, 6) },
    maxAbsLossDiff: Math.max(...lossDiffs),
    maxRelGradNormDiff: Math.max(...normDiffs),
  };
}

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const loadBefore = os.loadavg();
  const config = { ...REAL_SIZES[s.size], numLayers: s.layers };
  const kiln = kilnVariants(s);
  const torch = prepareTorch(s, config, kiln);
  const rows: Row[] = [];
  try {
    const { torchRow, torchReady } = await startRows(s, kiln, torch, rows);
    const peak = await ortPeakSession(join(tempDir('kiln-real-size-peak-'), 'peak'), s.threads);
    const peaks: number[] = [];
    const torchPeaks: number[] = [];
    const tokens = s.batch * s.seq;
    for (let rep = 0; rep < s.reps; rep++) {
      const { gflops } = await peak.run();
      peaks.push(gflops);
      if (torchRow) torchPeaks.push(await torchRow.matmulPeak(PEAK));
      for (let k = 0; k < rows.length; k++) {
        const r = rows[(rep + k) % rows.length]!;
        const reply = await r.child!.steps(s.steps);
        const seconds = reply.seconds.reduce((a, b) => a + b, 0);
        const tps = (tokens * s.steps) / seconds;
        r.tokensPerS.push(tps);
        r.mfu.push((tps * realSizeFlopsPerToken(config, s.seq, r.loraLayers)) / (gflops * 1e9));
        r.last = reply;
      }
    }
    await peak.release();
    const torchVsKiln = torch ? rows.find((r) => r.name === torch.reference)! : undefined;
    const torchRowResult = rows.find((r) => r.name === 'torch');
    const result = {
      bench: 'training-real-size',
      shape: `Qwen2.5-Coder-${s.size.toUpperCase()}, ${s.layers} layers, LoRA r ${RANK} q/k/v/o, batch ${s.batch} × ${s.seq}`,
      threads: s.threads,
      loadavg: { before: loadBefore.map((x) => round(x, 2)), after: os.loadavg().map((x) => round(x, 2)) },
      matmulPeakGflops: summarize(peaks),
      flopCount: 'matmuls only: head 4·V·d; trained layers 4·P+6·P_lora+12·S·H·D; layers below 2·P+4·S·H·D; MFU against the ORT MatMul peak of the same rep',
      rows: rows.map((r) => ({
        variant: r.name,
        loraLayers: r.loraLayers,
        tokensPerSecond: summarize(r.tokensPerS),
        mfu: summarize(r.mfu),
        gflopPerToken: round(realSizeFlopsPerToken(config, s.seq, r.loraLayers) / 1e9, 3),
        peakRssMB: round(r.last!.peakRssBytes / MB, 0),
        analyticStateMB: r.last!.stateBytes ? Object.fromEntries(Object.entries(r.last!.stateBytes).map(([k, v]) => [k, round(v / MB, 0)])) : undefined,
      })),
      torch:
        torch && torchVsKiln && torchRowResult
          ? {
              version: torchReady?.torch,
              blas: { info: torchReady?.blasInfo, libraries: torchReady?.blasLibraries, openblasCore: torchReady?.openblasCore, threads: torchReady?.threads },
              head: 'loss positions only, full [M, V] logits, F.cross_entropy (Kiln: the same rows, in chunks)',
              matmulPeakGflops: summarize(torchPeaks),
              mfuVsTorchPeak: summarize(torchRowResult.tokensPerS.map((tps, i) => (tps * realSizeFlopsPerToken(config, s.seq, s.layers)) / (torchPeaks[i]! * 1e9))),
              [`${torch.reference}OverTorch`]: summarize(torchVsKiln.tokensPerS.map((tps, i) => tps / torchRowResult.tokensPerS[i]!)),
              lossCheck: lossCheck(rows, torch.reference),
            }
          : undefined,
    };
    for (const row of result.rows) {
      const analytic = row.analyticStateMB ? ` (analytic ${row.analyticStateMB.total} MB)` : '';
      log(
        `${row.variant.padEnd(9)} ${String(row.tokensPerSecond.median).padStart(8)} tok/s (${row.tokensPerSecond.min}–${row.tokensPerSecond.max})  MFU ${(100 * row.mfu.median).toFixed(1)}%  peak RSS ${row.peakRssMB} MB${analytic}`,
      );
    }
    log(`fp32 MatMul peak ${result.matmulPeakGflops.median} GFLOP/s; load average ${result.loadavg.before.join(' ')} → ${result.loadavg.after.join(' ')}`);
    if (result.torch) {
      const c = result.torch.lossCheck;
      log(
        `torch ${result.torch.version} (OpenBLAS ${result.torch.blas.openblasCore ?? '—'}) MatMul peak ${result.torch.matmulPeakGflops.median} GFLOP/s; ${c.reference}/torch tokens/s ×${round((result.torch[`${c.reference}OverTorch`] as { median: number }).median, 2)}; first-step loss ${c.firstStepLoss.kiln} vs ${c.firstStepLoss.torch} (|Δ| ${c.firstStepLoss.absDiff.toExponential(1)}), max |Δloss| over ${c.steps} steps ${c.maxAbsLossDiff.toExponential(1)}, max relative Δ grad norm ${c.maxRelGradNormDiff.toExponential(1)}`,
      );
    }
    emitJson(result, s.out);
  } finally {
    for (const r of rows) r.child?.stop();
    if (torch) rmSync(torch.dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    log(`real-size training bench failed: ${err.stack ?? err.message}`);
    process.exitCode = 1;
  });
}

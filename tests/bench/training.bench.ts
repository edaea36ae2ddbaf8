// Training benchmark: Kiln's training step (onnxruntime-node, autodiff graph with AdamW inside) side by
// side with PyTorch on the same shapes, the same weights and the same batches, in the same run, A/B
// interleaved; MFU against an fp32 MatMul peak measured in the same run; and the minutes to fine-tune
// a ~1 MB TypeScript repository with the CLI.
//
//   npm run bench:training -- [--reps 5] [--steps 3] [--warmup 2] [--threads 2] [--batch 4] [--seq 256]
//                             [--quick] [--out FILE] [--profile] [--no-torch] [--python /usr/bin/python3]
//                             [--no-finetune] [--finetune-steps 12] [--eval-lines 100] [--repo DIR]
//                             [--finetune-model DIR] [--finetune-only] [--ep cpu|webgpu|cuda|auto]
//
// --quick is a smoke run: 1 rep of 1 step per row and the fine-tune on a ~150 KB slice of the tree
// (2 steps, 2 held-out lines); its figures are not meaningful. --profile adds an ORT profile of the
// training step (and PyTorch's autograd profile) with per-op and per-scope times.
// Reference config: d 512, 8 layers, 8 heads (MHA), vocab 8192, SiLU MLP 1536, tied head; batch 4×256.
// Rows: Kiln LoRA (r 8, alpha 16, q/k/v/o), Kiln full-parameter, and the same two in PyTorch
// (tests/bench/torch_train_step.py: hand-written LLaMA, torch.optim.AdamW + clip_grad_norm_, LoRA by
// hand, the LoRA A/B initial values Kiln generated). Every row is a long-lived child process driven
// over stdin/stdout, so one row's peak RSS never mixes with another's (Kiln: process.resourceUsage()
// maxRSS; PyTorch: getrusage ru_maxrss) and each rep runs every row in turn (order rotated per rep).
//
// Throughput: a rep runs `steps` optimizer steps on a row; its tokens/s is B·S·steps over their summed
// wall time (Kiln: trainStep() including feeds and fetches; PyTorch: zero_grad, forward, backward,
// clip, step). Figures are the median (min–max) over reps; the ratio is Kiln / PyTorch.
//
// MFU: training FLOPs per token (matmuls only; elementwise, softmax, norms and AdamW not counted)
//   full: 6·P + 12·L·S·H·D            P = matrices used in matmuls: layers' projections + the V×d head
//   LoRA: 4·P + 6·P_lora + 12·L·S·H·D frozen weights: forward 2·P + input gradients 2·P, no weight grads
// where 12·L·S·H·D is QKᵀ and PV over the whole S×S square (as both engines execute it, causal half
// not discounted): 4·S·H·D forward, 8·S·H·D backward, per token per layer. MFU = achieved FLOP/s over
// the fp32 MatMul peak measured in the same rep (onnxruntime: a chain of 8 MatMuls 1024³ in one graph,
// so one run's fetch and dispatch are amortized; PyTorch: the same chain with torch.matmul; best of 3).
//
// Fine-tune minutes: `node dist/cli.js finetune <repo>` (LoRA, the default) on a copy of a ~1 MB
// TypeScript source tree with this run's random 25M model and tiny tokenizer: --dry-run for the token
// counts, then a bounded run whose step times (stderr step lines as they arrive) give minutes per epoch.
// Its held-out exact match before/after comes from the run's own report; with random weights both are
// ~0: --finetune-model DIR fine-tunes a pretrained model instead (e.g. models/kiln-code-4m), and
// --finetune-only skips the throughput rows.
import * as ort from 'onnxruntime-node';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import type { ModelConfig } from '../../server/src/model/config';
import { expectedTensors, openCheckpoint } from '../../server/src/model/checkpoint';
import { DEFAULT_ADAMW } from '../../server/src/model/graph/adamw';
import { buildTrainStepGraph, type LoraTarget, TRAINING_OPSETS, TrainIO, type TrainingMode } from '../../server/src/model/graph/training-graph';
import { MODEL_FILE, writeModel } from '../../server/src/model/graph/write-model';
import { writeSafetensors } from '../../server/src/model/safetensors';
import { EXECUTION_PROVIDER_CHOICES, type ExecutionProviderChoice, sessionOptions } from '../../server/src/runtime/execution-provider';
import { TrainerSession, type Batch } from '../../server/src/training/trainer-session';
import { writeTinyCheckpoint } from '../helpers/tiny-model';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer';
import { BenchArgs } from './bench-args';
import { emitJson, log, MB, round, summarize, type Summary } from './bench-stats';
import { ortPeakSession, PEAK } from './matmul-peak';
import { openblasCoreEnv } from './openblas-core';
import { REFERENCE as MODEL_REFERENCE, randomBatches, trainingReferenceWeights } from './reference-model';

// ---------- settings ----------

// maxPositions only bounds inference (the fine-tune run's evaluation builds prompts of up to 1024 + 256
// tokens plus the completion); training cost does not depend on it.
const REFERENCE: ModelConfig = { ...MODEL_REFERENCE, maxPositions: 2048 };
const LORA = { rank: 8, alpha: 16, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as LoraTarget[] };
/** The CLI's learning rates (finetune: LoRA 1e-3, full 3e-4); both engines get the same. */
const LR = { lora: 1e-3, full: 3e-4 };
const MODES = ['lora', 'full'] as const;
type ModeName = (typeof MODES)[number];
/** Distinct batches, cycled: every row sees the same sequence, so losses are comparable step by step. */
const BATCH_COUNT = 4;
/** Profiled training steps (after one warm-up); per node the shortest is kept. */
const PROFILE_RUNS = 3;
const TARGETS = { overTorch: 2, mfu: 0.6 };
const PROTOCOL_PREFIX = '@@bench ';
const REPO = join(__dirname, '..', '..');

interface Settings {
  reps: number;
  steps: number;
  warmup: number;
  threads: number;
  batch: number;
  seq: number;
  quick: boolean;
  out?: string;
  torch: boolean;
  python: string;
  finetune: boolean;
  finetuneSteps: number;
  evalLines: number;
  profile: boolean;
  repo?: string;
  /** The model the fine-tune run adapts (default: this run's random-weight reference model). */
  finetuneModel?: string;
  /** Only the fine-tune figures (no throughput rows). */
  finetuneOnly: boolean;
  /** Bytes of TypeScript copied for the fine-tune run (--quick: a ~150 KB slice of the same tree). */
  repoBudget: number;
  /** Where the Kiln rows train (the provider used is reported; PyTorch rows stay on the CPU). */
  ep: ExecutionProviderChoice;
}

function parseArgs(argv: string[]): Settings {
  const quick = argv.includes('--quick');
  const s: Settings = {
    reps: quick ? 1 : 5,
    steps: quick ? 1 : 3,
    warmup: quick ? 1 : 2,
    threads: 2,
    batch: 4,
    seq: 256,
    quick,
    torch: true,
    python: '/usr/bin/python3',
    finetune: true,
    finetuneSteps: quick ? 2 : 12,
    evalLines: quick ? 2 : 100,
    profile: false,
    finetuneOnly: false,
    repoBudget: quick ? 150_000 : Infinity,
    ep: 'cpu',
  };
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--reps') s.reps = args.positiveInt();
    else if (a === '--steps') s.steps = args.positiveInt();
    else if (a === '--warmup') s.warmup = args.positiveInt();
    else if (a === '--threads') s.threads = args.positiveInt();
    else if (a === '--batch') s.batch = args.positiveInt();
    else if (a === '--seq') s.seq = args.positiveInt();
    else if (a === '--out') s.out = args.value();
    else if (a === '--python') s.python = args.value();
    else if (a === '--finetune-steps') s.finetuneSteps = args.positiveInt();
    else if (a === '--eval-lines') s.evalLines = args.positiveInt();
    else if (a === '--repo') s.repo = args.value();
    else if (a === '--finetune-model') s.finetuneModel = args.value();
    else if (a === '--finetune-only') s.finetuneOnly = true;
    else if (a === '--no-torch') s.torch = false;
    else if (a === '--no-finetune') s.finetune = false;
    else if (a === '--profile') s.profile = true;
    else if (a === '--ep') s.ep = args.oneOf(EXECUTION_PROVIDER_CHOICES);
    else if (a !== '--quick') throw new Error(`unknown argument ${a}`);
  }
  if (s.seq + 1 > REFERENCE.maxPositions) throw new Error(`--seq ${s.seq} exceeds the reference model's ${REFERENCE.maxPositions} positions`);
  return s;
}

// ---------- small helpers ----------

/**
 * Bytes of the training state alone, float32: every model weight once, plus gradient and AdamW m and v
 * for each trainable value (activations and ORT's workspace come on top of it in the peak RSS).
 */
function analyticStateBytes(trainable: number): number {
  const weights = expectedTensors(REFERENCE).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  const loraExtra = trainable < weights ? trainable : 0; // LoRA's A/B are extra values; full training updates the weights in place
  return 4 * (weights + loraExtra + 3 * trainable);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

function loraMode(): TrainingMode {
  return { kind: 'lora', rank: LORA.rank, alpha: LORA.alpha, targets: LORA.targets };
}

function modeOf(name: ModeName): TrainingMode {
  return name === 'lora' ? loraMode() : { kind: 'full' };
}

/** int32 [count, 2 (ids, labels), B, S], the layout the PyTorch peer reads. */
function writeBatches(path: string, batches: Batch[]): void {
  const B = batches[0]!.inputIds.length;
  const S = batches[0]!.inputIds[0]!.length;
  const out = new Int32Array(batches.length * 2 * B * S);
  for (const [i, batch] of batches.entries()) {
    for (const [k, rows] of [batch.inputIds, batch.labels].entries()) {
      for (const [b, row] of rows.entries()) out.set(row, ((i * 2 + k) * B + b) * S);
    }
  }
  writeFileSync(path, new Uint8Array(out.buffer));
}

function readBatches(path: string, count: number, B: number, S: number): Batch[] {
  const buf = readFileSync(path);
  const all = new Int32Array(buf.buffer, buf.byteOffset, count * 2 * B * S);
  return Array.from({ length: count }, (_, i) => {
    const rows = (k: number) => Array.from({ length: B }, (_, b) => all.slice(((i * 2 + k) * B + b) * S, ((i * 2 + k) * B + b + 1) * S));
    return { inputIds: rows(0), labels: rows(1) };
  });
}

/** Training FLOPs per token (see the header for the formula). */
function flopsPerToken(c: ModelConfig, S: number, mode: ModeName): { flops: number; matmulParams: number; loraParams: number; attention: number } {
  const qd = c.numHeads * c.headDim;
  const kvd = c.numKvHeads * c.headDim;
  const perLayer = c.hiddenSize * (qd + 2 * kvd) + qd * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize;
  const matmulParams = c.numLayers * perLayer + c.vocabSize * c.hiddenSize; // the head (tied or not) is a V×d matmul
  const attention = 12 * c.numLayers * S * qd;
  const dims: Record<LoraTarget, [number, number]> = {
    q_proj: [c.hiddenSize, qd],
    k_proj: [c.hiddenSize, kvd],
    v_proj: [c.hiddenSize, kvd],
    o_proj: [qd, c.hiddenSize],
    gate_proj: [c.hiddenSize, c.intermediateSize],
    up_proj: [c.hiddenSize, c.intermediateSize],
    down_proj: [c.intermediateSize, c.hiddenSize],
  };
  const loraParams = c.numLayers * sum(LORA.targets.map((t) => LORA.rank * (dims[t][0] + dims[t][1])));
  const flops = mode === 'full' ? 6 * matmulParams + attention : 4 * matmulParams + 6 * loraParams + attention;
  return { flops, matmulParams, loraParams: mode === 'lora' ? loraParams : 0, attention };
}

// ---------- workers: one child process per row, one JSON object per line ----------

type Reply = Record<string, unknown>;

class Worker {
  private pending: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private stderrTail: string[] = [];
  private exited = false;
  readonly ready: Promise<Reply>;

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    this.ready = new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith(PROTOCOL_PREFIX)) return log(`[${name}] ${line}`);
      const reply = JSON.parse(line.slice(PROTOCOL_PREFIX.length)) as Reply;
      const waiter = this.pending.shift();
      if (!waiter) return log(`[${name}] unexpected reply ${line}`);
      if (typeof reply.error === 'string') waiter.reject(new Error(`${name}: ${reply.error}`));
      else waiter.resolve(reply);
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > 30) this.stderrTail.shift();
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      const err = new Error(`${name} exited (${signal ?? code}) with requests pending:\n${this.stderrTail.join('\n')}`);
      for (const w of this.pending.splice(0)) w.reject(err);
    });
  }

  request(msg: Reply): Promise<Reply> {
    if (this.exited) return Promise.reject(new Error(`${this.name} is not running`));
    const p = new Promise<Reply>((resolve, reject) => this.pending.push({ resolve, reject }));
    this.child.stdin!.write(`${JSON.stringify(msg)}\n`);
    return p;
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

interface StepsReply {
  ms: number[];
  loss: number[];
  gradNorm: number[];
}

/** The BLAS pool sized like torch's, its kernels the CPU's (openblas-core.ts: OpenBLAS's own detection may pick SSE3 ones). */
function blasThreadsEnv(threads: number): NodeJS.ProcessEnv {
  const n = String(threads);
  return { ...process.env, OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n, ...openblasCoreEnv() };
}

function startKilnWorker(mode: ModeName, args: string[], s: Settings): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', __filename, '--worker', 'kiln', '--mode', mode, ...args, '--threads', String(s.threads), '--ep', s.ep], {
    cwd: REPO,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return new Worker(`kiln ${mode}`, child);
}

function startTorchWorker(mode: ModeName, args: string[], s: Settings): Worker {
  const child = spawn(s.python, [join(__dirname, 'torch_train_step.py'), '--mode', mode, ...args, '--threads', String(s.threads)], {
    cwd: REPO,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: blasThreadsEnv(s.threads),
  });
  return new Worker(`torch ${mode}`, child);
}

/** Whether the peer's interpreter imports torch; a clear reason when it does not. */
function checkTorch(python: string): { ok: true; version: string } | { ok: false; reason: string } {
  const r = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (r.error) return { ok: false, reason: `${python} cannot run (${r.error.message}); install Debian's python3 and python3-torch` };
  if (r.status !== 0) {
    return {
      ok: false,
      reason: `${python} cannot import torch (${r.stderr.trim().split('\n').pop()}). Install it: apt-get install -y python3-torch libopenblas0-pthread (use /usr/bin/python3: a pyenv python3 may shadow Debian's)`,
    };
  }
  return { ok: true, version: r.stdout.trim() };
}

// ---------- the Kiln worker (this file run with --worker kiln) ----------

function workerArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i]!.replace(/^--/, '')] = argv[i + 1]!;
  return out;
}

const reply = (obj: Reply) => process.stdout.write(`${PROTOCOL_PREFIX}${JSON.stringify(obj)}\n`);

async function kilnWorker(argv: string[]): Promise<void> {
  const a = workerArgs(argv);
  const mode = a.mode as ModeName;
  const [count, B, S, threads] = [a.count, a.batch, a.seq, a.threads].map(Number) as [number, number, number, number];
  const t0 = performance.now();
  const trainer = await TrainerSession.create({
    modelDir: a.model!,
    mode: modeOf(mode),
    hyper: DEFAULT_ADAMW,
    accumulation: 1,
    threads,
    cacheDir: a.cache!,
    seed: 0,
    executionProvider: (a.ep ?? 'cpu') as ExecutionProviderChoice,
  });
  const createMs = performance.now() - t0;
  if (mode === 'lora' && a['lora-out']) {
    writeSafetensors(
      a['lora-out'],
      trainer.params.map((p) => ({ name: p.name, shape: p.shape, dtype: 'F32' as const, data: Float32Array.from(trainer.values.get(p.name)!) })),
    );
  }
  const batches = readBatches(a.batches!, count, B, S);
  const lr = Number(a.lr);
  const ortVersion = (ort.env as unknown as { versions?: { node?: string; common?: string } }).versions;
  reply({
    ready: true,
    createMs,
    onnxruntimeNode: ortVersion?.node ?? ortVersion?.common,
    trainableParams: sum([...trainer.values.values()].map((v) => v.length)),
    provider: trainer.provider,
    rssMB: process.memoryUsage.rss() / MB,
  });
  let step = 0;
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const msg = JSON.parse(line) as { cmd: string; n?: number };
    if (msg.cmd === 'steps') {
      const out: StepsReply = { ms: [], loss: [], gradNorm: [] };
      for (let i = 0; i < msg.n!; i++) {
        const t = performance.now();
        const r = await trainer.trainStep([batches[step % batches.length]!], lr);
        out.ms.push(performance.now() - t);
        out.loss.push(r.loss);
        out.gradNorm.push(r.gradNorm);
        step++;
      }
      reply({ ...out, step });
    } else if (msg.cmd === 'loss') {
      // one validation batch the way the fine-tune loop measures it (TrainerSession.loss)
      const t = performance.now();
      const loss = await trainer.loss([batches[0]!]);
      reply({ ms: performance.now() - t, loss });
    } else if (msg.cmd === 'exit') {
      reply({ maxRssMB: process.resourceUsage().maxRSS / 1024, rssMB: process.memoryUsage.rss() / MB, steps: step });
      break;
    } else {
      reply({ error: `unknown command ${msg.cmd}` });
    }
  }
  await trainer.release();
}

// ---------- ORT profile of one training step (this file run with --worker kiln-profile) ----------

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

/**
 * The same train-step graph TrainerSession builds, in a session with enableProfiling: one warm-up
 * run, PROFILE_RUNS profiled runs; kernel time (each node's best run) summed per op type, per scope
 * and per node (scoped names show where).
 */
async function kilnProfileWorker(argv: string[]): Promise<void> {
  const a = workerArgs(argv);
  const mode = a.mode as ModeName;
  const [count, B, S, threads] = [a.count, a.batch, a.seq, a.threads].map(Number) as [number, number, number, number];
  const dir = join(a.cache!, `profile-${mode}`);
  const ckpt = openCheckpoint(a.model!);
  let params: ReturnType<typeof buildTrainStepGraph>['params'];
  const values = new Map<string, Float32Array>();
  try {
    const built = buildTrainStepGraph(ckpt.config, ckpt.weights, { mode: modeOf(mode), hyper: DEFAULT_ADAMW, seed: 0 });
    params = built.params;
    for (const p of params) values.set(p.name, Float32Array.from(p.init()));
    writeModel(built.graph, dir, TRAINING_OPSETS);
  } finally {
    ckpt.weights.close();
  }
  const session = await ort.InferenceSession.create(join(dir, MODEL_FILE), {
    ...sessionOptions('cpu', threads),
    enableProfiling: true,
    profileFilePrefix: join(dir, 'ort-profile'),
  });
  const batch = readBatches(a.batches!, count, B, S)[0]!;
  const ids = (rows: Int32Array[]) =>
    new ort.Tensor(
      'int64',
      BigInt64Array.from(
        rows.flatMap((r) => Array.from(r)),
        BigInt,
      ),
      [rows.length, S],
    );
  const feeds: Record<string, ort.Tensor> = {
    [TrainIO.inputIds]: ids(batch.inputIds),
    [TrainIO.labels]: ids(batch.labels),
    [TrainIO.lr]: new ort.Tensor('float32', Float32Array.of(Number(a.lr)), []),
    [TrainIO.step]: new ort.Tensor('float32', Float32Array.of(1), []),
  };
  for (const p of params) {
    feeds[p.name] = new ort.Tensor('float32', values.get(p.name)!, p.shape);
    feeds[TrainIO.m(p.name)] = new ort.Tensor('float32', new Float32Array(values.get(p.name)!.length), p.shape);
    feeds[TrainIO.v(p.name)] = new ort.Tensor('float32', new Float32Array(values.get(p.name)!.length), p.shape);
  }
  await session.run(feeds); // warm-up
  const stepMs: number[] = [];
  for (let i = 0; i < PROFILE_RUNS; i++) {
    const t = performance.now();
    await session.run(feeds);
    stepMs.push(performance.now() - t);
  }
  session.endProfiling();
  await session.release();
  const file = readdirSync(dir).find((f) => f.startsWith('ort-profile') && f.endsWith('.json'));
  if (!file) throw new Error('no ORT profile file was written');
  const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as ProfileEvent[];
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(-PROFILE_RUNS);
  // per node, its shortest time over the profiled runs: a thread preempted mid-op (a shared,
  // noisy machine) stalls a whole parallel op, and the minimum filters most of that out
  const best = new Map<string, { us: number; op: string }>();
  for (const run of runs) {
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < run.ts || e.ts > run.ts + run.dur) continue;
      const prev = best.get(e.name);
      if (!prev || e.dur < prev.us) best.set(e.name, { us: e.dur, op: e.args?.op_name ?? '?' });
    }
  }
  const nodes = [...best].map(([name, x]) => ({ name: name.replace(/_kernel_time$/, ''), ...x }));
  const byOp = new Map<string, { us: number; calls: number }>();
  for (const e of nodes) {
    const x = byOp.get(e.op) ?? { us: 0, calls: 0 };
    x.us += e.us;
    x.calls++;
    byOp.set(e.op, x);
  }
  const kernelMs = sum(nodes.map((e) => e.us)) / 1000;
  // forward (/model, /lm_head), backward, optimizer (/adamw): the first segment of the scoped node name
  const byScope = new Map<string, number>();
  for (const e of nodes) {
    const segments = e.name.split('/').filter(Boolean);
    const scope = segments.length > 1 ? segments[0]! : 'top level (graph outputs)';
    byScope.set(scope, (byScope.get(scope) ?? 0) + e.us);
  }
  const share = (us: number) => round(us / 1000 / kernelMs);
  const scopes = Object.fromEntries([...byScope].sort((x, y) => y[1] - x[1]).map(([k, us]) => [k, { ms: round(us / 1000, 1), share: share(us) }]));
  const topOps = [...byOp]
    .sort((x, y) => y[1].us - x[1].us)
    .slice(0, 15)
    .map(([op, x]) => ({ op, ms: round(x.us / 1000, 1), share: share(x.us), calls: x.calls }));
  const topNodes = nodes
    .sort((x, y) => y.us - x.us)
    .slice(0, 12)
    .map((e) => ({ node: e.name, op: e.op, ms: round(e.us / 1000, 2) }));
  reply({ stepMs: summarize(stepMs), runsMs: runs.map((r) => round(r.dur / 1000, 1)), kernelMsSumOfBest: round(kernelMs, 1), nodes: nodes.length, scopes, topOps, topNodes });
}

// ---------- fine-tune minutes on a ~1 MB TypeScript repository ----------

/** Copies the .ts files under `src` into `dest` (structure kept) until `budget` bytes; their count and bytes. */
function copyTypeScript(src: string, dest: string, budget = Infinity): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (bytes >= budget) return;
      const from = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && e.name !== '.git') walk(from);
      } else if (e.isFile() && e.name.endsWith('.ts')) {
        const to = join(dest, relative(src, from));
        mkdirSync(dirname(to), { recursive: true });
        copyFileSync(from, to);
        files++;
        bytes += statSync(from).size;
      }
    }
  };
  walk(src);
  return { files, bytes };
}

/**
 * The default source tree, ~1 MB of real TypeScript that ships in node_modules: MSAL's msal-common and
 * msal-node sources (0.59 + 0.41 MB), laid out as in their monorepo (lib/<package>/src); without them,
 * this repository's own .ts files (~0.77 MB).
 */
function defaultRepo(): { label: string; parts: { from: string; to: string }[] } {
  const azure = join(REPO, 'node_modules', '@azure');
  const msal = ['msal-common', 'msal-node'].map((p) => ({ from: join(azure, p, 'src'), to: join('lib', p, 'src') }));
  if (msal.every((p) => existsSync(p.from))) return { label: `${join(azure, 'msal-{common,node}', 'src')}`, parts: msal };
  return { label: REPO, parts: [{ from: REPO, to: '.' }] };
}

interface CliRun {
  code: number | null;
  stdout: string;
  stderrLines: { ms: number; line: string }[];
  wallMs: number;
}

function runCli(args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [join(REPO, 'dist', 'cli.js'), ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KILN_DEBUG: '1' } });
    const chunks: Buffer[] = [];
    const stderrLines: CliRun['stderrLines'] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    createInterface({ input: child.stderr }).on('line', (line) => stderrLines.push({ ms: performance.now() - t0, line }));
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(chunks).toString('utf8'), stderrLines, wallMs: performance.now() - t0 }));
  });
}

interface DatasetSummary {
  files: number;
  excluded: number;
  tokens: { train: number; validation: number };
  sequences: { train: number; validation: number };
}

interface EvalSummary {
  exactMatch: number;
  editSimilarity: number;
  validationLoss: number;
  lines: number;
  files: number;
}

async function fineTuneFigures(s: Settings, root: string, modelDir: string, benchTokensPerS: Record<string, number | undefined>) {
  if (!existsSync(join(REPO, 'dist', 'cli.js'))) return { skipped: 'dist/cli.js is missing: run `npm run build` first (`npm run bench:training` does)' };
  const { label: source, parts } = s.repo ? { label: s.repo, parts: [{ from: s.repo, to: '.' }] } : defaultRepo();
  const repo = join(root, 'repo');
  const copied = { files: 0, bytes: 0 };
  for (const p of parts) {
    const c = copyTypeScript(p.from, join(repo, p.to), s.repoBudget - copied.bytes);
    copied.files += c.files;
    copied.bytes += c.bytes;
  }
  const cache = join(root, 'finetune-cache');
  const model = s.finetuneModel ?? modelDir;
  const common = ['--model', model, '--threads', String(s.threads), '--cache', cache, '--batch', String(s.batch), '--seq-len', String(s.seq), '--json'];
  log(`fine-tune: ${copied.files} .ts files, ${(copied.bytes / 1e6).toFixed(2)} MB from ${source}`);

  const dry = await runCli(['finetune', repo, ...common, '--dry-run']);
  if (dry.code !== 0) throw new Error(`finetune --dry-run failed (${dry.code}):\n${dry.stderrLines.map((l) => l.line).join('\n')}`);
  const dryResult = JSON.parse(dry.stdout) as { dataset: DatasetSummary & { files: unknown[]; excluded: unknown[] } };
  const ds = dryResult.dataset;
  const dataset: DatasetSummary = { files: ds.files.length, excluded: ds.excluded.length, tokens: ds.tokens, sequences: ds.sequences };
  log(
    `fine-tune dry run: ${dataset.tokens.train} train / ${dataset.tokens.validation} validation tokens, ${dataset.sequences.train} train sequences (${Math.round(dry.wallMs)} ms)`,
  );

  const steps = s.finetuneSteps;
  const runArgs = [
    'finetune',
    repo,
    ...common,
    '--steps',
    String(steps),
    '--eval-every',
    String(steps),
    '--eval-lines',
    String(s.evalLines),
    '--out',
    join(root, 'finetune-out'),
    '--no-resume',
  ];
  log(`fine-tune: ${steps} LoRA steps, ${s.evalLines} held-out lines before and after …`);
  const run = await runCli(runArgs);
  if (run.code !== 0) throw new Error(`finetune failed (${run.code}):\n${run.stderrLines.map((l) => l.line).join('\n')}`);
  const result = JSON.parse(run.stdout) as { steps: number; trainSeconds: number; tokensSeen: number; before?: EvalSummary; after?: EvalSummary };
  const stepLines = run.stderrLines.filter((l) => /^step \d+\/\d+/.test(l.line));
  const stepTimes = stepLines.map((l) => l.ms);
  const phases = run.stderrLines
    .filter((l) => /^(reading |measuring |\d+ training sequences|saving |measuring the fine-tuned)/.test(l.line))
    .map((l) => ({ atS: round(l.ms / 1000, 1), phase: l.line }));
  const intervals = stepTimes.slice(1).map((t, i) => (t - stepTimes[i]!) / 1000);
  // step times from the arrival of consecutive step lines (the first step, with its warm-up, left out);
  // with a single step, the run's own average tokens/s
  const lastTokS = Number(/ (\d+) tok\/s/.exec(stepLines[stepLines.length - 1]?.line ?? '')?.[1]);
  const stepS = intervals.length ? summarize(intervals).median : (s.batch * s.seq) / lastTokS;
  const stepsPerEpoch = Math.ceil(dataset.sequences.train / s.batch);
  // the run's phases from the arrival of its progress lines
  const at = (re: RegExp) => run.stderrLines.find((l) => re.test(l.line))?.ms;
  const tRead = at(/^reading /) ?? 0;
  const tBefore = at(/^measuring the base model/) ?? NaN;
  const tTrain = at(/^\d+ training sequences/) ?? NaN;
  const tSave = at(/^saving /) ?? NaN;
  const tAfter = at(/^measuring the fine-tuned/) ?? NaN;
  const tFirst = stepTimes[0] ?? NaN;
  const tLast = stepTimes[stepTimes.length - 1] ?? NaN;
  const breakdown = {
    startupS: tRead / 1000,
    datasetS: (tBefore - tRead) / 1000,
    evaluateBeforeS: (tTrain - tBefore) / 1000,
    trainSetupS: (tFirst - tTrain) / 1000 - stepS, // trainer session + the initial validation pass
    stepsS: (tLast - tFirst) / 1000 + stepS,
    validationS: (tSave - tLast) / 1000, // one validation pass + checkpoint (every --eval-every steps)
    saveS: (tAfter - tSave) / 1000,
    evaluateAfterS: (run.wallMs - tAfter) / 1000,
  };
  // the CLI's defaults: 3 epochs, at most 200 steps, validation + checkpoint every 25 steps and at the end
  const defaultSteps = Math.min(200, 3 * stepsPerEpoch);
  const validations = Math.floor(defaultSteps / 25) + (defaultSteps % 25 ? 1 : 0);
  const b = breakdown;
  const defaultRunS = b.startupS + b.datasetS + b.evaluateBeforeS + b.trainSetupS + defaultSteps * stepS + validations * b.validationS + b.saveS + b.evaluateAfterS;
  const epochS = stepsPerEpoch * stepS;
  const em = (r?: EvalSummary) =>
    r ? { exactMatch: r.exactMatch, editSimilarity: round(r.editSimilarity), validationLoss: round(r.validationLoss, 4), lines: r.lines, files: r.files } : undefined;
  // the bench's throughput rows are the reference model's: they extrapolate only a run on that model
  const perEpochFromBench = (tokS?: number) => (tokS && !s.finetuneModel ? round(dataset.tokens.train / tokS / 60, 2) : undefined);
  return {
    model: s.finetuneModel ?? "this run's random-weight reference model (25M config) + tiny tokenizer",
    source,
    typescriptFiles: copied.files,
    typescriptMB: round(copied.bytes / 1e6, 2),
    dataset,
    bytesPerToken: round(copied.bytes / (dataset.tokens.train + dataset.tokens.validation), 2),
    run: {
      mode: 'lora (CLI default: r 8, alpha 16, q/k/v/o)',
      steps: result.steps,
      stepSeconds: round(stepS, 3),
      tokensPerS: round((s.batch * s.seq) / stepS, 0),
      wallSeconds: round(run.wallMs / 1000, 1),
      breakdownSeconds: Object.fromEntries(Object.entries(breakdown).map(([k, v]) => [k, round(v, 1)])),
      phases,
    },
    stepsPerEpoch,
    minutesPerEpoch: round(epochS / 60, 2),
    minutesPerEpochWithValidation: round((epochS + Math.ceil(stepsPerEpoch / 25) * b.validationS) / 60, 2),
    minutesPerEpochFromBench: { lora: perEpochFromBench(benchTokensPerS.lora), full: perEpochFromBench(benchTokensPerS.full) },
    defaultRun: {
      steps: defaultSteps,
      validations,
      minutes: round(defaultRunS / 60, 2),
      trainingStepsShare: round((defaultSteps * stepS) / defaultRunS),
      note: "CLI defaults (min(200, 3 epochs) steps, validation + checkpoint every 25 steps) built from this run's measured phases",
    },
    exactMatch: {
      before: em(result.before),
      after: em(result.after),
      gainPoints: result.before && result.after ? round(100 * (result.after.exactMatch - result.before.exactMatch), 2) : undefined,
    },
    note: s.finetuneModel
      ? `exact match before/after on ${s.evalLines} held-out lines of the repository, from the run's own report`
      : 'random-weight 25M model and tiny tokenizer: exact match is ~0 before and after; the gain becomes meaningful with a pretrained model (--finetune-model DIR)',
  };
}

// ---------- the run ----------

interface Row {
  name: string;
  engine: 'kiln' | 'torch';
  mode: ModeName;
  worker: Worker;
  ready: Reply;
  warm: StepsReply;
  reps: StepsReply[];
  /** ms of TrainerSession.loss on one batch (Kiln rows). */
  validationMs: number[];
  exit?: Reply;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--worker') {
    if (argv[1] === 'kiln') await kilnWorker(argv.slice(2));
    else if (argv[1] === 'kiln-profile') await kilnProfileWorker(argv.slice(2));
    else throw new Error(`unknown worker ${argv[1]}`);
    process.exit(0); // stdin stays open in a worker; its replies are already written (pipes are synchronous)
  }
  const s = parseArgs(argv);
  const started = performance.now();
  const loadavgBefore = os.loadavg().map((x) => round(x, 2));
  const root = mkdtempSync(join(os.tmpdir(), 'kiln-bench-training-'));
  const rows: Row[] = [];
  const workers: Worker[] = [];
  let peak: Awaited<ReturnType<typeof ortPeakSession>> | undefined;
  try {
    let t = performance.now();
    const modelDir = join(root, 'model');
    writeTinyCheckpoint(modelDir, trainingReferenceWeights(REFERENCE));
    writeTinyTokenizer(modelDir, { vocabSize: REFERENCE.vocabSize });
    const batchesFile = join(root, 'batches.i32');
    writeBatches(batchesFile, randomBatches(BATCH_COUNT, s.batch, s.seq, 11));
    log(`weights and batches: ${Math.round(performance.now() - t)} ms (${root})`);

    if (s.finetuneOnly) {
      const finetune = await fineTuneFigures(s, root, modelDir, {});
      emitJson(
        {
          finetune,
          settings: { threads: s.threads, batch: s.batch, seq: s.seq, finetuneSteps: s.finetuneSteps, evalLines: s.evalLines },
          machine: machineInfo(s, loadavgBefore, started),
        },
        s.out,
      );
      log(
        `fine-tune: ${JSON.stringify({ minutesPerEpoch: (finetune as { minutesPerEpoch?: number }).minutesPerEpoch, exactMatch: (finetune as { exactMatch?: unknown }).exactMatch })}`,
      );
      return;
    }
    const torch = s.torch ? checkTorch(s.python) : ({ ok: false, reason: 'disabled with --no-torch' } as const);
    if (!torch.ok) log(`PyTorch rows skipped: ${torch.reason}`);

    peak = await ortPeakSession(join(root, 'peak'), s.threads);
    const shared = ['--model', modelDir, '--batches', batchesFile, '--count', String(BATCH_COUNT), '--batch', String(s.batch), '--seq', String(s.seq)];
    // start every row at once (startup is not timed against anything); PyTorch LoRA waits for the
    // LoRA initial values Kiln writes, so both start from the same adapters
    t = performance.now();
    const loraInit = join(root, 'lora-init.safetensors');
    const loraArgs = ['--lora-init', loraInit, '--rank', String(LORA.rank), '--alpha', String(LORA.alpha), '--targets', LORA.targets.join(',')];
    const start = async (engine: 'kiln' | 'torch', mode: ModeName, after?: Promise<unknown>): Promise<Row> => {
      await after;
      const w =
        engine === 'kiln'
          ? startKilnWorker(mode, [...shared, '--lr', String(LR[mode]), '--cache', join(root, 'cache'), '--lora-out', loraInit], s)
          : startTorchWorker(mode, [...shared, '--lr', String(LR[mode]), ...(mode === 'lora' ? loraArgs : [])], s);
      workers.push(w);
      return { name: `${engine} ${mode}`, engine, mode, worker: w, ready: await w.ready, warm: { ms: [], loss: [], gradNorm: [] }, reps: [], validationMs: [] };
    };
    const kilnLora = start('kiln', 'lora');
    const started4 = [kilnLora, start('kiln', 'full')];
    if (torch.ok) started4.splice(1, 0, start('torch', 'lora', kilnLora));
    if (torch.ok) started4.push(start('torch', 'full'));
    rows.push(...(await Promise.all(started4))); // order: kiln lora, torch lora, kiln full, torch full
    log(`rows ready: ${rows.map((r) => `${r.name} ${Math.round(r.ready.createMs as number)} ms`).join(', ')} (${Math.round(performance.now() - t)} ms)`);
    for (const r of rows)
      if (r.engine === 'kiln' && s.ep !== 'cpu' && r.ready.provider !== s.ep) log(`${r.name}: --ep ${s.ep} not available, trained on ${r.ready.provider as string}`);
    const torchRow = rows.find((r) => r.engine === 'torch');
    if (torchRow)
      log(
        `PyTorch ${torchRow.ready.torch as string}, ${torchRow.ready.blasInfo as string}, BLAS libraries: ${(torchRow.ready.blasLibraries as string[]).join(', ') || 'none mapped'}`,
      );

    // warm-up (untimed): the first steps of every row, on the same batches: the losses are compared
    for (const r of rows) r.warm = (await r.worker.request({ cmd: 'steps', n: s.warmup })) as unknown as StepsReply;
    log(`warm-up (${s.warmup} steps): ${rows.map((r) => `${r.name} loss ${r.warm.loss.map((x) => x.toFixed(5)).join(' ')}`).join('; ')}`);

    // timed reps: peaks first (ORT and torch, order alternating), then every row in rotated order
    const peaks: { ort: number[]; torch: number[] } = { ort: [], torch: [] };
    for (let rep = 0; rep < s.reps; rep++) {
      const peakOrder = rep % 2 === 0 ? ['ort', 'torch'] : ['torch', 'ort'];
      for (const which of peakOrder) {
        if (which === 'ort') peaks.ort.push((await peak.run()).gflops);
        else if (torchRow) peaks.torch.push((await torchRow.worker.request({ cmd: 'matmul', ...PEAK })).gflops as number);
        await sleep(100);
      }
      const order = rows.map((_, i) => rows[(i + rep) % rows.length]!);
      for (const r of order) {
        r.reps.push((await r.worker.request({ cmd: 'steps', n: s.steps })) as unknown as StepsReply);
        await sleep(150); // let the finished row's thread pool stop spinning before the next starts
      }
      const tokS = (r: Row) => (s.batch * s.seq * s.steps) / (sum(r.reps[rep]!.ms) / 1000);
      log(
        `rep ${rep + 1}/${s.reps}: peak ORT ${peaks.ort[rep]!.toFixed(0)}${torchRow ? ` torch ${peaks.torch[rep]!.toFixed(0)}` : ''} GFLOP/s; ${rows.map((r) => `${r.name} ${tokS(r).toFixed(0)} tok/s`).join(', ')} (${Math.round((performance.now() - started) / 1000)} s)`,
      );
    }

    // one validation batch through TrainerSession.loss (what the fine-tune loop runs every 25 steps)
    for (const r of rows) {
      if (r.engine !== 'kiln') continue;
      for (let i = 0; i < 2; i++) r.validationMs.push((await r.worker.request({ cmd: 'loss' })).ms as number);
      await sleep(150);
    }

    // PyTorch's own profile of one step (before its workers exit)
    const torchProfiles: Record<string, Reply> = {};
    if (s.profile) for (const r of rows) if (r.engine === 'torch') torchProfiles[r.mode] = await r.worker.request({ cmd: 'profile' });
    for (const r of rows) r.exit = await r.worker.request({ cmd: 'exit' });
    await peak.release();
    peak = undefined;

    const kilnProfiles: Record<string, Reply> = {};
    if (s.profile) {
      for (const mode of MODES) {
        const child = spawn(
          process.execPath,
          [
            '--import',
            'tsx',
            __filename,
            '--worker',
            'kiln-profile',
            '--mode',
            mode,
            ...shared,
            '--lr',
            String(LR[mode]),
            '--cache',
            join(root, 'cache'),
            '--threads',
            String(s.threads),
          ],
          { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] },
        );
        const w = new Worker(`kiln profile ${mode}`, child);
        workers.push(w);
        kilnProfiles[mode] = await w.ready;
        log(`ORT profile ${mode}: ${JSON.stringify((kilnProfiles[mode]!.topOps as unknown[]).slice(0, 6))}`);
      }
    }

    const tokPerS = (r: Row) => r.reps.map((x) => (s.batch * s.seq * x.ms.length) / (sum(x.ms) / 1000));
    const kilnTok = Object.fromEntries(MODES.map((m) => [m, summarize(tokPerS(rows.find((r) => r.name === `kiln ${m}`)!)).median]));
    let finetune: unknown;
    if (s.finetune) {
      t = performance.now();
      finetune = await fineTuneFigures(s, root, modelDir, kilnTok);
      log(`fine-tune figures: ${Math.round((performance.now() - t) / 1000)} s`);
    }
    const result = report(s, rows, peaks, tokPerS, torch.ok ? torch.version : undefined, { kiln: kilnProfiles, torch: torchProfiles }, finetune, loadavgBefore, started);
    printTable(result);
    emitJson(result, s.out);
  } finally {
    for (const w of workers) w.kill();
    await peak?.release().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  }
}

// ---------- report ----------

function machineInfo(s: Settings, loadavgBefore: number[], started: number) {
  const ortVersion = (ort.env as unknown as { versions?: { node?: string; common?: string } }).versions;
  return {
    cpu: os.cpus()[0]?.model,
    logicalCpus: os.cpus().length,
    totalMemGB: round(os.totalmem() / 2 ** 30, 1),
    threadsUsed: s.threads,
    loadavgBefore,
    loadavgAfter: os.loadavg().map((x) => round(x, 2)),
    node: process.version,
    onnxruntimeNode: ortVersion?.node ?? ortVersion?.common,
    totalSeconds: round((performance.now() - started) / 1000, 1),
  };
}

function report(
  s: Settings,
  rows: Row[],
  peaks: { ort: number[]; torch: number[] },
  tokPerS: (r: Row) => number[],
  torchVersion: string | undefined,
  profiles: { kiln: Record<string, Reply>; torch: Record<string, Reply> },
  finetune: unknown,
  loadavgBefore: number[],
  started: number,
) {
  const row = (name: string) => rows.find((r) => r.name === name);
  const byRow: Record<string, unknown> = {};
  const mfuPerRep = (r: Row, peakList: number[]) => {
    const f = flopsPerToken(REFERENCE, s.seq, r.mode).flops;
    return tokPerS(r).map((x, i) => (f * x) / 1e9 / peakList[i]!);
  };
  for (const r of rows) {
    const f = flopsPerToken(REFERENCE, s.seq, r.mode).flops;
    const tok = tokPerS(r);
    const allSteps = r.reps.flatMap((x) => x.ms);
    byRow[r.name] = {
      tokensPerS: summarize(tok),
      stepMs: summarize(allSteps),
      achievedGflops: summarize(tok.map((x) => (f * x) / 1e9)),
      mfuVsOrtPeak: summarize(mfuPerRep(r, peaks.ort)),
      mfuVsTorchPeak: peaks.torch.length ? summarize(mfuPerRep(r, peaks.torch)) : undefined,
      peakRssMB: round(r.exit?.maxRssMB as number, 0),
      rssAfterCreateMB: round(r.ready.rssMB as number, 0),
      rssAtExitMB: round(r.exit?.rssMB as number, 0),
      validationBatchMs: r.validationMs.length ? summarize(r.validationMs) : undefined,
      validationBatchOverStep: r.validationMs.length ? round(summarize(r.validationMs).median / summarize(allSteps).median) : undefined,
      createMs: round(r.ready.createMs as number, 0),
      executionProvider: r.engine === 'kiln' ? r.ready.provider : 'cpu (PyTorch)',
      trainableParams: r.ready.trainableParams,
      warmupLosses: r.warm.loss.map((x) => round(x, 6)),
    };
  }
  const modes: Record<string, unknown> = {};
  for (const mode of MODES) {
    const k = row(`kiln ${mode}`)!;
    const tr = row(`torch ${mode}`);
    const kTok = summarize(tokPerS(k)).median;
    const tTok = tr ? summarize(tokPerS(tr)).median : undefined;
    const mfu = summarize(mfuPerRep(k, peaks.ort)).median;
    const lossCheck = tr
      ? (() => {
          const kl = [...k.warm.loss, ...k.reps.flatMap((x) => x.loss)];
          const tl = [...tr.warm.loss, ...tr.reps.flatMap((x) => x.loss)];
          const diffs = kl.map((x, i) => Math.abs(x - tl[i]!));
          return {
            firstStepLoss: { kiln: round(kl[0]!, 6), torch: round(tl[0]!, 6), absDiff: diffs[0]!, agrees: diffs[0]! <= 1e-4 },
            firstStepGradNorm: {
              kiln: round(k.warm.gradNorm[0]!, 6),
              torch: round(tr.warm.gradNorm[0]!, 6),
              relDiff: Math.abs(k.warm.gradNorm[0]! - tr.warm.gradNorm[0]!) / tr.warm.gradNorm[0]!,
            },
            maxAbsLossDiffOverAllSteps: round(Math.max(...diffs), 6),
            steps: diffs.length,
          };
        })()
      : undefined;
    // rep-by-rep ratios (each rep ran both rows close together)
    const perRep = tr ? tokPerS(k).map((x, i) => x / tokPerS(tr)[i]!) : [];
    modes[mode] = {
      kilnTokensPerS: kTok,
      torchTokensPerS: tTok,
      kilnOverTorch: tTok ? round(kTok / tTok) : undefined,
      kilnOverTorchPerRep: perRep.length ? summarize(perRep) : undefined,
      overTorchTarget: `>= ${TARGETS.overTorch}`,
      overTorchMet: tTok ? kTok / tTok >= TARGETS.overTorch : undefined,
      kilnMfu: round(mfu),
      mfuTarget: `>= ${TARGETS.mfu}`,
      mfuMet: mfu >= TARGETS.mfu,
      kilnPeakRssMB: round(k.exit?.maxRssMB as number, 0),
      analyticStateMB: round(analyticStateBytes(k.ready.trainableParams as number) / MB, 1),
      torchPeakRssMB: tr ? round(tr.exit?.maxRssMB as number, 0) : undefined,
      flopsPerToken: flopsPerToken(REFERENCE, s.seq, mode),
      lossCheck,
    };
  }
  const tr = rows.find((r) => r.engine === 'torch');
  return {
    headline: modes,
    peaks: {
      ortMatMulGflops: summarize(peaks.ort),
      torchMatMulGflops: peaks.torch.length ? summarize(peaks.torch) : undefined,
      what: `fp32 MatMul ${PEAK.n}³, a chain of ${PEAK.chain} in one run, best of ${PEAK.runs}, ${s.threads} threads, measured at the start of every rep`,
    },
    rows: byRow,
    profiles: s.profile ? profiles : undefined,
    finetune,
    settings: {
      reps: s.reps,
      stepsPerRep: s.steps,
      warmupSteps: s.warmup,
      threads: s.threads,
      batch: s.batch,
      seq: s.seq,
      lr: LR,
      lora: LORA,
      adamw: DEFAULT_ADAMW,
      quick: s.quick,
    },
    config: REFERENCE,
    machine: {
      ...machineInfo(s, loadavgBefore, started),
      torch: torchVersion,
      python: tr?.ready.python,
      torchBlas: tr
        ? {
            info: tr.ready.blasInfo,
            libraries: tr.ready.blasLibraries,
            openblasCore: tr.ready.openblasCore,
            threads: tr.ready.threads,
            openblasThreadsEnv: tr.ready.openblasThreadsEnv,
          }
        : undefined,
    },
    notes: [
      'tokens/s per rep = B·S·steps / summed step wall time; median (min–max) over reps. Each row is its own process; rows run one at a time, order rotated per rep.',
      'FLOPs per token: full 6·P + 12·L·S·H·D; LoRA 4·P + 6·P_lora + 12·L·S·H·D (P = projection matrices + V×d head; attention over the whole S×S square). MFU = FLOPs/token × tokens/s / the MatMul peak of the same rep.',
      'Loss check: both engines start from the same weights (LoRA: the A/B values Kiln generated) and train on the same cycled batches with the same AdamW hyperparameters and lr.',
      "Peak RSS: maxRSS of each row's own process (Kiln: process.resourceUsage(); PyTorch: getrusage).",
    ],
  };
}

function printTable(r: ReturnType<typeof report>): void {
  const fmt = (x?: Summary, digits = 0) => (x ? `${x.median.toFixed(digits)} (${x.min.toFixed(digits)}–${x.max.toFixed(digits)})` : '—');
  const header = ['row', 'tokens/s', 'step ms', 'GFLOP/s', 'MFU vs ORT peak', 'peak RSS MB', 'create ms'];
  const lines = Object.entries(r.rows).map(([name, row]) => {
    const x = row as { tokensPerS: Summary; stepMs: Summary; achievedGflops: Summary; mfuVsOrtPeak: Summary; peakRssMB: number; createMs: number };
    return [name, fmt(x.tokensPerS), fmt(x.stepMs), fmt(x.achievedGflops), fmt(x.mfuVsOrtPeak, 2), String(x.peakRssMB), String(x.createMs)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  const m = r.machine;
  log('');
  log(
    `${m.cpu} (${m.logicalCpus} logical CPUs), ${m.threadsUsed} threads, node ${m.node}, onnxruntime-node ${m.onnxruntimeNode}, torch ${m.torch ?? '—'} (${m.torchBlas?.info ?? 'no BLAS info'}, OpenBLAS core ${m.torchBlas?.openblasCore ?? '—'})`,
  );
  log(
    `loadavg before ${m.loadavgBefore.join(' ')}, after ${m.loadavgAfter.join(' ')}; ${r.settings.reps} reps × ${r.settings.stepsPerRep} steps, batch ${r.settings.batch}×${r.settings.seq}; median (min–max)`,
  );
  log(`MatMul peak GFLOP/s: ORT ${fmt(r.peaks.ortMatMulGflops)}, torch ${fmt(r.peaks.torchMatMulGflops)}`);
  log(line(header));
  for (const l of lines) log(line(l));
  for (const [mode, h] of Object.entries(r.headline)) {
    const x = h as {
      kilnOverTorch?: number;
      overTorchMet?: boolean;
      kilnMfu: number;
      mfuMet: boolean;
      lossCheck?: { firstStepLoss: { kiln: number; torch: number; absDiff: number }; maxAbsLossDiffOverAllSteps: number };
    };
    const lc = x.lossCheck;
    log(
      `${mode}: Kiln/PyTorch ${x.kilnOverTorch ?? '—'} (target ≥ ${TARGETS.overTorch}: ${x.overTorchMet ?? '—'}), MFU ${x.kilnMfu} (target ≥ ${TARGETS.mfu}: ${x.mfuMet})` +
        (lc
          ? `; first-step loss kiln ${lc.firstStepLoss.kiln} torch ${lc.firstStepLoss.torch} (|Δ| ${lc.firstStepLoss.absDiff.toExponential(1)}), max |Δloss| over all steps ${lc.maxAbsLossDiffOverAllSteps}`
          : ''),
    );
  }
  const ft = r.finetune as
    | {
        minutesPerEpoch?: number;
        stepsPerEpoch?: number;
        typescriptMB?: number;
        dataset?: DatasetSummary;
        exactMatch?: { before?: EvalSummary; after?: EvalSummary };
        skipped?: string;
      }
    | undefined;
  if (ft?.skipped) log(`fine-tune: skipped (${ft.skipped})`);
  else if (ft) {
    log(
      `fine-tune ${ft.typescriptMB} MB of TypeScript: ${ft.dataset!.tokens.train} train tokens, ${ft.stepsPerEpoch} steps/epoch, ${ft.minutesPerEpoch} min/epoch (LoRA, measured); exact match before ${ft.exactMatch?.before?.exactMatch ?? '—'} after ${ft.exactMatch?.after?.exactMatch ?? '—'}`,
    );
  }
  log('');
}

main().catch((err: Error) => {
  log(`training bench failed: ${err.stack ?? err.message}`);
  process.exitCode = 1;
});

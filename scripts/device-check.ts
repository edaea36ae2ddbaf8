// The GPU check's driver (issue 13, item 7). scripts/device-check.sh runs each step in its own process,
// under its own timeout, so a crash or a hang in one GPU row costs that step only; every step writes
// what it has measured so far to WORK/parts/<step>.json after each row, and `merge` folds the parts
// and the steps' exit codes into the one JSON the check reports.
//
//   node --import tsx scripts/device-check.ts <step> --work DIR [--dry] [--threads N] [--candidate webgpu|cuda|cpu]
//   node --import tsx scripts/device-check.ts merge --work DIR --out FILE --exits "env=0 parity=124 …"
//   (on the device: node device-check.js … from the payload that `device-check.sh --pack` builds)
//
// Steps
//   env        node, onnxruntime, nvidia-smi, the Vulkan loader and drivers, Kiln's own GPU probe, and a
//              one-op session on the candidate provider alone (the adapter error when there is none)
//   parity     logits of the same seeded random model on the candidate and on the CPU: a tiny model
//              and the 25M reference shape, every prompt position plus decode steps on the KV cache;
//              which provider ORT placed each node of the reference graph on (from its profile)
//   model      the 25M reference, both providers side by side, interleaved reps: prefill tok/s (512
//              tokens), decode ms/token at context 50 and 1000; the memory the status bar would show
//   keystroke  the keystroke bench's typing trace through the real CompletionEngine (KV reuse), both
//              providers in alternating blocks: latency p50/p95, first token, and whether they agree
//   train      one LoRA training step (the fine-tune's defaults) on both providers from the same
//              initial state and batch: loss, gradient norm, and tokens/s over the steps after it
//
// Providers: every candidate row must run on the candidate. Kiln's loader falls back to the CPU when a
// provider fails (the product wants that); here such a fallback is recorded as the row's failure with
// the errors ORT gave, never as a result. `--candidate cpu` runs the candidate rows on the CPU to test
// this script itself; its JSON says so and its verdict is never a pass.
import * as ort from 'onnxruntime-node';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { formatBytes, memoryLabel } from '../client/src/format';
import type { KilnStats } from '../server/src/protocol';
import { type CompletionModel, loadCompletionModel } from '../server/src/completion/completion-model';
import { CompletionEngine } from '../server/src/completion/engine';
import { automaticThreads } from '../server/src/runtime/threads';
import { parseSettings } from '../server/src/lsp/settings';
import type { ModelConfig } from '../server/src/model/config';
import { DEFAULT_ADAMW } from '../server/src/model/graph/adamw';
import { GraphBuilder } from '../server/src/model/graph/onnx-graph';
import { MODEL_FILE, writeModel } from '../server/src/model/graph/write-model';
import { DecoderSession, threadRunner } from '../server/src/runtime/decoder-session';
import { type ExecutionProvider, type ProviderAttempt, sessionOptions } from '../server/src/runtime/execution-provider';
import { webgpuUnavailableReason } from '../server/src/runtime/gpu-probe';
import type { KvState } from '../server/src/kvcache/kv-state';
import { type LoadedModel, loadModel, prepareGraph } from '../server/src/runtime/load-model';
import { type MemoryReport, nvidiaProcessVram } from '../server/src/runtime/memory';
import { DEFAULT_LORA, FINE_TUNE_DEFAULTS } from '../server/src/finetune/fine-tune-options';
import { TrainerSession } from '../server/src/training/trainer-session';
import { LatencyStats } from '../server/src/telemetry/latency-stats';
import { MB, round, summarize, type Summary } from '../tests/bench/bench-stats';
import { distribution, type KilnSample, kilnKeystroke, recordingModel, REFERENCE as KEYSTROKE_REFERENCE, typingTrace, WEIGHTS_SEED } from '../tests/bench/keystroke-trace';
import { randomBatches, randomTokens, REFERENCE, referenceWeights, trainingReferenceWeights } from '../tests/bench/reference-model';
import { seededRandom } from '../tests/helpers/random';
import { writeTinyCodeModel } from '../tests/helpers/tiny-code-model';
import { makeTinyWeights, TINY_LLAMA, writeTinyCheckpoint } from '../tests/helpers/tiny-model';
import { maxAbsDiff } from '../tests/helpers/tiny-session';
import { writeTinyTokenizer } from '../tests/helpers/tiny-tokenizer';

/** Logits parity bound: max |Δ| over max(1, max |CPU logit|) — absolute for logits within ±1, relative above. */
const PARITY_TOLERANCE = 1e-3;
/** The same bound on the training loss of the first step (both providers start from the same state). */
const LOSS_TOLERANCE = 1e-3;

const STEPS = ['env', 'parity', 'model', 'keystroke', 'train'] as const;
type Step = (typeof STEPS)[number];

interface Settings {
  step: Step | 'merge';
  work: string;
  dry: boolean;
  threads: number;
  candidate: ExecutionProvider;
  out?: string;
  /** Seconds a step may take before it stops starting new reps, blocks or steps (the wrapper's timeout kills it later). */
  budgetS: number;
  exits: Record<string, { rc: number; seconds: number }>;
}

const started = performance.now();
/** Whether the step has used its time budget: it then records what it has and ends. */
const overBudget = (s: Settings) => (performance.now() - started) / 1000 > s.budgetS;

/** Sizes per mode: the device run, and the dry run that fits a 2-core machine in about 2 minutes. */
function sizes(dry: boolean) {
  return dry
    ? {
        parityPrompt: { tiny: 24, reference: 64 },
        decodeChecks: 2,
        reps: 2,
        steps: 8,
        prefill: 512,
        contexts: [50, 1000],
        keystrokes: 24,
        block: 12,
        train: { batch: 1, seq: 128, steps: 2 },
      }
    : {
        parityPrompt: { tiny: 48, reference: 128 },
        decodeChecks: 4,
        reps: 5,
        steps: 32,
        prefill: 512,
        contexts: [50, 1000],
        keystrokes: 320,
        block: 32,
        train: { batch: 4, seq: 256, steps: 3 },
      };
}

function parseArgs(argv: string[]): Settings {
  const [step, ...rest] = argv;
  if (!step || ![...STEPS, 'merge'].includes(step))
    throw new Error(`usage: device-check <${[...STEPS, 'merge'].join('|')}> --work DIR [--dry] [--threads N] [--candidate webgpu|cuda|cpu]`);
  const s: Settings = { step: step as Settings['step'], work: '', dry: false, threads: 0, candidate: 'webgpu', budgetS: Infinity, exits: {} };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const value = () => {
      const v = rest[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--work') s.work = resolve(value());
    else if (a === '--dry') s.dry = true;
    else if (a === '--threads') s.threads = Number(value());
    else if (a === '--candidate') s.candidate = value() as ExecutionProvider;
    else if (a === '--out') s.out = resolve(value());
    else if (a === '--budget-s') s.budgetS = Number(value());
    else if (a === '--exits') {
      for (const item of value().split(/\s+/).filter(Boolean)) {
        const [name, rc, seconds] = item.split(/[=:]/);
        s.exits[name!] = { rc: Number(rc), seconds: Number(seconds ?? NaN) };
      }
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!s.work) throw new Error('--work DIR is required');
  if (!['webgpu', 'cuda', 'cpu'].includes(s.candidate)) throw new Error('--candidate must be webgpu, cuda or cpu');
  if (!Number.isInteger(s.threads) || s.threads < 0) throw new Error('--threads needs a whole number (0: as the product picks)');
  if (s.threads === 0) s.threads = automaticThreads();
  return s;
}

// ---------- results: one part file per step, rewritten after every row ----------

type Json = Record<string, unknown>;

class Part {
  private readonly data: Json;
  private readonly file: string;

  constructor(work: string, step: string, s: Settings) {
    mkdirSync(join(work, 'parts'), { recursive: true });
    this.file = join(work, 'parts', `${step}.json`);
    this.data = { step, startedAt: new Date().toISOString(), complete: false, run: { dry: s.dry, threads: s.threads, candidate: s.candidate, budgetS: s.budgetS } };
    this.flush();
  }

  set(key: string, value: unknown): void {
    this.data[key] = value;
    this.flush();
  }

  finish(complete: boolean): void {
    this.data.complete = complete;
    this.data.finishedAt = new Date().toISOString();
    this.flush();
  }

  private flush(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(this.data, null, 2)}\n`);
    renameSync(tmp, this.file);
  }
}

const log = (line: string) => process.stderr.write(`[device-check] ${line}\n`);
const message = (err: unknown) => (err instanceof Error ? err.message : String(err)).trim();

/**
 * ORT's errors open with its source location and the failed condition ("…/webgpu_context.cc:136
 * … was false. Failed to get a WebGPU adapter: No supported adapters"): the sentence after it.
 */
function shortError(text: string): string {
  const t = text.replace(/^execution provider \w+ failed: /, '').trim();
  const m = /^\/onnxruntime_src\/\S+ .*? was false\. ([\s\S]+)$/.exec(t) ?? /^\/onnxruntime_src\/\S+:\d+ \S+ ([\s\S]+)$/.exec(t);
  return (m?.[1] ?? t).trim();
}

/** A row's outcome: its figures, or why it has none (`unavailable`: the provider could not be used). */
type Row<T> = ({ ok: true } & T) | { ok: false; error: string; unavailable?: boolean; provider?: string; attempts?: ProviderAttempt[] };

class ProviderUnavailable extends Error {
  constructor(
    readonly asked: ExecutionProvider,
    readonly used: string | undefined,
    readonly attempts: ProviderAttempt[],
  ) {
    const why =
      attempts
        .filter((a) => a.provider === asked)
        .map((a) => shortError(a.error))
        .join('; ') || 'no error recorded';
    super(used ? `${asked} was asked for, the session runs on ${used} (a fallback, not a ${asked} result): ${why}` : `${asked} could not be used: ${why}`);
  }
}

async function guard<T extends Json>(name: string, fn: () => Promise<T>): Promise<Row<T>> {
  const t0 = performance.now();
  try {
    const r = await fn();
    log(`${name}: done in ${Math.round(performance.now() - t0)} ms`);
    return { ok: true, ...r };
  } catch (err) {
    log(`${name}: FAILED: ${shortError(message(err))}`);
    if (err instanceof ProviderUnavailable) return { ok: false, error: err.message, unavailable: true, provider: err.used, attempts: err.attempts };
    const at =
      err instanceof Error && err.stack
        ? err.stack
            .split('\n')
            .filter((l) => l.trimStart().startsWith('at '))
            .slice(0, 4)
            .map((l) => l.trim())
        : undefined;
    const full = message(err);
    return { ok: false, error: shortError(full), ...(shortError(full) !== full ? { fullError: full } : {}), ...(at?.length ? { at } : {}) };
  }
}

/** Loads a checkpoint folder through Kiln's real path on exactly `provider`. */
async function loadOn(provider: ExecutionProvider, modelDir: string, cacheDir: string, threads: number): Promise<LoadedModel> {
  const model = await loadModel(modelDir, { executionProvider: provider, threads, cacheDir });
  if (model.session.provider !== provider) {
    await model.session.release();
    throw new ProviderUnavailable(provider, model.session.provider, model.attempts);
  }
  return model;
}

function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

function maxAbs(xs: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < xs.length; i++) m = Math.max(m, Math.abs(xs[i]!));
  return m;
}

function run(cmd: string, args: string[], timeout = 10_000): { ok: boolean; out: string; error?: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout });
  if (r.error) return { ok: false, out: '', error: (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? `${cmd} is not on the PATH` : r.error.message };
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.status === 0 ? '' : (r.stderr ?? '')}`.trim(), ...(r.status === 0 ? {} : { error: `exit ${r.status ?? r.signal}` }) };
}

function ortVersions(): Json {
  const v = (ort.env as unknown as { versions?: Record<string, string> }).versions ?? {};
  return { ...v };
}

/** Seeded random-weight checkpoints the steps share (written once per WORK folder). */
function referenceModelDir(work: string): string {
  const dir = join(work, 'models', 'reference-25m');
  if (!existsSync(join(dir, 'model.safetensors'))) {
    writeTinyCheckpoint(dir, referenceWeights());
    writeTinyTokenizer(dir, { vocabSize: REFERENCE.vocabSize });
  }
  return dir;
}

const cacheDirOf = (work: string) => join(work, 'graph-cache');

/** The two rows of every side-by-side step: the candidate provider, and the CPU as the reference. */
const rowProviders = (s: Settings): { name: 'candidate' | 'cpu'; provider: ExecutionProvider }[] => [
  { name: 'candidate', provider: s.candidate },
  { name: 'cpu', provider: 'cpu' },
];

// ---------- env ----------

/** Vulkan driver manifests in the folders and variables the Vulkan loader reads. */
function vulkanIcds(): { files: string[]; env: Record<string, string | undefined> } {
  const env = { VK_DRIVER_FILES: process.env.VK_DRIVER_FILES, VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES, VK_ADD_DRIVER_FILES: process.env.VK_ADD_DRIVER_FILES };
  const dirs = [
    '/etc/vulkan/icd.d',
    '/usr/share/vulkan/icd.d',
    '/usr/local/share/vulkan/icd.d',
    '/usr/local/nvidia/share/vulkan/icd.d',
    ...(process.env.XDG_DATA_DIRS ?? '')
      .split(':')
      .filter(Boolean)
      .map((d) => join(d, 'vulkan', 'icd.d')),
  ];
  const files: string[] = [];
  for (const d of new Set(dirs)) {
    try {
      for (const f of readdirSync(d)) if (f.endsWith('.json')) files.push(join(d, f));
    } catch {
      // not there
    }
  }
  return { files, env };
}

/** A one-op graph on `provider` alone (no fallback list): the adapter error, verbatim, when there is none. */
async function adapterProbe(work: string, provider: ExecutionProvider): Promise<Json> {
  const dir = join(work, 'probe-graph');
  const g = new GraphBuilder('probe');
  const x = g.input('x', 'float32', [4]);
  g.output(g.op('Add', [x, x]), 'y', 'float32', [4]);
  writeModel(g, dir, { '': 17 });
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(join(dir, MODEL_FILE), { executionProviders: [provider] });
  const createMs = performance.now() - t0;
  const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4), [4]) });
  await session.release();
  const y = Array.from(out.y!.data as Float32Array);
  if (y.join() !== '2,4,6,8') throw new Error(`the probe graph computed ${y.join()} instead of 2,4,6,8`);
  return { createMs: round(createMs, 1), output: y };
}

async function envStep(s: Settings, part: Part): Promise<void> {
  const smi = run('nvidia-smi', ['-L']);
  const loader = run('sh', ['-c', 'ldconfig -p | grep -i libvulkan']);
  let manifest: unknown;
  const manifestFile = join(__dirname, 'MANIFEST.json');
  if (existsSync(manifestFile)) manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
  part.set('environment', {
    node: { version: process.version, execPath: process.execPath, source: process.env.KILN_DC_NODE_SOURCE ?? 'unknown', systemNode: process.env.KILN_DC_SYSTEM_NODE ?? 'unknown' },
    runner: process.env.KILN_DC_RUNNER ?? 'unknown',
    payload: manifest ?? 'none (run from the repository with tsx)',
    onnxruntime: ortVersions(),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpu: `${os.cpus()[0]?.model} (${os.cpus().length} logical CPUs)`,
    threadsForCpuRows: s.threads,
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    loadavg: os.loadavg().map((x) => round(x, 2)),
    nvidiaSmi: {
      onPath: !smi.error?.includes('not on the PATH'),
      list: smi.ok ? smi.out.split('\n') : undefined,
      error: smi.error,
      output: smi.ok ? undefined : smi.out || undefined,
      // the status bar's VRAM figure runs `nvidia-smi` from the PATH; one installed elsewhere is never found
      installedAt: ['/usr/bin/nvidia-smi', '/usr/local/bin/nvidia-smi', '/usr/local/nvidia/bin/nvidia-smi'].filter((f) => existsSync(f)),
    },
    gpu: (() => {
      const q = run('nvidia-smi', ['--query-gpu=name,memory.used,memory.total,driver_version', '--format=csv,noheader']);
      return q.ok ? q.out.split('\n') : q.error;
    })(),
    vulkan: {
      loader: loader.ok ? loader.out.split('\n').map((l) => l.trim()) : 'no libvulkan in the ldconfig cache',
      icds: vulkanIcds(),
      setupByWrapper: process.env.KILN_DC_VULKAN_SETUP ?? 'unknown',
      kilnProbe: webgpuUnavailableReason() ?? "Kiln's probe finds a GPU device, the Vulkan loader and a driver manifest",
    },
  });
  part.set('adapter', { provider: s.candidate, ...(await guard(`${s.candidate} adapter probe`, () => adapterProbe(s.work, s.candidate))) });
}

// ---------- parity ----------

interface Comparison {
  positions: number;
  maxAbsError: number;
  maxAbsCpuLogit: number;
  relativeError: number;
  /** Largest difference of a next-token probability (softmax of each row), for scale. */
  maxAbsProbError: number;
  argmaxAgree: number;
  pass: boolean;
}

/** Folds one logits block [T][V] into a running comparison. */
function compareLogits(acc: Omit<Comparison, 'relativeError' | 'pass'>, got: Float32Array, want: Float32Array, V: number): void {
  acc.maxAbsError = Math.max(acc.maxAbsError, maxAbsDiff(got, want));
  acc.maxAbsCpuLogit = Math.max(acc.maxAbsCpuLogit, maxAbs(want));
  for (let t = 0; t < want.length / V; t++) {
    const [g, w] = [got.subarray(t * V, (t + 1) * V), want.subarray(t * V, (t + 1) * V)];
    acc.positions++;
    if (argmax(g) === argmax(w)) acc.argmaxAgree++;
    acc.maxAbsProbError = Math.max(acc.maxAbsProbError, maxAbsDiff(softmax(g), softmax(w)));
  }
}

function softmax(xs: Float32Array): Float64Array {
  const m = xs.reduce((a, b) => Math.max(a, b), -Infinity);
  const e = Float64Array.from(xs, (x) => Math.exp(x - m));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

/** Every prompt position (one forward), then `decodeSteps` decode steps on the KV cache, both providers. */
async function parityOf(candidate: LoadedModel, cpu: LoadedModel, tokens: number[], decodeSteps: number): Promise<Comparison> {
  const V = cpu.config.vocabSize;
  const acc = { maxAbsError: 0, maxAbsCpuLogit: 0, maxAbsProbError: 0, positions: 0, argmaxAgree: 0 };
  const [sc, sr] = [candidate.session.newState(), cpu.session.newState()];
  const got = await candidate.session.forward(sc, [tokens], 'all');
  const want = await cpu.session.forward(sr, [tokens], 'all');
  compareLogits(acc, got.logits, want.logits, V);
  let next = argmax(want.logits.subarray((tokens.length - 1) * V));
  for (let i = 0; i < decodeSteps; i++) {
    const g = await candidate.session.decode(sc, next);
    const w = await cpu.session.decode(sr, next);
    compareLogits(acc, g, w, V);
    next = argmax(w);
  }
  const relativeError = acc.maxAbsError / Math.max(1, acc.maxAbsCpuLogit);
  return { ...acc, relativeError, pass: relativeError <= PARITY_TOLERANCE };
}

/** Where ORT placed each node of a graph on `provider`: from one profiled forward of the prompt. */
async function nodePlacement(graphDir: string, config: ModelConfig, provider: ExecutionProvider, threads: number, tokens: number[], work: string): Promise<Json> {
  const profileDir = join(work, 'profile');
  mkdirSync(profileDir, { recursive: true });
  const prefix = join(profileDir, `placement-${provider}`);
  const session = await ort.InferenceSession.create(join(graphDir, MODEL_FILE), { ...sessionOptions(provider, threads), enableProfiling: true, profileFilePrefix: prefix });
  const decoder = new DecoderSession(threadRunner(session), config, provider, 0);
  await decoder.prefill(decoder.newState(), tokens);
  session.endProfiling();
  await session.release();
  const file = readdirSync(profileDir)
    .filter((f) => f.startsWith(`placement-${provider}`) && f.endsWith('.json'))
    .sort()
    .pop();
  if (!file) throw new Error('ORT wrote no profile');
  const events = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as { cat: string; name: string; args?: { op_name?: string; provider?: string } }[];
  const nodes = new Map<string, { op: string; provider: string }>();
  for (const e of events)
    if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) nodes.set(e.name.replace(/_kernel_time$/, ''), { op: e.args?.op_name ?? '?', provider: e.args?.provider ?? '?' });
  const byProvider: Record<string, number> = {};
  const opsOffProvider: Record<string, number> = {};
  const wanted = { webgpu: 'WebGpuExecutionProvider', cuda: 'CUDAExecutionProvider', cpu: 'CPUExecutionProvider' }[provider];
  for (const n of nodes.values()) {
    byProvider[n.provider] = (byProvider[n.provider] ?? 0) + 1;
    if (n.provider !== wanted) opsOffProvider[n.op] = (opsOffProvider[n.op] ?? 0) + 1;
  }
  return {
    nodes: nodes.size,
    byProvider,
    opsNotOn: { provider: wanted, ops: opsOffProvider },
    note: 'nodes ORT assigned elsewhere (often small shape ops it keeps on the CPU on purpose); each costs a copy between devices',
  };
}

async function parityStep(s: Settings, part: Part): Promise<void> {
  const z = sizes(s.dry);
  const cacheDir = cacheDirOf(s.work);
  const tinyDir = join(s.work, 'models', 'tiny');
  if (!existsSync(join(tinyDir, 'model.safetensors'))) writeTinyCheckpoint(tinyDir, makeTinyWeights(TINY_LLAMA, 7));
  const cases: { name: string; dir: string; config: ModelConfig; tokens: number[] }[] = [
    {
      name: 'tiny',
      dir: tinyDir,
      config: TINY_LLAMA,
      tokens: (() => {
        const r = seededRandom(5);
        return Array.from({ length: z.parityPrompt.tiny }, () => Math.floor(r() * TINY_LLAMA.vocabSize));
      })(),
    }, // prettier-ignore
    { name: 'reference25m', dir: referenceModelDir(s.work), config: REFERENCE, tokens: randomTokens(5, z.parityPrompt.reference) },
  ];
  const results: Json = {};
  for (const c of cases) {
    results[c.name] = await guard(`parity ${c.name}`, async () => {
      const cpu = await loadOn('cpu', c.dir, cacheDir, s.threads);
      try {
        const t0 = performance.now();
        const candidate = await loadOn(s.candidate, c.dir, cacheDir, s.threads);
        const candidateCreateMs = performance.now() - t0;
        try {
          const cmp = await parityOf(candidate, cpu, c.tokens, z.decodeChecks);
          return {
            provider: candidate.session.provider,
            candidateSessionCreateMs: round(candidateCreateMs, 1),
            promptTokens: c.tokens.length,
            decodeSteps: z.decodeChecks,
            ...cmp,
            tolerance: PARITY_TOLERANCE,
          };
        } finally {
          await candidate.session.release();
        }
      } finally {
        await cpu.session.release();
      }
    });
    part.set('parity', results);
  }
  const ref = cases[1]!;
  const graph = prepareGraph(ref.dir, { cacheDir });
  part.set('nodePlacement', await guard(`node placement on ${s.candidate}`, () => nodePlacement(graph.graphDir, ref.config, s.candidate, s.threads, ref.tokens, s.work)));
}

// ---------- model: prefill and decode side by side ----------

interface Engine {
  name: string;
  model: LoadedModel;
  states: Map<number, KvState>;
}

async function prefillMs(e: Engine, tokens: number[]): Promise<number> {
  const state = e.model.session.newState();
  const t0 = performance.now();
  await e.model.session.prefill(state, tokens);
  return performance.now() - t0;
}

async function decodeRun(e: Engine, n: number, steps: number[]): Promise<number> {
  const state = e.states.get(n)!;
  const t0 = performance.now();
  for (const t of steps) await e.model.session.decode(state, t);
  const ms = (performance.now() - t0) / steps.length;
  state.truncate(n);
  return ms;
}

/** The whole GPU's memory in use (MiB), from nvidia-smi; undefined without it. */
function gpuMemoryUsedMiB(): number | undefined {
  const q = run('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits']);
  if (!q.ok) return undefined;
  const n = q.out
    .split('\n')
    .map(Number)
    .reduce((a, b) => a + b, 0);
  return Number.isFinite(n) ? n : undefined;
}

/** The status bar's memory figure for this report, and what stood behind it. */
async function statusBarMemory(model: LoadedModel, gpuUsedBeforeMiB: number | undefined): Promise<Json> {
  const m: MemoryReport = await model.session.memory();
  const stats = { memory: m } as unknown as KilnStats;
  const apps = run('nvidia-smi', ['--query-compute-apps=pid,used_memory,process_name', '--format=csv,noheader,nounits']);
  const used = gpuMemoryUsedMiB();
  const viaPath = await nvidiaProcessVram();
  return {
    statusBarShows: memoryLabel(stats),
    vramBytes: m.vramBytes,
    vramMB: m.vramBytes === undefined ? undefined : round(m.vramBytes / MB, 1),
    source:
      'DecoderSession.memory(): on a non-CPU provider, nvidia-smi --query-compute-apps=pid,used_memory summed for this pid (server/src/runtime/memory.ts); without a match the status bar shows RSS instead',
    nvidiaSmiOnPath: !apps.error?.includes('not on the PATH'),
    pid: process.pid,
    computeApps: apps.ok ? apps.out.split('\n').filter(Boolean) : apps.error,
    nvidiaProcessVramNow: viaPath,
    wholeGpuUsedMiB: { before: gpuUsedBeforeMiB, after: used, delta: used !== undefined && gpuUsedBeforeMiB !== undefined ? used - gpuUsedBeforeMiB : undefined },
    rss: formatBytes(m.rssBytes),
    weightMB: round(m.weightBytes / MB, 1),
    kvMB: round(m.kvBytes / MB, 1),
    finding:
      model.session.provider === 'cpu'
        ? 'a CPU session: the status bar shows RSS (VRAM is asked for only on a GPU provider)'
        : m.vramBytes !== undefined
          ? 'the status bar shows VRAM'
          : apps.error
            ? `the status bar shows RSS: ${apps.error}`
            : `the status bar shows RSS: nvidia-smi lists no compute app with pid ${process.pid} (a Vulkan process may not be listed as a compute app, and a container's pids differ from the host's)`,
  };
}

async function modelStep(s: Settings, part: Part): Promise<void> {
  const z = sizes(s.dry);
  const dir = referenceModelDir(s.work);
  const cacheDir = cacheDirOf(s.work);
  const gpuBefore = gpuMemoryUsedMiB();
  const engines: Engine[] = [];
  const loads: Json = {};
  for (const { name, provider } of rowProviders(s)) {
    const r = await guard(`load ${name} (${provider})`, async () => {
      const model = await loadOn(provider, dir, cacheDir, s.threads);
      engines.push({ name, model, states: new Map() });
      return { provider, sessionCreateMs: round(model.sessionCreateMs, 1), buildMs: round(model.buildMs, 1), cacheHit: model.cacheHit };
    });
    loads[name] = r;
    part.set('loads', loads);
  }
  const prefillTokens = randomTokens(1, z.prefill);
  const context = randomTokens(2, Math.max(...z.contexts));
  const stepTokens = randomTokens(3, z.steps);
  const failed: Record<string, string> = {};
  const live = () => engines.filter((e) => !failed[e.name]);
  // warm-up (untimed): a prefill, the decode contexts, two decode steps each
  for (const e of engines) {
    try {
      await prefillMs(e, prefillTokens);
      for (const n of z.contexts) {
        const state = e.model.session.newState();
        await e.model.session.prefill(state, context.slice(0, n));
        e.states.set(n, state);
        await decodeRun(e, n, stepTokens.slice(0, 2));
      }
    } catch (err) {
      failed[e.name] = `warm-up: ${message(err)}`;
    }
  }
  const candidate = engines.find((e) => e.name === 'candidate');
  if (candidate && !failed.candidate) part.set('memory', await guard('status-bar memory', () => statusBarMemory(candidate.model, gpuBefore)));
  const cpu = engines.find((e) => e.name === 'cpu');
  if (cpu && !failed.cpu) part.set('memoryCpuRow', await guard('status-bar memory, CPU row', () => statusBarMemory(cpu.model, gpuBefore)));
  const figures = new Map(engines.map((e) => [e.name, { prefill: [] as number[], decode: new Map(z.contexts.map((n) => [n, [] as number[]])) }]));
  const t0 = performance.now();
  for (let rep = 0; rep < z.reps; rep++) {
    if (rep > 0 && overBudget(s)) {
      part.set('stoppedEarly', `time budget of ${s.budgetS} s used after ${rep} reps`);
      break;
    }
    const order = rep % 2 === 0 ? live() : live().reverse();
    for (const e of order) {
      try {
        figures.get(e.name)!.prefill.push(z.prefill / ((await prefillMs(e, prefillTokens)) / 1000));
        for (const n of z.contexts)
          figures
            .get(e.name)!
            .decode.get(n)!
            .push(await decodeRun(e, n, stepTokens));
      } catch (err) {
        failed[e.name] = `rep ${rep + 1}: ${message(err)}`;
      }
    }
    const rows: Json = {};
    for (const e of engines) {
      const f = figures.get(e.name)!;
      rows[e.name] = {
        provider: e.model.session.provider,
        ...(failed[e.name] ? { ok: false, error: failed[e.name] } : { ok: true }),
        prefillTokensPerS: f.prefill.length ? summarize(f.prefill) : undefined,
        decodeMsPerToken: Object.fromEntries([...f.decode].filter(([, xs]) => xs.length).map(([n, xs]) => [String(n), summarize(xs)])),
      };
    }
    const fig = (name: string) => rows[name] as { prefillTokensPerS?: Summary; decodeMsPerToken: Record<string, Summary> } | undefined;
    const c = fig('candidate');
    const p = fig('cpu');
    const ratios =
      c?.prefillTokensPerS && p?.prefillTokensPerS
        ? {
            prefillCandidateOverCpu: round(c.prefillTokensPerS.median / p.prefillTokensPerS.median),
            ...Object.fromEntries(
              z.contexts
                .filter((n) => c.decodeMsPerToken[n] && p.decodeMsPerToken[n])
                .map((n) => [`decode${n}CandidateOverCpu`, round(c.decodeMsPerToken[n]!.median / p.decodeMsPerToken[n]!.median)]),
            ),
          }
        : undefined;
    part.set('rows', rows);
    part.set('ratios', ratios ?? 'needs both rows');
    part.set('repsDone', rep + 1);
    log(`model rep ${rep + 1}/${z.reps} (${Math.round((performance.now() - t0) / 1000)} s)`);
  }
  part.set('settings', {
    reps: z.reps,
    decodeStepsPerRun: z.steps,
    prefillTokens: z.prefill,
    contexts: z.contexts,
    threads: s.threads,
    interleaving: 'each rep runs every row; the order flips every rep',
    statistic: 'median (min–max) over reps; decode = the mean step of a run',
  });
  for (const e of engines) await e.model.session.release();
}

// ---------- keystroke trace ----------

async function keystrokeStep(s: Settings, part: Part): Promise<void> {
  const z = sizes(s.dry);
  const dir = join(s.work, 'models', 'keystroke-25m');
  if (!existsSync(join(dir, 'model.safetensors'))) writeTinyCodeModel(dir, { seed: WEIGHTS_SEED, config: KEYSTROKE_REFERENCE, fimOrders: ['spm'] });
  const update = parseSettings({ threads: s.threads, maxTokens: 16, completionMode: 'line', candidates: 1, speculate: false, timeLimitMs: 60000 });
  if (update.problems.length) throw new Error(update.problems.join('; '));
  interface TraceRow {
    name: string;
    provider: ExecutionProvider;
    model: CompletionModel;
    engine: CompletionEngine;
    takePrompt: () => number[];
    samples: KilnSample[];
    error?: string;
  }
  const rows: TraceRow[] = [];
  const loads: Json = {};
  for (const { name, provider } of rowProviders(s)) {
    loads[name] = await guard(`keystroke load ${name} (${provider})`, async () => {
      const loaded = await loadCompletionModel(dir, { fimOrder: 'auto', quantization: 'none' }, { executionProvider: provider, threads: s.threads, cacheDir: cacheDirOf(s.work) });
      if (loaded.loaded.session.provider !== provider) {
        await loaded.loaded.session.release();
        throw new ProviderUnavailable(provider, loaded.loaded.session.provider, loaded.loaded.attempts);
      }
      const rec = recordingModel(loaded);
      const settings = { ...update.settings, executionProvider: provider };
      rows.push({
        name,
        provider,
        model: loaded,
        engine: new CompletionEngine(rec.model, settings, new LatencyStats(), { server: rec.serverFor(settings) }),
        takePrompt: rec.takePrompt,
        samples: [],
      });
      return { provider, order: loaded.order, sessionCreateMs: round(loaded.loaded.sessionCreateMs, 1) };
    });
    part.set('loads', loads);
  }
  const trace = typingTrace().slice(0, z.keystrokes);
  // warm-up (untimed): the first keystroke's prompt once per row, as a document of its own
  for (const r of rows) {
    try {
      await kilnKeystroke(r.engine, r.takePrompt, trace[0]!, -1, `file:///device-check/${r.name}/warm-up.ts`);
    } catch (err) {
      r.error = `warm-up: ${message(err)}`;
    }
  }
  const t0 = performance.now();
  for (let from = 0, block = 0; from < trace.length; from += z.block, block++) {
    if (block > 0 && overBudget(s)) {
      part.set('stoppedEarly', `time budget of ${s.budgetS} s used after ${from} keystrokes`);
      break;
    }
    const live = rows.filter((r) => !r.error);
    for (const r of block % 2 === 0 ? live : [...live].reverse()) {
      for (let i = from; i < Math.min(trace.length, from + z.block); i++) {
        try {
          r.samples.push(await kilnKeystroke(r.engine, r.takePrompt, trace[i]!, i, `file:///device-check/${r.name}/${i}/jobs.ts`));
        } catch (err) {
          r.error = `keystroke ${i}: ${message(err)}`;
          break;
        }
      }
    }
    part.set('rows', keystrokeRows(rows));
    part.set('agreement', agreement(rows));
    log(`keystroke ${Math.min(trace.length, from + z.block)}/${trace.length} (${Math.round((performance.now() - t0) / 1000)} s)`);
  }
  part.set('settings', {
    keystrokes: trace.length,
    traceKeystrokes: typingTrace().length,
    block: z.block,
    maxTokens: 16,
    completionMode: 'line',
    kvReuse: true,
    threads: s.threads,
    interleaving: "blocks of keystrokes, the rows' order flipping every block; each row sees every keystroke in order",
    latency: 'request to answer around CompletionEngine.complete, each request a new document (no typing-through)',
  });
  for (const r of rows) await r.model.loaded.session.release();

  function keystrokeRows(rs: TraceRow[]): Json {
    return Object.fromEntries(
      rs.map((r) => [
        r.name,
        {
          provider: r.provider,
          ok: !r.error && r.samples.length > 0,
          ...(r.error ? { error: r.error } : {}),
          keystrokes: r.samples.length,
          ...(r.samples.length
            ? {
                latencyMs: distribution(r.samples.map((x) => x.ms)),
                firstTokenMs: distribution(r.samples.map((x) => x.firstTokenMs)),
                prefilledTokens: distribution(r.samples.map((x) => x.computed)),
                cacheHitRatio: round(r.samples.filter((x) => x.reused > 0).length / r.samples.length, 4),
                decodeTokens: distribution(r.samples.map((x) => x.decodeTokens)),
              }
            : {}),
        },
      ]),
    );
  }
  function agreement(rs: TraceRow[]): Json | string {
    const [a, b] = rs;
    if (!a || !b) return 'needs both rows';
    const byKey = new Map(b.samples.map((x) => [x.keystroke, x]));
    let compared = 0;
    let samePrompt = 0;
    let sameSuggestion = 0;
    for (const x of a.samples) {
      const y = byKey.get(x.keystroke);
      if (!y) continue;
      compared++;
      if (x.prompt.join() === y.prompt.join()) samePrompt++;
      if (x.suggestion === y.suggestion) sameSuggestion++;
    }
    return { compared, samePrompt, sameSuggestion, note: 'greedy decoding: equal suggestions are expected where logits agree to within the parity bound, barring near-ties' };
  }
}

// ---------- one LoRA training step ----------

async function trainStep(s: Settings, part: Part): Promise<void> {
  const z = sizes(s.dry).train;
  const dir = join(s.work, 'models', 'training-25m');
  if (!existsSync(join(dir, 'model.safetensors'))) {
    writeTinyCheckpoint(dir, trainingReferenceWeights());
    writeTinyTokenizer(dir, { vocabSize: REFERENCE.vocabSize });
  }
  const batches = randomBatches(z.steps, z.batch, z.seq, 11);
  const lr = FINE_TUNE_DEFAULTS.lr;
  interface TrainRow {
    name: string;
    provider: ExecutionProvider;
    trainer: TrainerSession;
    steps: { loss: number; gradNorm: number; ms: number }[];
    error?: string;
  }
  const rows: TrainRow[] = [];
  const loads: Json = {};
  for (const { name, provider } of rowProviders(s)) {
    loads[name] = await guard(`trainer ${name} (${provider})`, async () => {
      const t0 = performance.now();
      const logs: string[] = [];
      const trainer = await TrainerSession.create({
        modelDir: dir,
        mode: DEFAULT_LORA,
        hyper: DEFAULT_ADAMW,
        accumulation: 1,
        threads: s.threads,
        cacheDir: join(s.work, 'training-cache'),
        seed: 0,
        executionProvider: provider,
        log: (m) => logs.push(m),
      });
      if (trainer.provider !== provider) {
        await trainer.release();
        throw new ProviderUnavailable(
          provider,
          trainer.provider,
          logs.filter((l) => l.includes('failed') || l.includes('skipped')).map((error) => ({ provider, error })),
        );
      }
      rows.push({ name, provider, trainer, steps: [] });
      return { provider, createMs: round(performance.now() - t0, 1), trainableParams: [...trainer.values.values()].reduce((a, v) => a + v.length, 0) };
    });
    part.set('loads', loads);
  }
  // step by step, the rows alternating (the order flips every step): the same batch, the same state
  for (let i = 0; i < z.steps; i++) {
    if (i > 1 && overBudget(s)) {
      part.set('stoppedEarly', `time budget of ${s.budgetS} s used after ${i} steps`);
      break;
    }
    const live = rows.filter((r) => !r.error);
    for (const r of i % 2 === 0 ? live : [...live].reverse()) {
      try {
        const t0 = performance.now();
        const out = await r.trainer.trainStep([batches[i]!], lr);
        r.steps.push({ loss: out.loss, gradNorm: out.gradNorm, ms: round(performance.now() - t0, 1) });
      } catch (err) {
        r.error = `step ${i + 1}: ${message(err)}`;
      }
    }
    const tokensPerStep = z.batch * z.seq;
    const figures: Json = {};
    for (const r of rows) {
      const later = r.steps.slice(1);
      figures[r.name] = {
        provider: r.provider,
        ok: !r.error && r.steps.length > 0,
        ...(r.error ? { error: r.error } : {}),
        steps: r.steps,
        firstStepTokensPerS: r.steps[0] ? round(tokensPerStep / (r.steps[0].ms / 1000), 1) : undefined,
        tokensPerS: later.length
          ? round((tokensPerStep * later.length) / (later.reduce((a, x) => a + x.ms, 0) / 1000), 1)
          : "needs a second step (the first includes the first run's set-up)",
      };
    }
    part.set('rows', figures);
    const [c, p] = [rows.find((r) => r.name === 'candidate'), rows.find((r) => r.name === 'cpu')];
    if (c?.steps[0] && p?.steps[0]) {
      const diff = (k: 'loss' | 'gradNorm', j: number) => Math.abs(c.steps[j]![k] - p.steps[j]![k]);
      const n = Math.min(c.steps.length, p.steps.length);
      const first = diff('loss', 0) / Math.max(1, Math.abs(p.steps[0].loss));
      part.set('lossCheck', {
        firstStepLoss: { candidate: c.steps[0].loss, cpu: p.steps[0].loss, absDiff: diff('loss', 0), relativeDiff: first },
        firstStepGradNorm: { candidate: c.steps[0].gradNorm, cpu: p.steps[0].gradNorm, absDiff: diff('gradNorm', 0) },
        maxAbsLossDiffOverSteps: Math.max(...Array.from({ length: n }, (_, j) => diff('loss', j))),
        tolerance: LOSS_TOLERANCE,
        pass: first <= LOSS_TOLERANCE,
      });
    }
  }
  part.set('settings', {
    mode: DEFAULT_LORA,
    lr,
    batch: z.batch,
    seq: z.seq,
    steps: z.steps,
    threads: s.threads,
    weights: "the training bench's reference weights (embedding std 0.02)",
    note: "TrainerSession, the fine-tune's own trainer: the train-step graph with AdamW inside; tokens/s over the steps after the first",
  });
  for (const r of rows) await r.trainer.release();
}

// ---------- merge: the one JSON ----------

function readPart(work: string, step: string): Json | undefined {
  const file = join(work, 'parts', `${step}.json`);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Json;
  } catch (err) {
    return { error: `unreadable part: ${message(err)}` };
  }
}

/** The last lines of a step's stderr as the wrapper logged it (Dawn and ORT write their warnings there). */
function stderrTail(work: string, step: string, lines = 25): string[] | undefined {
  const file = join(work, 'logs', `${step}.log`);
  if (!existsSync(file)) return undefined;
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-lines)
    .map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l));
}

function merge(s: Settings): void {
  const parts = Object.fromEntries(STEPS.map((step) => [step, readPart(s.work, step)])) as Record<Step, Json | undefined>;
  const steps: Json = {};
  for (const step of STEPS) {
    const exit = s.exits[step];
    const p = parts[step];
    steps[step] = {
      rc: exit?.rc,
      seconds: exit?.seconds,
      timedOut: exit ? exit.rc === 124 || exit.rc === 137 : undefined,
      complete: p?.complete === true,
      ...(p?.stoppedEarly ? { stoppedEarly: p.stoppedEarly } : {}),
      ...(exit?.rc === 125 ? { skipped: 'the time budget was spent before it could start' } : {}),
      ...(p?.error
        ? { error: p.error }
        : p === undefined && exit?.rc !== 125
          ? { error: 'no result: the step wrote nothing (it did not start, or died before its first row)' }
          : {}),
      stderrTail: stderrTail(s.work, step),
    };
  }
  const get = (step: Step, ...path: string[]): any => path.reduce<any>((x, k) => (x === undefined || x === null ? undefined : x[k]), parts[step]);
  const anySettings = STEPS.map((step) => get(step, 'run')).find((x) => x?.candidate !== undefined);
  const candidate = (anySettings?.candidate ?? s.candidate) as string;
  const onCandidate = (row: any) => row?.ok === true && row?.provider === candidate;
  const why = (row: any, fallback: string) => (row?.ok === true ? (row?.provider !== candidate ? `ran on ${row?.provider}` : fallback) : String(row?.error ?? fallback));
  const checks = [
    {
      check: `${candidate} adapter`,
      pass: get('env', 'adapter', 'ok') === true,
      detail: get('env', 'adapter', 'ok') ? `one-op session created in ${get('env', 'adapter', 'createMs')} ms` : why(get('env', 'adapter'), 'no result'),
    },
    ...['tiny', 'reference25m'].map((name) => {
      const r = get('parity', 'parity', name);
      return {
        check: `logits parity ${name} (≤ ${PARITY_TOLERANCE})`,
        pass: onCandidate(r) && r.pass === true,
        detail: onCandidate(r)
          ? `max |Δ| ${r.maxAbsError.toExponential(2)}, relative ${r.relativeError.toExponential(2)}, argmax ${r.argmaxAgree}/${r.positions}`
          : why(r, 'no result'),
      };
    }),
    (() => {
      const r = get('model', 'rows', 'candidate');
      const c = r?.prefillTokensPerS?.median;
      return {
        check: 'prefill and decode on the candidate',
        pass: onCandidate(r) && c !== undefined,
        detail:
          onCandidate(r) && c !== undefined
            ? `prefill ${c} tok/s; decode ${Object.entries(r.decodeMsPerToken ?? {})
                .map(([n, x]) => `@${n} ${(x as Summary).median} ms`)
                .join(', ')}`
            : why(r ?? get('model', 'loads', 'candidate'), 'no result'),
      };
    })(),
    (() => {
      const r = get('keystroke', 'rows', 'candidate');
      return {
        check: 'keystroke trace on the candidate',
        pass: onCandidate(r),
        detail: onCandidate(r)
          ? `p50 ${r.latencyMs.p50} ms, p95 ${r.latencyMs.p95} ms over ${r.keystrokes} keystrokes`
          : why(r ?? get('keystroke', 'loads', 'candidate'), 'no result'),
      };
    })(),
    (() => {
      const r = get('train', 'rows', 'candidate');
      const lc = get('train', 'lossCheck');
      return {
        check: `LoRA step loss vs CPU (≤ ${LOSS_TOLERANCE})`,
        pass: onCandidate(r) && lc?.pass === true,
        detail:
          onCandidate(r) && lc
            ? `loss ${lc.firstStepLoss.candidate} vs ${lc.firstStepLoss.cpu} (relative ${Number(lc.firstStepLoss.relativeDiff).toExponential(2)}); ${r.tokensPerS} tok/s`
            : why(r ?? get('train', 'loads', 'candidate'), 'no result'),
      };
    })(),
    (() => {
      const m = get('model', 'memory');
      return {
        check: 'status bar shows VRAM',
        pass: m?.ok === true && m?.vramBytes !== undefined,
        detail: m?.ok ? `${m.statusBarShows}: ${m.finding}` : String(m?.error ?? 'not measured (the candidate model row did not load)'),
      };
    })(),
  ];
  const cpuStandIn = candidate === 'cpu';
  const dry = anySettings?.dry === true || s.dry;
  const allPass = checks.every((c) => c.pass);
  const verdict = cpuStandIn
    ? 'stand-in (candidate rows ran on the CPU to test this script; not a GPU result)'
    : dry
      ? 'dry run (CPU machine; candidate rows expected to be unavailable)'
      : allPass
        ? 'pass'
        : 'fail';
  const result = {
    kind: 'kiln-device-check',
    version: 1,
    verdict,
    candidateProvider: candidate,
    generatedAt: new Date().toISOString(),
    checks,
    environment: parts.env ? { ...(parts.env.environment as Json), adapterProbe: parts.env.adapter } : undefined,
    parity: parts.parity ? { ...(parts.parity.parity as Json), nodePlacement: parts.parity.nodePlacement } : undefined,
    model: parts.model
      ? { loads: parts.model.loads, rows: parts.model.rows, ratios: parts.model.ratios, repsDone: parts.model.repsDone, settings: parts.model.settings }
      : undefined,
    vram: parts.model ? { candidate: parts.model.memory ?? 'not measured: the candidate row did not load', cpuRow: parts.model.memoryCpuRow } : undefined,
    keystroke: parts.keystroke ? { loads: parts.keystroke.loads, rows: parts.keystroke.rows, agreement: parts.keystroke.agreement, settings: parts.keystroke.settings } : undefined,
    training: parts.train ? { loads: parts.train.loads, rows: parts.train.rows, lossCheck: parts.train.lossCheck, settings: parts.train.settings } : undefined,
    steps,
    notes: [
      `Rows named "candidate" must run on ${candidate}; a row on any other provider is a failure, never a result.`,
      `Logits parity: max |Δ| / max(1, max |CPU logit|) over every prompt position and the decode steps, pass at ≤ ${PARITY_TOLERANCE}.`,
      'Timings are medians over interleaved reps (prefill, decode) or over the keystrokes of alternating blocks; CPU rows use the threads in environment.threadsForCpuRows.',
      'Decode on a GPU provider still feeds the past KV from JS buffers every step (device-resident state is issue 13, item 3): these figures are the current code path.',
    ],
  };
  const out = s.out ?? join(s.work, 'device-check.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  process.stderr.write(`\nverdict: ${verdict}\n`);
  for (const c of checks) process.stderr.write(`  ${c.pass ? 'PASS' : 'FAIL'}  ${c.check}: ${c.detail.split('\n')[0]}\n`);
}

// ---------- main ----------

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  if (s.step === 'merge') return merge(s);
  mkdirSync(s.work, { recursive: true });
  const part = new Part(s.work, s.step, s);
  const steps: Record<Step, (s: Settings, part: Part) => Promise<void>> = { env: envStep, parity: parityStep, model: modelStep, keystroke: keystrokeStep, train: trainStep };
  try {
    await steps[s.step](s, part);
    part.finish(true);
  } catch (err) {
    part.set('error', err instanceof Error && err.stack ? err.stack : message(err));
    part.finish(false);
    throw err;
  }
}

main().then(
  // exit at once: a GPU provider's threads can keep the process alive after the sessions are released
  () => process.exit(0),
  (err: unknown) => {
    log(`step failed: ${message(err)}`);
    process.exit(1);
  },
);

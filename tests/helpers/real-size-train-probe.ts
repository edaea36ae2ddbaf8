// Run as a child process (its peak RSS is its own): builds the LoRA training step of a real-size
// shape with a few layers from lazily generated random weights (never all held in JS), runs a few
// steps and prints one JSON line: peak RSS, the analytic state bytes, the step time, the losses.
// The PyTorch row of the bench reads the same weights (real-size-checkpoint.ts), the same batch
// (probeBatch) and the LoRA initial values this probe writes (loraInitOut).
// With --serve it stays up and answers one JSON line per `{"steps": n}` line on stdin (the bench).
//
//   node --import tsx tests/helpers/real-size-train-probe.ts '{"layers":2,"seq":256,"steps":2}' [--serve]
import * as ort from 'onnxruntime-node';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { expectedTensors } from '../../server/src/model/checkpoint';
import type { ModelConfig } from '../../server/src/model/config';
import { DEFAULT_ADAMW } from '../../server/src/model/graph/adamw';
import { buildTrainStepGraph, TRAINING_OPSETS, TrainIO, type TrainingMode } from '../../server/src/model/graph/training-graph';
import { writeModel } from '../../server/src/model/graph/write-model';
import { writeSafetensors } from '../../server/src/model/safetensors';
import type { QuantBits } from '../../server/src/model/quantize';
import { sessionOptions } from '../../server/src/runtime/execution-provider';
import { trainingStateBytes } from '../../server/src/training/state-bytes';
import { tempDir } from './tiny-session';

/** Qwen2.5-Coder-0.5B's published shape (hidden 896, 14 heads, 2 KV heads, MLP 4864, vocab 151,936, tied, QKV biases). */
export const QWEN25_05B: ModelConfig = {
  modelType: 'qwen2',
  hiddenSize: 896,
  numLayers: 24,
  numHeads: 14,
  numKvHeads: 2,
  headDim: 64,
  intermediateSize: 4864,
  vocabSize: 151_936,
  maxPositions: 32_768,
  rmsNormEps: 1e-6,
  ropeTheta: 1_000_000,
  ropeLinearFactor: 1,
  tieWordEmbeddings: true,
  attentionBias: true,
};

export interface ProbeOptions {
  /** The first this-many layers of `shape` are built. */
  layers: number;
  /** The model shape (default Qwen2.5-Coder-0.5B's; tests use small ones). */
  shape?: ModelConfig;
  seq: number;
  batch?: number;
  steps?: number;
  rank?: number;
  threads?: number;
  /** Loss positions: every one, or only the last quarter of each row (as a FIM middle would be). */
  lossPositions?: 'all' | 'quarter';
  /** The training graph's lossChunks (0: logits for every position, the reference). */
  lossChunks?: number;
  /** ORT session config entries (e.g. session.disable_prepacking). */
  sessionConfig?: Record<string, string>;
  /** ORT's memory pattern (its default: on; the trainer switches it off). */
  enableMemPattern?: boolean;
  /** LoRA on the top this-many layers only (default: all). */
  loraLayers?: number;
  /** QLoRA: the frozen base projections as int8 or int4 blocks. */
  baseBits?: QuantBits;
  /** Each layer's activations recomputed in the backward instead of kept. */
  recomputeLayers?: boolean;
  /** Where to write the LoRA A/B initial values (safetensors, PEFT-style names), for a peer to start from. */
  loraInitOut?: string;
}

export interface ProbeResult {
  peakRssBytes: number;
  stateBytes: ReturnType<typeof trainingStateBytes>;
  weightFileBytes: number;
  stepSeconds: number[];
  losses: number[];
  /** Pre-clip global gradient norm of each step. */
  gradNorms: number[];
}

/** The seed of the probe's random weights (lazyWeights). */
export const PROBE_WEIGHT_SEED = 1;
/** The learning rate of every probe step (the CLI's LoRA default). */
export const PROBE_LR = 1e-3;

/** The LoRA the probe trains: rank r (default 8), alpha 2r, q/k/v/o. */
export function probeLoraMode(o: ProbeOptions): Extract<TrainingMode, { kind: 'lora' }> {
  const rank = o.rank ?? 8;
  return { kind: 'lora', rank, alpha: 2 * rank, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], layers: o.loraLayers, baseBits: o.baseBits };
}

/** Uniform values in ±bound from a 32-bit xorshift: fast enough for ~10⁸ weights, reproducible; norms are 1. */
export function lazyWeights(config: ModelConfig, seed: number): { readFloat32(name: string): Float32Array } {
  const shapes = new Map(expectedTensors(config).map((t) => [t.name, t.shape]));
  return {
    readFloat32(name) {
      const shape = shapes.get(name);
      if (!shape) throw new Error(`no tensor ${name}`);
      const n = shape.reduce((a, b) => a * b, 1);
      const out = new Float32Array(n);
      if (name.endsWith('norm.weight')) return out.fill(1);
      const bound = 1 / Math.sqrt(shape[shape.length - 1]!);
      let s = (seed * 2654435761 + name.length * 40503 + n) >>> 0 || 1;
      for (let i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >>> 17;
        s ^= s << 5;
        out[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * bound;
      }
      return out;
    },
  };
}

/** The probe's batch, the same every step: ids [B·S] in a fixed stride, labels the next id, -100 where no loss. */
export function probeBatch(vocab: number, B: number, S: number, lossPositions: ProbeOptions['lossPositions'] = 'all'): { ids: BigInt64Array; labels: BigInt64Array } {
  const ids = BigInt64Array.from({ length: B * S }, (_, i) => BigInt((i * 7919 + 13) % vocab));
  const labels = BigInt64Array.from({ length: B * S }, (_, i) => {
    const t = i % S;
    if (t === S - 1 || (lossPositions === 'quarter' && t < (3 * S) / 4)) return -100n;
    return ids[i + 1]!;
  });
  return { ids, labels };
}

/** A prepared training step: run steps, read the peak, release. */
export interface Stepper {
  step(): Promise<{ seconds: number; loss: number }>;
  result(): ProbeResult;
  release(): Promise<void>;
}

export async function probe(o: ProbeOptions): Promise<ProbeResult> {
  const stepper = await prepare(o);
  try {
    for (let i = 0; i < (o.steps ?? 2); i++) await stepper.step();
    return stepper.result();
  } finally {
    await stepper.release();
  }
}

export async function prepare(o: ProbeOptions): Promise<Stepper> {
  const config = { ...(o.shape ?? QWEN25_05B), numLayers: o.layers };
  const B = o.batch ?? 1;
  const S = o.seq;
  const mode = probeLoraMode(o);
  const dir = tempDir('kiln-real-size-');
  try {
    const { graph, params } = buildTrainStepGraph(config, lazyWeights(config, PROBE_WEIGHT_SEED), {
      mode,
      hyper: DEFAULT_ADAMW,
      lossChunks: o.lossChunks,
      recomputeLayers: o.recomputeLayers === true,
    });
    const written = writeModel(graph, join(dir, 'step'), TRAINING_OPSETS);
    // the trainer's session options; sessionConfig adds (or, empty, leaves out) its config entries
    const memPattern = o.enableMemPattern === undefined ? {} : { enableMemPattern: o.enableMemPattern };
    const session = await ort.InferenceSession.create(written.modelPath, { ...sessionOptions('cpu', o.threads ?? 2), ...memPattern, extra: o.sessionConfig ?? {} });
    const values = new Map<string, Float32Array>(params.map((p) => [p.name, Float32Array.from(p.init())]));
    const m = new Map<string, Float32Array>(params.map((p) => [p.name, new Float32Array(values.get(p.name)!.length)]));
    const v = new Map<string, Float32Array>(params.map((p) => [p.name, new Float32Array(values.get(p.name)!.length)]));
    if (o.loraInitOut)
      writeSafetensors(
        o.loraInitOut,
        params.map((p) => ({ name: p.name, shape: p.shape, dtype: 'F32' as const, data: values.get(p.name)! })),
      );
    const { ids, labels } = probeBatch(config.vocabSize, B, S, o.lossPositions);
    const stepSeconds: number[] = [];
    const losses: number[] = [];
    const gradNorms: number[] = [];
    const step = async () => {
      const feeds: Record<string, ort.Tensor> = {
        [TrainIO.inputIds]: new ort.Tensor('int64', ids, [B, S]),
        [TrainIO.labels]: new ort.Tensor('int64', labels, [B, S]),
        [TrainIO.lr]: new ort.Tensor('float32', Float32Array.of(PROBE_LR), []),
        [TrainIO.step]: new ort.Tensor('float32', Float32Array.of(stepSeconds.length + 1), []),
      };
      for (const p of params) {
        feeds[p.name] = new ort.Tensor('float32', values.get(p.name)!, p.shape);
        feeds[TrainIO.m(p.name)] = new ort.Tensor('float32', m.get(p.name)!, p.shape);
        feeds[TrainIO.v(p.name)] = new ort.Tensor('float32', v.get(p.name)!, p.shape);
      }
      const t0 = performance.now();
      const out = await session.run(feeds);
      const seconds = (performance.now() - t0) / 1000;
      const loss = (out[TrainIO.loss]!.data as Float32Array)[0]!;
      stepSeconds.push(seconds);
      losses.push(loss);
      gradNorms.push((out[TrainIO.gradNorm]!.data as Float32Array)[0]!);
      for (const p of params) {
        values.set(p.name, out[TrainIO.updated(p.name)]!.data as Float32Array);
        m.set(p.name, out[TrainIO.updatedM(p.name)]!.data as Float32Array);
        v.set(p.name, out[TrainIO.updatedV(p.name)]!.data as Float32Array);
      }
      return { seconds, loss };
    };
    return {
      step,
      result: () => ({
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
        stateBytes: trainingStateBytes(config, { mode, batch: B, seq: S, lossChunks: o.lossChunks, recomputeLayers: o.recomputeLayers === true }),
        weightFileBytes: written.weightBytes,
        stepSeconds,
        losses,
        gradNorms,
      }),
      release: async () => {
        await session.release();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function serve(o: ProbeOptions): Promise<void> {
  const stepper = await prepare(o);
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  for await (const line of createInterface({ input: process.stdin })) {
    const { steps } = JSON.parse(line) as { steps: number };
    const seconds: number[] = [];
    for (let i = 0; i < steps; i++) seconds.push((await stepper.step()).seconds);
    process.stdout.write(`${JSON.stringify({ seconds, ...stepper.result() })}\n`);
  }
  await stepper.release();
}

if (require.main === module) {
  const options = JSON.parse(process.argv[2] ?? '{}') as ProbeOptions;
  (process.argv.includes('--serve') ? serve(options) : probe(options).then((r) => void process.stdout.write(`${JSON.stringify(r)}\n`))).then(
    () => {},
    (err) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exit(1);
    },
  );
}

// One training run's ORT sessions and state: trainable parameters, AdamW moments, the step count.
// Parameters live in JS buffers fed to ORT without a copy; each step fetches back their updates.
// With gradient accumulation, a gradient graph runs per micro-batch and an optimizer graph once.
import * as ort from 'onnxruntime-node';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openCheckpoint } from '../model/checkpoint';
import type { ModelConfig } from '../model/config';
import type { AdamWHyper } from '../model/graph/adamw';
import type { GraphBuilder } from '../model/graph/onnx-graph';
import {
  buildGradientGraph,
  buildLossGraph,
  buildOptimizerGraph,
  buildTrainStepGraph,
  type TrainableParam,
  TRAINING_OPSETS,
  TrainIO,
  type TrainingMode,
} from '../model/graph/training-graph';
import { writeModel } from '../model/graph/write-model';
import { writeModelBeside } from '../model/graph/write-beside';
import { createWithFallback, type ExecutionProvider, type ExecutionProviderChoice } from '../runtime/execution-provider';

export interface Batch {
  /** [B][S] token ids and next-token labels (IGNORE_INDEX where no loss). */
  inputIds: Int32Array[];
  labels: Int32Array[];
}

export interface TrainerOptions {
  modelDir: string;
  mode: TrainingMode;
  hyper: AdamWHyper;
  /** Micro-batches per optimizer step. */
  accumulation: number;
  threads: number;
  cacheDir: string;
  seed: number;
  executionProvider?: ExecutionProviderChoice;
  /** Each layer's activations recomputed in the backward instead of kept (training-graph.ts). */
  recomputeLayers?: boolean;
  log?: (message: string) => void;
}

export interface TrainerState {
  step: number;
  values: Map<string, Float32Array>;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

function tensorOf(rows: Int32Array[]): ort.Tensor {
  const S = rows[0]!.length;
  const flat = new BigInt64Array(rows.length * S);
  for (const [b, r] of rows.entries()) {
    for (let i = 0; i < r.length; i++) flat[b * S + i] = BigInt(r[i]!);
  }
  return new ort.Tensor('int64', flat, [rows.length, S]);
}

/**
 * ORT pre-packs every constant MatMul/Gemm operand into a second copy per node using it: for a frozen
 * base that doubles its memory (the 0.5B shape's tied head is 544 MB, used by several nodes). At the
 * hundreds of rows a training step multiplies, packing on the fly costs little next to the product.
 */
export const TRAINING_SESSION_CONFIG = { 'session.disable_prepacking': '1' };

/**
 * ORT's memory pattern, planned after a session's first run, is one block for all of a run's
 * intermediates, allocated beside the arena chunks the first run left free: it doubled the activations'
 * memory of a 0.5B LoRA step (the second step grew the process by 1.1 GB) and saved no measurable time.
 */
export const TRAINING_SESSION_OPTIONS = { enableMemPattern: false } as const;

function trainingSessionOptions(opts: ort.InferenceSession.SessionOptions): ort.InferenceSession.SessionOptions {
  return { ...opts, ...TRAINING_SESSION_OPTIONS, extra: { ...(opts.extra ?? {}), ...TRAINING_SESSION_CONFIG } };
}

const scalar = (x: number) => new ort.Tensor('float32', Float32Array.of(x), []);

/** What create() assembles a trainer from. */
interface TrainerParts {
  config: ModelConfig;
  params: TrainableParam[];
  provider: ExecutionProvider;
  /** The train step, or the gradients when accumulating. */
  main: ort.InferenceSession;
  optimizer: ort.InferenceSession | undefined;
  state: TrainerState;
  graphDir: string;
  openLossSession: () => Promise<ort.InferenceSession>;
}

export class TrainerSession {
  readonly config: ModelConfig;
  readonly params: TrainableParam[];
  readonly provider: ExecutionProvider;
  private readonly main: ort.InferenceSession;
  private readonly optimizer: ort.InferenceSession | undefined;
  private state: TrainerState;
  private readonly graphDir: string;
  private readonly openLossSession: () => Promise<ort.InferenceSession>;

  private constructor(parts: TrainerParts) {
    this.config = parts.config;
    this.params = parts.params;
    this.provider = parts.provider;
    this.main = parts.main;
    this.optimizer = parts.optimizer;
    this.state = parts.state;
    this.graphDir = parts.graphDir;
    this.openLossSession = parts.openLossSession;
  }

  /** The forward-only loss graph's session, opened on the first validation. */
  private lossSession: Promise<ort.InferenceSession> | undefined;

  static async create(o: TrainerOptions): Promise<TrainerSession> {
    const checkpoint = openCheckpoint(o.modelDir);
    let built: { graph: GraphBuilder; params: TrainableParam[] };
    let optimizerGraph: GraphBuilder | undefined;
    let dir: string;
    try {
      // Built per run (cheap next to training) and removed on release; never shared between runs.
      dir = join(o.cacheDir, 'training', `run-${process.pid}-${Date.now()}`);
      built =
        o.accumulation > 1
          ? buildGradientGraph(checkpoint.config, checkpoint.weights, o.mode, { seed: o.seed, recomputeLayers: o.recomputeLayers === true })
          : buildTrainStepGraph(checkpoint.config, checkpoint.weights, { mode: o.mode, hyper: o.hyper, seed: o.seed, recomputeLayers: o.recomputeLayers === true });
      if (o.accumulation > 1) optimizerGraph = buildOptimizerGraph(built.params, o.hyper);
      // Initial values are read now, while the checkpoint is open; LoRA's are generated.
      const values = new Map(built.params.map((p) => [p.name, Float32Array.from(p.init())]));
      const recomputed = o.recomputeLayers === true ? '; each layer recomputed in the backward' : '';
      o.log?.(`training graph: ${built.params.length} trainable tensors, ${[...values.values()].reduce((a, x) => a + x.length, 0)} parameters${recomputed}`);
      const mainPath = writeModel(built.graph, join(dir, 'step'), TRAINING_OPSETS).modelPath;
      const optimizerPath = optimizerGraph ? writeModel(optimizerGraph, join(dir, 'optimizer'), TRAINING_OPSETS).modelPath : undefined;
      const create = (path: string) =>
        createWithFallback({ executionProvider: o.executionProvider ?? 'cpu', threads: o.threads, log: o.log }, (_p, opts) =>
          ort.InferenceSession.create(path, trainingSessionOptions(opts)),
        );
      const main = await create(mainPath);
      const optimizer = optimizerPath ? (await create(optimizerPath)).session : undefined;
      const zeros = () => new Map(built.params.map((p) => [p.name, new Float32Array(values.get(p.name)!.length)]));
      // Validation runs the forward pass alone (ORT does not prune a loss-only fetch of the train step's
      // backward); that graph is built on first use, so runs that never validate never write it, and
      // beside the step's, so both sessions map one copy of the frozen weights.
      const openLoss = async () => {
        const source = openCheckpoint(o.modelDir);
        let lossPath: string;
        try {
          lossPath = writeModelBeside(buildLossGraph(source.config, source.weights, o.mode, o.seed).graph, dirname(mainPath), 'loss', TRAINING_OPSETS).modelPath;
        } finally {
          source.weights.close();
        }
        return (
          await createWithFallback({ executionProvider: main.provider, threads: o.threads, log: o.log }, (_p, opts) =>
            ort.InferenceSession.create(lossPath, trainingSessionOptions(opts)),
          )
        ).session;
      };
      return new TrainerSession({
        config: checkpoint.config,
        params: built.params,
        provider: main.provider,
        main: main.session,
        optimizer,
        state: { step: 0, values, m: zeros(), v: zeros() },
        graphDir: dir,
        openLossSession: openLoss,
      });
    } finally {
      checkpoint.weights.close();
    }
  }

  get step(): number {
    return this.state.step;
  }

  /** Current parameter values by name (live buffers: copy before keeping). */
  get values(): ReadonlyMap<string, Float32Array> {
    return this.state.values;
  }

  /** A deep copy of the whole state (for checkpoints and "best so far"). */
  snapshot(): TrainerState {
    const copy = (m: Map<string, Float32Array>) => new Map([...m].map(([k, x]) => [k, Float32Array.from(x)]));
    return { step: this.state.step, values: copy(this.state.values), m: copy(this.state.m), v: copy(this.state.v) };
  }

  restore(state: TrainerState): void {
    for (const p of this.params) {
      for (const [name, map] of [
        ['values', state.values],
        ['m', state.m],
        ['v', state.v],
      ] as const) {
        const x = map.get(p.name);
        if (!x || x.length !== this.state.values.get(p.name)!.length) throw new Error(`training state has no matching ${name} for ${p.name}`);
      }
    }
    this.state = state;
  }

  private paramFeeds(feeds: Record<string, ort.Tensor>, withMoments: boolean): void {
    for (const p of this.params) {
      feeds[p.name] = new ort.Tensor('float32', this.state.values.get(p.name)!, p.shape);
      if (withMoments) {
        feeds[TrainIO.m(p.name)] = new ort.Tensor('float32', this.state.m.get(p.name)!, p.shape);
        feeds[TrainIO.v(p.name)] = new ort.Tensor('float32', this.state.v.get(p.name)!, p.shape);
      }
    }
  }

  private adopt(out: ort.InferenceSession.OnnxValueMapType): void {
    for (const p of this.params) {
      this.state.values.set(p.name, out[TrainIO.updated(p.name)]!.data as Float32Array);
      this.state.m.set(p.name, out[TrainIO.updatedM(p.name)]!.data as Float32Array);
      this.state.v.set(p.name, out[TrainIO.updatedV(p.name)]!.data as Float32Array);
    }
  }

  /** One optimizer step over `microBatches` (accumulation) at learning rate `lr`. */
  async trainStep(microBatches: Batch[], lr: number): Promise<{ loss: number; gradNorm: number }> {
    const step = this.state.step + 1;
    if (!this.optimizer) {
      if (microBatches.length !== 1) throw new Error('this trainer was built without gradient accumulation');
      const feeds: Record<string, ort.Tensor> = { [TrainIO.lr]: scalar(lr), [TrainIO.step]: scalar(step) };
      feeds[TrainIO.inputIds] = tensorOf(microBatches[0]!.inputIds);
      feeds[TrainIO.labels] = tensorOf(microBatches[0]!.labels);
      this.paramFeeds(feeds, true);
      const out = await this.main.run(feeds);
      this.adopt(out);
      this.state.step = step;
      return { loss: (out[TrainIO.loss]!.data as Float32Array)[0]!, gradNorm: (out[TrainIO.gradNorm]!.data as Float32Array)[0]! };
    }
    const sums = new Map(this.params.map((p) => [p.name, new Float32Array(this.state.values.get(p.name)!.length)]));
    let loss = 0;
    for (const batch of microBatches) {
      const feeds: Record<string, ort.Tensor> = { [TrainIO.inputIds]: tensorOf(batch.inputIds), [TrainIO.labels]: tensorOf(batch.labels) };
      this.paramFeeds(feeds, false);
      const out = await this.main.run(feeds);
      loss += (out[TrainIO.loss]!.data as Float32Array)[0]! / microBatches.length;
      for (const p of this.params) {
        const grad = out[TrainIO.grad(p.name)]!.data as Float32Array;
        const sum = sums.get(p.name)!;
        for (let i = 0; i < sum.length; i++) sum[i] += grad[i]! / microBatches.length;
      }
    }
    const feeds: Record<string, ort.Tensor> = { [TrainIO.lr]: scalar(lr), [TrainIO.step]: scalar(step) };
    this.paramFeeds(feeds, true);
    for (const p of this.params) feeds[TrainIO.grad(p.name)] = new ort.Tensor('float32', sums.get(p.name)!, p.shape);
    const out = await this.optimizer.run(feeds);
    this.adopt(out);
    this.state.step = step;
    return { loss, gradNorm: (out[TrainIO.gradNorm]!.data as Float32Array)[0]! };
  }

  /** Mean loss over batches, weighting each by its target count, from the forward-only loss graph. */
  async loss(batches: Batch[]): Promise<number> {
    return (await this.lossWhile(batches, () => true)).loss;
  }

  /**
   * The mean loss over the target tokens of the first batches, one batch after another while
   * `more(done)` holds (checked after each; at least one batch runs). `used`: how many batches it read.
   */
  async lossWhile(batches: Batch[], more: (done: number) => boolean): Promise<{ loss: number; used: number }> {
    let total = 0;
    let targets = 0;
    let used = 0;
    for (const batch of batches) {
      used++;
      const count = batch.labels.reduce((a, row) => a + row.reduce((n, y) => n + (y >= 0 ? 1 : 0), 0), 0);
      if (count > 0) {
        const feeds: Record<string, ort.Tensor> = { [TrainIO.inputIds]: tensorOf(batch.inputIds), [TrainIO.labels]: tensorOf(batch.labels) };
        this.paramFeeds(feeds, false);
        const out = await (await this.openLoss()).run(feeds, [TrainIO.loss]);
        total += (out[TrainIO.loss]!.data as Float32Array)[0]! * count;
        targets += count;
      }
      if (!more(used)) break;
    }
    return { loss: targets ? total / targets : NaN, used };
  }

  /** The loss graph's session, opened on first use (a caller timing validations opens it first). */
  openLoss(): Promise<ort.InferenceSession> {
    this.lossSession ??= this.openLossSession();
    return this.lossSession;
  }

  async release(): Promise<void> {
    await this.main.release();
    await this.optimizer?.release();
    await (await this.lossSession?.catch(() => undefined))?.release();
    rmSync(this.graphDir, { recursive: true, force: true });
  }
}

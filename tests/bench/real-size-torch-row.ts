// The PyTorch row of the real-size training bench: tests/bench/torch_train_step.py as a long-lived
// child, on the probe's weights written as a checkpoint, the probe's batch and the LoRA A/B values a
// Kiln row wrote, so its losses can be compared with Kiln's step by step. Its LM head runs over the
// loss positions only (--head-rows loss): full [M, V] logits, then F.cross_entropy, as PyTorch code
// does; Kiln's head computes the same loss in chunks of those rows.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ModelConfig } from '../../server/src/model/config';
import { writeProbeCheckpoint } from '../helpers/real-size-checkpoint';
import { type ProbeOptions, probeBatch } from '../helpers/real-size-train-probe';
import { MB } from './bench-stats';
import { openblasCoreEnv } from './openblas-core';

const PROTOCOL_PREFIX = '@@bench ';

/** What every row's child answers to a run of steps: step times, the losses and gradient norms of every step so far, its peak RSS. */
export interface StepsReply {
  seconds: number[];
  losses: number[];
  gradNorms: number[];
  peakRssBytes: number;
}

export interface TorchRowSpec {
  python: string;
  config: ModelConfig;
  batch: number;
  seq: number;
  threads: number;
  /** The LoRA hyper-parameters and learning rate of the Kiln rows. */
  rank: number;
  alpha: number;
  targets: readonly string[];
  lr: number;
  /** The LoRA A/B initial values a Kiln row wrote (probe option loraInitOut). */
  loraInit: string;
  /** The LM head over the loss positions only (the bench's row) or every position. */
  headRows?: 'loss' | 'all';
}

/** Writes the probe's weights (dir/model) and batch (dir/batches.i32, int32 [1, 2, B, S]) for the PyTorch peer. */
export function writeTorchInputs(
  dir: string,
  config: ModelConfig,
  shape: { batch: number; seq: number; lossPositions?: ProbeOptions['lossPositions'] },
): { modelDir: string; batchesFile: string } {
  const { batch, seq } = shape;
  const modelDir = join(dir, 'model');
  writeProbeCheckpoint(modelDir, config);
  const { ids, labels } = probeBatch(config.vocabSize, batch, seq, shape.lossPositions);
  const raw = new Int32Array(2 * batch * seq);
  raw.set(Array.from(ids, Number), 0);
  raw.set(Array.from(labels, Number), batch * seq);
  const batchesFile = join(dir, 'batches.i32');
  writeFileSync(batchesFile, new Uint8Array(raw.buffer));
  return { modelDir, batchesFile };
}

type Reply = Record<string, unknown>;

export class TorchRow {
  private readonly pending: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private stderrTail: string[] = [];
  private readonly losses: number[] = [];
  private readonly gradNorms: number[] = [];
  readonly ready: Promise<Reply>;

  private constructor(private readonly proc: ChildProcess) {
    this.ready = new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (!line.startsWith(PROTOCOL_PREFIX)) return;
      const reply = JSON.parse(line.slice(PROTOCOL_PREFIX.length)) as Reply;
      const waiter = this.pending.shift();
      if (typeof reply.error === 'string') waiter?.reject(new Error(`torch: ${reply.error}`));
      else waiter?.resolve(reply);
    });
    createInterface({ input: proc.stderr! }).on('line', (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > 30) this.stderrTail.shift();
    });
    proc.on('exit', (code, signal) => {
      const err = new Error(`torch exited (${signal ?? code}):\n${this.stderrTail.join('\n')}`);
      for (const w of this.pending.splice(0)) w.reject(err);
    });
  }

  static start(s: TorchRowSpec, inputs: { modelDir: string; batchesFile: string }): TorchRow {
    const n = String(s.threads);
    const args = [
      join(__dirname, 'torch_train_step.py'),
      ...['--mode', 'lora', '--model', inputs.modelDir, '--batches', inputs.batchesFile, '--count', '1'],
      ...['--batch', String(s.batch), '--seq', String(s.seq), '--threads', n, '--lr', String(s.lr)],
      ...['--lora-init', s.loraInit, '--rank', String(s.rank), '--alpha', String(s.alpha), '--targets', s.targets.join(','), '--head-rows', s.headRows ?? 'loss'],
    ];
    // the BLAS pool sized like torch's own (OpenBLAS otherwise starts one thread per core), its kernels the CPU's
    const env = { ...process.env, OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n, ...openblasCoreEnv() };
    return new TorchRow(spawn(s.python, args, { stdio: ['pipe', 'pipe', 'pipe'], env }));
  }

  private request(msg: Reply): Promise<Reply> {
    const p = new Promise<Reply>((resolve, reject) => this.pending.push({ resolve, reject }));
    this.proc.stdin!.write(`${JSON.stringify(msg)}\n`);
    return p;
  }

  async steps(n: number): Promise<StepsReply> {
    const r = (await this.request({ cmd: 'steps', n })) as { ms: number[]; loss: number[]; gradNorm: number[]; maxRssMB: number };
    this.losses.push(...r.loss);
    this.gradNorms.push(...r.gradNorm);
    return { seconds: r.ms.map((ms) => ms / 1000), losses: [...this.losses], gradNorms: [...this.gradNorms], peakRssBytes: r.maxRssMB * MB };
  }

  /** PyTorch's own fp32 MatMul peak (the same chain as the ORT peak), GFLOP/s. */
  async matmulPeak(peak: { n: number; chain: number; runs: number }): Promise<number> {
    return (await this.request({ cmd: 'matmul', ...peak })).gflops as number;
  }

  stop(): void {
    this.proc.stdin!.end();
  }
}

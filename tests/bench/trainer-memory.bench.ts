// The fine-tune's trainer at real size, as `kiln finetune` runs it (TrainerSession: the step graph and,
// from the first validation, the loss graph): the process's memory after each phase, read from
// /proc/self/smaps_rollup. RSS counts a file page once per mapping, so the frozen base that the step
// and loss sessions both map is counted twice there; PSS counts it once, as the machine pays for it.
// Anonymous memory is ORT's arena (activations) and everything else allocated.
//
//   node --import tsx tests/bench/trainer-memory.bench.ts [--size 0.5b] [--threads 1] [--batch 1]
//        [--seq 256] [--base-bits 8|4] [--lora-layers N] [--recompute-layers] [--out FILE]
import { readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import { DEFAULT_LORA } from '../../server/src/finetune/fine-tune-options';
import { DEFAULT_ADAMW } from '../../server/src/model/graph/adamw';
import type { TrainingMode } from '../../server/src/model/graph/training-graph';
import type { QuantBits } from '../../server/src/model/quantize';
import { type Batch, TrainerSession } from '../../server/src/training/trainer-session';
import { tempDir } from '../helpers/tiny-session';
import { BenchArgs } from './bench-args';
import { emitJson, log, round } from './bench-stats';
import { REAL_SIZE_CHOICES, REAL_SIZES, type RealSize, realSizeModel } from './real-size-model';

interface Settings {
  size: RealSize;
  threads: number;
  batch: number;
  seq: number;
  baseBits?: QuantBits;
  loraLayers?: number;
  recomputeLayers: boolean;
  out?: string;
}

function parseArgs(argv: string[]): Settings {
  const s: Settings = { size: '0.5b', threads: 1, batch: 1, seq: 256, recomputeLayers: false };
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--size') s.size = args.oneOf(REAL_SIZE_CHOICES);
    else if (a === '--threads') s.threads = args.positiveInt();
    else if (a === '--batch') s.batch = args.positiveInt();
    else if (a === '--seq') s.seq = args.positiveInt();
    else if (a === '--base-bits') s.baseBits = Number(args.oneOf(['8', '4'])) as QuantBits;
    else if (a === '--lora-layers') s.loraLayers = args.positiveInt();
    else if (a === '--recompute-layers') s.recomputeLayers = true;
    else if (a === '--out') s.out = args.value();
    else throw new Error(`unknown flag ${a}`);
  }
  return s;
}

/** MB of the smaps_rollup fields, and the kernel's peak RSS so far. */
function memory(): { rss: number; pss: number; anonymous: number; pssFile: number; peakRss: number } {
  const rollup = readFileSync('/proc/self/smaps_rollup', 'utf8');
  const mb = (field: string) => round(Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? NaN) / 1024, 0);
  return { rss: mb('Rss'), pss: mb('Pss'), anonymous: mb('Anonymous'), pssFile: mb('Pss_File'), peakRss: round(process.resourceUsage().maxRSS / 1024, 0) };
}

/** `batch` rows of `seq` token ids spread over the vocabulary, each labelled with the next. */
function syntheticBatch(batch: number, seq: number, vocab: number): Batch {
  const row = (r: number, shift: number) => Int32Array.from({ length: seq }, (_, i) => ((i + shift) * 7919 + r * 104_729) % vocab);
  return { inputIds: Array.from({ length: batch }, (_, r) => row(r, 0)), labels: Array.from({ length: batch }, (_, r) => row(r, 1)) };
}

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const modelDir = realSizeModel(s.size, { log });
  const mode: TrainingMode = {
    ...DEFAULT_LORA,
    alpha: 2 * DEFAULT_LORA.rank,
    ...(s.loraLayers === undefined ? {} : { layers: s.loraLayers }),
    ...(s.baseBits === undefined ? {} : { baseBits: s.baseBits }),
  };
  const cacheDir = tempDir('kiln-trainer-memory-');
  const rows: { phase: string; seconds: number; memoryMb: ReturnType<typeof memory> }[] = [];
  const phase = async (name: string, work: () => Promise<unknown>) => {
    const t = performance.now();
    await work();
    rows.push({ phase: name, seconds: round((performance.now() - t) / 1000, 2), memoryMb: memory() });
    const r = rows.at(-1)!;
    log(
      `${name.padEnd(22)} ${String(r.seconds).padStart(7)} s  RSS ${r.memoryMb.rss} MB  PSS ${r.memoryMb.pss} MB  (anonymous ${r.memoryMb.anonymous}, file ${r.memoryMb.pssFile})`,
    );
  };
  rows.push({ phase: 'start', seconds: 0, memoryMb: memory() });
  let trainer: TrainerSession | undefined;
  await phase('create', async () => {
    trainer = await TrainerSession.create({ modelDir, mode, hyper: DEFAULT_ADAMW, accumulation: 1, threads: s.threads, cacheDir, seed: 0, recomputeLayers: s.recomputeLayers });
  });
  const batch = syntheticBatch(s.batch, s.seq, REAL_SIZES[s.size].vocabSize);
  try {
    for (const name of ['step 1', 'step 2']) await phase(name, () => trainer!.trainStep([batch], 1e-4));
    await phase('validation (opens it)', () => trainer!.loss([batch]));
    await phase('validation', () => trainer!.loss([batch]));
    await phase('step 3', () => trainer!.trainStep([batch], 1e-4));
  } finally {
    await trainer?.release();
    rmSync(cacheDir, { recursive: true, force: true });
  }
  const result = { ...s, mode, loadavg: os.loadavg().map((x) => round(x, 2)), cpus: os.cpus()[0]?.model, rows };
  log(`load average ${result.loadavg.join(' ')}`);
  emitJson(result, s.out);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

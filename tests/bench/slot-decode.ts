// Decode with several active slots: one InferenceServer step advances N slots (N = 1, 2, 4) of
// slightly different context lengths in one batched forward. Figures are ms per step (every slot
// gets one token per step), fp32 and int8, the slot counts interleaved in an order rotating per rep.
// The first step after the set of slots changes gathers their caches into the padded batch; the
// step median leaves that out, the mean includes it.
import { performance } from 'node:perf_hooks';
import type { QuantBits } from '../../server/src/model/quantize';
import type { ExecutionProviderChoice } from '../../server/src/runtime/execution-provider';
import type { Slot } from '../../server/src/runtime/generator';
import { InferenceServer } from '../../server/src/runtime/inference-server';
import { loadModel } from '../../server/src/runtime/load-model';
import { log, round, summarize, type Summary } from './bench-stats';

export interface SlotDecodeOptions {
  modelDir: string;
  cacheDir: string;
  ep: ExecutionProviderChoice;
  threads: number;
  /** Context of slot 0; slot i holds context + 7·i tokens so the batch is ragged. */
  context: number;
  steps: number;
  reps: number;
  randomTokens: (seed: number, count: number) => number[];
}

const SLOT_COUNTS = [1, 2, 4];
const ROWS: { name: string; quantization?: QuantBits }[] = [{ name: 'kiln plain fp32' }, { name: 'kiln plain int8', quantization: 8 }];

export interface SlotDecodeRow {
  /** Per slot count: ms per step (mean of each run, over reps) and the median step. */
  msPerStep: Record<string, Summary>;
  stepMedianMs: Record<string, Summary>;
  /** Median step with 4 slots over the median step with 1 (the target on fp32: ≤ 1.6). */
  fourOverOne: number;
}

export async function measureSlotDecode(o: SlotDecodeOptions): Promise<Record<string, SlotDecodeRow>> {
  const out: Record<string, SlotDecodeRow> = {};
  const maxSlots = Math.max(...SLOT_COUNTS);
  for (const row of ROWS) {
    const model = await loadModel(o.modelDir, {
      executionProvider: o.ep,
      threads: o.threads,
      attention: 'plain',
      weightType: 'float32',
      quantization: row.quantization,
      cacheDir: o.cacheDir,
    });
    try {
      const server = new InferenceServer(model.session, { kvBudgetBytes: 2 ** 30 });
      const slots: Slot[] = [];
      for (let i = 0; i < maxSlots; i++) {
        const tokens = o.randomTokens(100 + i, o.context + 7 * i);
        const { slot } = await server.open(tokens);
        await server.extend(slot, tokens);
        slots.push(slot);
      }
      const stepTokens = o.randomTokens(200, o.steps);
      const run = async (n: number): Promise<number[]> => {
        const ms: number[] = [];
        for (const t of stepTokens) {
          const t0 = performance.now();
          await server.step(slots.slice(0, n), Array<number>(n).fill(t));
          ms.push(performance.now() - t0);
        }
        return ms;
      };
      for (const n of SLOT_COUNTS) await run(n); // warm-up
      const means = new Map<number, number[]>(SLOT_COUNTS.map((n) => [n, []]));
      const medians = new Map<number, number[]>(SLOT_COUNTS.map((n) => [n, []]));
      for (let rep = 0; rep < o.reps; rep++) {
        for (let i = 0; i < SLOT_COUNTS.length; i++) {
          const n = SLOT_COUNTS[(i + rep) % SLOT_COUNTS.length]!;
          const ms = await run(n);
          means.get(n)!.push(ms.reduce((a, b) => a + b, 0) / ms.length);
          medians.get(n)!.push(summarize(ms).median);
        }
      }
      const msPerStep = Object.fromEntries(SLOT_COUNTS.map((n) => [String(n), summarize(means.get(n)!)]));
      const stepMedianMs = Object.fromEntries(SLOT_COUNTS.map((n) => [String(n), summarize(medians.get(n)!)]));
      out[row.name] = { msPerStep, stepMedianMs, fourOverOne: round(stepMedianMs['4']!.median / stepMedianMs['1']!.median, 3) };
      log(
        `${row.name}: decode ms/step with ${SLOT_COUNTS.join('/')} slots at context ~${o.context}: ${SLOT_COUNTS.map((n) => stepMedianMs[String(n)]!.median.toFixed(2)).join(' / ')}`,
      );
    } finally {
      await model.session.release();
    }
  }
  return out;
}

// Quantized-matmul microbenchmark: every ONNX Runtime CPU formulation of a decoder's Linear layers and
// LM head, at a real shape (Qwen2.5-Coder-0.5B or 1.5B), timed against the memory-bandwidth bound
// measured in the same run. Finds the fastest formulation for M=1 decode and for prefill, per part
// (the layers and the head: 27% of 0.5B's weights are its tied head).
//
//   node --import tsx tests/bench/quantized-matmul.bench.ts [--size 0.5b|1.5b] [--layers 6] [--reps 7] [--steps 20] [--prefill 256] [--threads 2] [--context 1000] [--out FILE]
//
// Graphs (one per formulation and part; random weights, all sessions loaded at once, runs interleaved):
//   layers  `--layers` copies of one decoder layer's matmuls, chained so each depends on the last:
//           x ─ qkv [d→q+2kv] ─ slice d ─ o [d→d] ─ + ─ gate_up [d→2·mlp] ─ gate·up ─ down [mlp→d] ─ + ─> x
//           (no attention or norms: only the weights move). Per-layer figures are scaled to the model's layer count.
//   head    x [M, d] ─ lm_head [d→vocab] ─ ReduceMax ─> [M]   (decode needs the head at M=1 only)
// Formulations:
//   fp32 MatMul                           W [K,N] float32: its M=1 time defines the matrix-vector bandwidth
//   fp16 MatMul                           Cast x → f16, MatMul W [K,N] float16, Cast → f32 (Kiln's fp16 row)
//   nbits8 acc4 / nbits4 acc0 / nbits4 acc4 / nbits4 acc4 b64 / nbits4 acc4 b128 / nbits8 acc4 b128
//                                         com.microsoft MatMulNBits, block 32 (or 64, 128), accuracy_level 0 = fp32
//                                         compute on dequantized weights, 4 = int8 activations per block
//   dqmm s8                               com.microsoft DynamicQuantizeMatMul: x quantized u8 per tensor at run
//                                         time, W int8 [K,N] symmetric per output column (u8×s8, VNNI where present)
//   matmulinteger s8                      DynamicQuantizeLinear → MatMulInteger(u8, s8) → Cast → Mul(scales)
//                                         (x per tensor: a row's result depends on the other rows of its batch)
//   matmulinteger s8 rowwise              the same with x quantized per row by hand (Abs, ReduceMax, Div, Round, Cast)
//   matmulinteger s8 rowwise qdq          Kiln's: x per row through QuantizeLinear (one block per row) and the
//                                         result through DequantizeLinear (per column), the same sums in fewer nodes
// Figures: per rep, the median of --steps runs; reported, the best rep (least disturbed by other load), with the median over reps in the JSON.
// Bound: (weight bytes incl. scales and zero points [+ KV bytes at --context for the whole-model line]) ÷
// the fp32 matrix-vector bandwidth of this run (bytes of an fp32 graph ÷ its best M=1 time, the fastest of a
// ~100 MB probe matrix, the layers and the head).
import * as ort from 'onnxruntime-node';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ModelConfig } from '../../server/src/model/config';
import { float32ToHalfArray } from '../../server/src/model/half';
import { GraphBuilder } from '../../server/src/model/graph/onnx-graph';
import { writeModel } from '../../server/src/model/graph/write-model';
import { quantizeBlockwise } from '../../server/src/model/quantize';
import { sessionOptions } from '../../server/src/runtime/execution-provider';
import { seededRandom } from '../helpers/random';
import { BenchArgs } from './bench-args';
import { emitJson, log, MB, round, summarize } from './bench-stats';
import { REAL_SIZE_CHOICES, REAL_SIZES, type RealSize } from './real-size-model';

interface Settings {
  size: RealSize;
  layers: number;
  reps: number;
  steps: number;
  prefill: number;
  threads: number;
  context: number;
  only?: string[];
  out?: string;
} // prettier-ignore

function parseArgs(argv: string[]): Settings {
  const s: Settings = { size: '0.5b', layers: 6, reps: 7, steps: 20, prefill: 256, threads: 2, context: 1000 };
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--size') s.size = args.oneOf(REAL_SIZE_CHOICES);
    else if (a === '--layers') s.layers = args.positiveInt();
    else if (a === '--reps') s.reps = args.positiveInt();
    else if (a === '--steps') s.steps = args.positiveInt();
    else if (a === '--prefill') s.prefill = args.positiveInt();
    else if (a === '--threads') s.threads = args.positiveInt();
    else if (a === '--context') s.context = args.positiveInt();
    else if (a === '--only') s.only = args.value().split(',');
    else if (a === '--out') s.out = args.value();
    else throw new Error(`unknown argument ${a}`);
  }
  return s;
}

// ---------- weights ----------

/** A Linear weight in HF layout [n, k]; its values are regenerated from `seed` whenever asked. */
interface Weight {
  name: string;
  n: number;
  k: number;
  seed: number;
}

function values({ n, k, seed }: Weight): Float32Array {
  const rand = seededRandom(seed);
  const half = 0.02 * Math.sqrt(3);
  const out = new Float32Array(n * k);
  for (let i = 0; i < out.length; i++) out[i] = (2 * rand() - 1) * half;
  return out;
}

/** [n, k] → [k, n] (ONNX MatMul's B). */
function transposed(w: Float32Array, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) out[c * n + r] = w[r * k + c]!;
  return out;
}

/** Symmetric int8 per output column: codes [K, N] and scales [N]. */
function quantizePerColumn(w: Float32Array, n: number, k: number): { codes: Int8Array; scales: Float32Array } {
  const scales = new Float32Array(n);
  const codes = new Int8Array(n * k);
  for (let r = 0; r < n; r++) {
    let max = 0;
    for (let c = 0; c < k; c++) max = Math.max(max, Math.abs(w[r * k + c]!));
    const scale = max > 0 ? max / 127 : 1;
    scales[r] = scale;
    for (let c = 0; c < k; c++) codes[c * n + r] = Math.round(w[r * k + c]! / scale);
  }
  return { codes, scales };
}

// ---------- formulations ----------

const FORMULATIONS = [
  'fp32 MatMul',
  'fp16 MatMul',
  'nbits8 acc4',
  'nbits4 acc0',
  'nbits4 acc4',
  'nbits4 acc4 b64',
  'nbits4 acc4 b128',
  'nbits8 acc4 b128',
  'dqmm s8',
  'matmulinteger s8',
  'matmulinteger s8 rowwise',
  'matmulinteger s8 rowwise qdq',
] as const;
type Formulation = (typeof FORMULATIONS)[number];

/** y [M, n] = x [M, k] · Wᵀ in formulation `f`; adds the weight's initializers to `g`. */
function linear(g: GraphBuilder, f: Formulation, x: string, w: Weight): string {
  const u8 = (a: Int8Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (f === 'fp32 MatMul') return g.op('MatMul', [x, g.weight(w.name, 'float32', [w.k, w.n], () => transposed(values(w), w.n, w.k))]);
  if (f === 'fp16 MatMul') {
    const b = g.weight(w.name, 'float16', [w.k, w.n], () => float32ToHalfArray(transposed(values(w), w.n, w.k)));
    return g.op('Cast', [g.op('MatMul', [g.op('Cast', [x], { to: 10 }), b])], { to: 1 });
  }
  if (f.startsWith('nbits')) {
    const bits = f.startsWith('nbits8') ? 8 : 4;
    const blockSize = f.endsWith('b128') ? 128 : f.endsWith('b64') ? 64 : 32;
    const blocks = Math.ceil(w.k / blockSize);
    let q: ReturnType<typeof quantizeBlockwise> | undefined;
    const get = () => (q ??= quantizeBlockwise(values(w), { n: w.n, k: w.k, bits, blockSize }));
    const codes = g.weight(`${w.name}.q`, 'uint8', [w.n, blocks, (blockSize * bits) / 8], () => get().data);
    const scales = g.weight(`${w.name}.s`, 'float32', [w.n * blocks], () => get().scales);
    const zp = g.weight(`${w.name}.z`, 'uint8', [w.n * Math.ceil((blocks * bits) / 8)], () => {
      const z = get().zeroPoints;
      q = undefined;
      return z;
    });
    const accuracy = f.includes('acc4') ? 4 : 0;
    return g.op('MatMulNBits', [x, codes, scales, zp], { K: w.k, N: w.n, bits, block_size: blockSize, accuracy_level: accuracy }, 'com.microsoft');
  }
  let q: ReturnType<typeof quantizePerColumn> | undefined;
  const get = () => (q ??= quantizePerColumn(values(w), w.n, w.k));
  const codes = g.weight(`${w.name}.q`, 'int8', [w.k, w.n], () => u8(get().codes));
  const scales = g.weight(`${w.name}.s`, 'float32', [w.n], () => {
    const s = get().scales;
    q = undefined;
    return s;
  });
  if (f === 'dqmm s8') return g.op('DynamicQuantizeMatMul', [x, codes, scales], {}, 'com.microsoft');
  if (f === 'matmulinteger s8 rowwise') {
    // each row of x its own symmetric scale (so a row never depends on the others in its batch): u8 codes around 128
    const rowScale = g.op('Div', [g.op('ReduceMax', [g.op('Abs', [x]), g.int64([-1])], { keepdims: 1 }), g.float32([127])]); // [M, 1]
    const safe = g.op('Max', [rowScale, g.float32([1e-30])]);
    const xq = g.op('Cast', [g.op('Add', [g.op('Round', [g.op('Div', [x, safe])]), g.float32([128])])], { to: 2 }); // uint8 [M, K]
    const zero = g.weight(`${w.name}.xzp`, 'uint8', [], () => Uint8Array.of(128));
    const acc = g.op('MatMulInteger', [xq, codes, zero]); // int32 [M, n]
    return g.op('Mul', [g.op('Mul', [g.op('Cast', [acc], { to: 1 }), safe]), scales]);
  }
  if (f === 'matmulinteger s8 rowwise qdq') {
    const rowScale = g.op('Max', [g.op('Div', [g.op('ReduceMax', [g.op('Abs', [x]), g.int64([-1])], { keepdims: 1 }), g.float32([127])]), g.float32([1e-30])]); // [M, 1]
    const rowZero = g.op('Expand', [g.uint8Scalar(128), g.op('Shape', [rowScale])]); // Kiln makes it once per step
    const xq = g.op('QuantizeLinear', [x, rowScale, rowZero], { axis: -1, block_size: w.k }); // uint8 [M, K]
    const acc = g.op('MatMulInteger', [xq, codes, g.uint8Scalar(128)]); // int32 [M, n]
    return g.op('Mul', [g.op('DequantizeLinear', [acc, scales], { axis: -1 }), rowScale]);
  }
  const [xq, xScale, xZero] = g.node('DynamicQuantizeLinear', [x], {}, { outputs: 3 }) as [string, string, string];
  const acc = g.op('MatMulInteger', [xq, codes, xZero]); // int32 [M, n]
  return g.op('Mul', [g.op('Cast', [acc], { to: 1 }), g.op('Mul', [xScale, scales])]);
}

type Part = 'layers' | 'head' | 'probe';

interface Built {
  formulation: Formulation;
  part: Part;
  session: ort.InferenceSession;
  weightBytes: number;
  k: number;
}

function layerWeights(c: ModelConfig, l: number): Weight[] {
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const seed = 1000 + 10 * l;
  return [
    { name: `l${l}.qkv`, n: q + 2 * kv, k: d, seed },
    { name: `l${l}.o`, n: d, k: q, seed: seed + 1 },
    { name: `l${l}.gate_up`, n: 2 * c.intermediateSize, k: d, seed: seed + 2 },
    { name: `l${l}.down`, n: d, k: c.intermediateSize, seed: seed + 3 },
  ];
}

async function build(f: Formulation, part: Part, c: ModelConfig, s: Settings, root: string): Promise<Built> {
  const g = new GraphBuilder(`${part}-${f}`);
  const d = c.hiddenSize;
  let x = g.input('x', 'float32', ['M', d]);
  let out: string;
  if (part === 'head') {
    out = g.op('ReduceMax', [linear(g, f, x, { name: 'lm_head', n: c.vocabSize, k: d, seed: 7 }), g.int64([-1])], { keepdims: 0 });
  } else if (part === 'probe') {
    // the bandwidth probe: one fp32 matrix of ~100 MB (far beyond the caches), short enough that some runs
    // fall between other processes' time slices on a loaded machine
    out = g.op('ReduceMax', [linear(g, f, x, { name: 'probe', n: Math.round((25 * 2 ** 20) / d), k: d, seed: 9 }), g.int64([-1])], { keepdims: 0 });
  } else {
    const q = c.numHeads * c.headDim;
    for (let l = 0; l < s.layers; l++) {
      const [qkv, o, gateUp, down] = layerWeights(c, l) as [Weight, Weight, Weight, Weight];
      const attn = g.op('Slice', [linear(g, f, x, qkv), g.int64([0]), g.int64([q]), g.int64([1])]); // [M, q]
      const h = g.op('Add', [x, linear(g, f, attn, o)]);
      const gu = linear(g, f, h, gateUp); // [M, 2·mlp]
      const m = c.intermediateSize;
      const act = g.op('Mul', [g.op('Slice', [gu, g.int64([0]), g.int64([m]), g.int64([1])]), g.op('Slice', [gu, g.int64([m]), g.int64([2 * m]), g.int64([1])])]);
      x = g.op('Add', [h, linear(g, f, act, down)]);
    }
    out = g.op('ReduceSum', [x, g.int64([-1])], { keepdims: 0 });
  }
  g.output(out, 'y', 'float32', ['M']);
  const written = writeModel(g, join(root, `${part}-${f.replaceAll(' ', '_')}`), { '': 21, 'com.microsoft': 1 });
  const session = await ort.InferenceSession.create(written.modelPath, sessionOptions('cpu', s.threads));
  return { formulation: f, part, session, weightBytes: written.weightBytes, k: d };
}

async function timeRun(b: Built, m: number, runs: number): Promise<number> {
  const x = new ort.Tensor('float32', new Float32Array(m * b.k).fill(0.01), [m, b.k]);
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await b.session.run({ x });
    ms.push(performance.now() - t0);
  }
  return summarize(ms).median;
}

// ---------- the run ----------

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const c = REAL_SIZES[s.size];
  const loadavgBefore = os.loadavg().map((x) => round(x, 2));
  const root = mkdtempSync(join(os.tmpdir(), 'kiln-bench-qmm-'));
  const formulations = FORMULATIONS.filter((f) => !s.only || s.only.includes(f));
  if (!formulations.includes('fp32 MatMul')) throw new Error('--only must keep "fp32 MatMul": it measures the bandwidth');
  const built: Built[] = [];
  try {
    for (const f of formulations) {
      for (const part of f === 'fp32 MatMul' ? (['probe', 'layers', 'head'] as const) : (['layers', 'head'] as const)) {
        const t0 = performance.now();
        built.push(await build(f, part, c, s, root));
        log(
          `built ${part} / ${f}: ${round(built.at(-1)!.weightBytes / MB, 1)} MB in ${Math.round(performance.now() - t0)} ms (RSS ${Math.round(process.memoryUsage.rss() / MB)} MB)`,
        );
      }
    }
    const decode = new Map<Built, number[]>(built.map((b) => [b, []]));
    const prefill = new Map<Built, number[]>(built.filter((b) => b.part === 'layers').map((b) => [b, []]));
    for (const b of built) await timeRun(b, 1, 2); // warm-up: first runs allocate and prepack
    for (let rep = 0; rep < s.reps; rep++) {
      // interleaved: every formulation once per rep, the order rotating
      for (let i = 0; i < built.length; i++) {
        const b = built[(i + rep) % built.length]!;
        decode.get(b)!.push(await timeRun(b, 1, s.steps));
        if (b.part === 'layers') prefill.get(b)!.push(await timeRun(b, s.prefill, 1));
        if (b.part === 'probe') decode.get(b)!.push(await timeRun(b, 1, 4 * s.steps));
      }
      log(`rep ${rep + 1}/${s.reps} (loadavg ${os.loadavg()[0]!.toFixed(2)})`);
    }
    // on a shared machine the least-disturbed rep is the best estimate of each formulation's own cost
    const best = (b: Built) => Math.min(...decode.get(b)!);
    // the fastest of the fp32 graphs (bytes ÷ best M=1 time): they only stream their weights
    const bandwidthGBs = Math.max(...built.filter((b) => b.formulation === 'fp32 MatMul').map((b) => b.weightBytes / (best(b) / 1000) / 1e9));
    const perLayer = c.numLayers / s.layers;
    const kvBytes = c.numLayers * 2 * c.numKvHeads * c.headDim * s.context * 4;
    const boundMs = (bytes: number) => (bytes / (bandwidthGBs * 1e9)) * 1000;
    const rows = formulations.map((f) => {
      const layers = built.find((b) => b.part === 'layers' && b.formulation === f)!;
      const head = built.find((b) => b.part === 'head' && b.formulation === f)!;
      const layersMs = best(layers) * perLayer;
      const headMs = best(head);
      const layersBytes = layers.weightBytes * perLayer;
      const prefillMs = Math.min(...prefill.get(layers)!) * perLayer;
      return {
        formulation: f,
        layers: {
          weightMB: round(layersBytes / MB, 1),
          decodeMs: round(layersMs, 2),
          boundMs: round(boundMs(layersBytes), 2),
          overBound: round(layersMs / boundMs(layersBytes), 2),
        },
        head: {
          weightMB: round(head.weightBytes / MB, 1),
          decodeMs: round(headMs, 2),
          boundMs: round(boundMs(head.weightBytes), 2),
          overBound: round(headMs / boundMs(head.weightBytes), 2),
        },
        model: {
          decodeMs: round(layersMs + headMs, 2),
          boundMsAtContext: round(boundMs(layersBytes + head.weightBytes + kvBytes), 2),
          overBound: round((layersMs + headMs) / boundMs(layersBytes + head.weightBytes + kvBytes), 2),
        },
        medianOverReps: { layersMs: round(summarize(decode.get(layers)!).median * perLayer, 2), headMs: summarize(decode.get(head)!).median },
        prefill: { tokens: s.prefill, layersMs: round(prefillMs, 1), tokensPerS: round((s.prefill / prefillMs) * 1000, 0) },
      };
    });
    const result = {
      size: s.size,
      config: { hiddenSize: c.hiddenSize, layers: c.numLayers, measuredLayers: s.layers, intermediateSize: c.intermediateSize, vocabSize: c.vocabSize },
      bandwidthGBs: round(bandwidthGBs, 1),
      kvMBAtContext: round(kvBytes / MB, 1),
      settings: s,
      rows,
      loadavg: { before: loadavgBefore, after: os.loadavg().map((x) => round(x, 2)) },
      machine: `${os.cpus()[0]?.model} (${os.cpus().length} logical CPUs, ${s.threads} threads)`,
      date: new Date().toISOString(),
    };
    printTable(result);
    emitJson(result, s.out);
  } finally {
    for (const b of built) await b.session.release();
    rmSync(root, { recursive: true, force: true });
  }
}

function printTable(r: {
  rows: any[];
  bandwidthGBs: number;
  size: string;
  kvMBAtContext: number;
  loadavg: { before: number[]; after: number[] };
  machine: string;
  settings: Settings;
}): void {
  log('');
  log(
    `${r.machine}; Qwen2.5-Coder-${r.size} shape; fp32 matrix-vector bandwidth ${r.bandwidthGBs} GB/s; loadavg before ${r.loadavg.before.join(' ')}, after ${r.loadavg.after.join(' ')}`,
  );
  log(
    `| formulation | layers MB | layers ms (×bound) | head MB | head ms (×bound) | decode ms (×bound incl. ${r.kvMBAtContext} MB KV @${r.settings.context}) | prefill ${r.settings.prefill} tok/s (layers) |`,
  );
  log('|---|---|---|---|---|---|---|');
  for (const x of r.rows)
    log(
      `| ${x.formulation} | ${x.layers.weightMB} | ${x.layers.decodeMs} (${x.layers.overBound}×) | ${x.head.weightMB} | ${x.head.decodeMs} (${x.head.overBound}×) | ${x.model.decodeMs} (${x.model.overBound}×) | ${x.prefill.tokensPerS} |`,
    );
  log('');
}

main().catch((err: Error) => {
  log(`quantized-matmul bench failed: ${err.stack ?? err.message}`);
  process.exitCode = 1;
});

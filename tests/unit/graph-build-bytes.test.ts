// The built graph files are a pure function of (weights, config, options, builder version): their
// bytes and cache keys are pinned here for seeded tiny checkpoints in every stored dtype and every
// precision, so a faster build (reader, conversions, quantizer) is proved to write the very same files.
// A change that alters them on purpose bumps DECODER_BUILDER_VERSION and records the new digests.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ModelConfig } from '../../server/src/model/config';
import { expectedTensors } from '../../server/src/model/checkpoint';
import { DECODER_BUILDER_VERSION } from '../../server/src/model/graph/decoder';
import { DATA_FILE, MODEL_FILE } from '../../server/src/model/graph/write-model';
import type { QuantBits } from '../../server/src/model/quantize';
import { writeSafetensors } from '../../server/src/model/safetensors';
import { type PrepareGraphOptions, prepareGraph } from '../../server/src/runtime/prepare-graph';
import { toBfloat16Bits } from '../bench/real-size-model';
import { makeTinyWeights, TINY_LLAMA, TINY_QWEN2, writeTinyCheckpoint } from '../helpers/tiny-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-build-bytes-');
after(() => rmSync(root, { recursive: true, force: true }));

type StoredDtype = 'F32' | 'F16' | 'BF16';

/** A seeded checkpoint: TINY_LLAMA (untied head, no biases) or TINY_QWEN2 (tied head, q/k/v biases), in `dtype`. */
function checkpoint(config: ModelConfig, dtype: StoredDtype): string {
  const dir = join(root, `${config.modelType}-${dtype}`);
  const weights = makeTinyWeights(config, 11);
  if (dtype !== 'BF16') {
    writeTinyCheckpoint(dir, weights, { dtype });
    return dir;
  }
  writeTinyCheckpoint(dir, weights); // config.json (and an F32 file, replaced below)
  const tensors = expectedTensors(config).map((t) => ({ name: t.name, shape: t.shape, dtype: 'BF16' as const, data: toBfloat16Bits(weights.tensors.get(t.name)!) }));
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return dir;
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);

/** Builds into an empty cache; returns the cache key and the first 16 hex digits of each file's sha256. */
function build(modelDir: string, options: PrepareGraphOptions): string {
  const cacheDir = join(root, `cache-${basename(modelDir)}-${options.quantization ?? options.weightType}`);
  const built = prepareGraph(modelDir, { ...options, cacheDir });
  assert.equal(built.cacheHit, false);
  return `${basename(built.graphDir)} ${sha256(join(built.graphDir, MODEL_FILE))} ${sha256(join(built.graphDir, DATA_FILE))}`;
}

const PRECISIONS: Record<string, PrepareGraphOptions> = {
  fp32: { weightType: 'float32' },
  fp16: { weightType: 'float16' },
  int8: { quantization: 8 as QuantBits },
  int4: { quantization: 4 as QuantBits },
};

/** `<cache key> <model.onnx> <model.onnx.data>` as builder version 5 wrote them. */
const EXPECTED: Record<string, string> = {
  'qwen2/BF16/fp32': 'bf91c9be51fc257409c34fac09783ef4 52976d14685b8408 ab4ec3148bf5e741',
  'qwen2/BF16/fp16': '3bc7e149c7cb299317eb1948269ed555 91eaba2937b2f82f 00fce2d783e0a293',
  'qwen2/BF16/int8': '6da7534405f43f1e8e3d038de1463914 20bee5c1538ee269 cca84ffaff2cb48f',
  'qwen2/BF16/int4': 'd3f5f6cd67700710dae8aab41f19ead0 5d78d350ebd06750 1b3b775643747ac6',
  'qwen2/F16/fp32': '9789a3d7ccf57aca96eace0ea3aa878c 52976d14685b8408 8ba6a6ef4140b1e2',
  'qwen2/F16/fp16': 'e5b0a259fac080dc5253a58f48897305 91eaba2937b2f82f c9e67599aa70ff10',
  'qwen2/F16/int8': '85c28190cab94c045ed19063790adba9 20bee5c1538ee269 370333cb07bf30b8',
  'qwen2/F16/int4': 'e1056eed5e522558c03174ac4bbcf780 5d78d350ebd06750 15533992fdc8ce0a',
  'llama/F32/fp32': '59804c479e65dafa40c9ebfcec8a853c 3737c15bcb7748f5 4f4a3b53ff20e0e2',
  'llama/F32/fp16': '953d7050e8f61379f7702f214d2ce180 d7eb5b0a37c8a2ad 6f0480363d311590',
  'llama/F32/int8': '7f3de4ef910de863800598bcbef0788b 9efd6edc31cf189d d955a9a22e65405f',
  'llama/F32/int4': '57508fd124844a145ae1eb2f8cf4d59f ad5a30431a67cc64 1cba9a3da0c9949a',
};

describe(`built graph bytes (builder version ${DECODER_BUILDER_VERSION})`, () => {
  const cases: [ModelConfig, StoredDtype][] = [
    [TINY_QWEN2, 'BF16'],
    [TINY_QWEN2, 'F16'],
    [TINY_LLAMA, 'F32'],
  ];
  for (const [config, dtype] of cases) {
    it(`${config.modelType} stored as ${dtype}: fp32, fp16, int8 and int4 builds are unchanged`, () => {
      const dir = checkpoint(config, dtype);
      const actual = Object.fromEntries(Object.entries(PRECISIONS).map(([name, o]) => [`${config.modelType}/${dtype}/${name}`, build(dir, o)]));
      const expected = Object.fromEntries(Object.keys(actual).map((k) => [k, EXPECTED[k]]));
      assert.deepEqual(actual, expected);
    });
  }
});

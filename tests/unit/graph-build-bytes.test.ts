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

/** `<cache key> <model.onnx> <model.onnx.data>` as builder version 6 wrote them. */
const EXPECTED: Record<string, string> = {
  'qwen2/BF16/fp32': 'cfa390e3fe9e70f545f1f736e8cba8fb 69526f11db09e912 ab4ec3148bf5e741',
  'qwen2/BF16/fp16': 'a7b264304424d4d36022e490291178df 4c0c683b55ab2e64 00fce2d783e0a293',
  'qwen2/BF16/int8': 'b67a5faa1001308378ce3854b5ebbf92 8ecf91665b4e2f3e 76f76690a69a72d2',
  'qwen2/BF16/int4': 'cd27415654fc6109742eaa4939f9e3ba c85e6310752ea7d7 1b3b775643747ac6',
  'qwen2/F16/fp32': '9bc10699c6cbd1383ec9f70e164c6755 69526f11db09e912 8ba6a6ef4140b1e2',
  'qwen2/F16/fp16': '42faf4f928097d102fc5ba854281df36 4c0c683b55ab2e64 c9e67599aa70ff10',
  'qwen2/F16/int8': '519c7993e44c6a66eaa16d230a33e704 8ecf91665b4e2f3e 6480c9e5aa6c9bdc',
  'qwen2/F16/int4': '668dfa02f4b8e16bbc29169c869fda2f c85e6310752ea7d7 15533992fdc8ce0a',
  'llama/F32/fp32': 'ade75d18db684f59e5a349bc001b88a2 10e2dab0967c829f 4f4a3b53ff20e0e2',
  'llama/F32/fp16': 'a91644851c436d0b9fa63727400666af d1fca92a8a4dfdeb 6f0480363d311590',
  'llama/F32/int8': '07f485b02a87c4f4d1ec207efacd4994 21a8b51fc2cd63a4 9d25942b67aea613',
  'llama/F32/int4': 'd7a9b5abc9f68d138f3bb1dad7eaff4e 4d39c84ccb7d4cc6 1cba9a3da0c9949a',
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

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

/** `<cache key> <model.onnx> <model.onnx.data>` as builder version 7 wrote them. */
const EXPECTED: Record<string, string> = {
  'qwen2/BF16/fp32': 'b0fda7f5e28650e3cacdab5b86270794 66a2552d33bd6510 7190700753457839',
  'qwen2/BF16/fp16': '4bbc971f68f54b6fba7e31e810e5542f e56c81db734d3474 b95c941a0f91aabd',
  'qwen2/BF16/int8': '0f4d4d48963656b7c267415c363210be 7cf93786127d25ef 1270e7f5b5935e14',
  'qwen2/BF16/int4': 'e363322db5e4a2c167feecbb2f4df25a 5bae28d33d64b018 87988e98bf09eb9f',
  'qwen2/F16/fp32': 'a48d6f25d51dead00eb8b13efc4534fa 66a2552d33bd6510 bcc3bafc91722d5f',
  'qwen2/F16/fp16': '265d55c106260aff8b8fd902a9aa5c3d e56c81db734d3474 3911793ac5f7b5c2',
  'qwen2/F16/int8': 'b1f89bb02fa9912b419c9d0d617d4580 7cf93786127d25ef 5af7910757a9980c',
  'qwen2/F16/int4': 'd75fbd9e618cd755826d72dd7675845b 5bae28d33d64b018 981408f1b0bd3814',
  'llama/F32/fp32': 'ed18180884a8b244f7e0bc81967120a1 3a45fa371e95526c 8f639c98c443d7bc',
  'llama/F32/fp16': 'df6a1387640e7a80228211aeb8a02c79 c87768e2d061b895 58babb40e70f34fd',
  'llama/F32/int8': 'ffa7380c77e16b5cc40270b05e914ad0 aebf1ef49d16f8e1 cc529bb14c754a96',
  'llama/F32/int4': '02ed05d4efdddb9419da0a89033d3b06 dd60d9c31a3cf933 4c07f43056008f44',
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

// Exported GGUF files, loaded by llama.cpp (node-llama-cpp 3.21.1, CPU), give the same next-token
// log-probabilities as the independent float64 reference forward pass on the HF checkpoint, and as
// Kiln's own ONNX graphs (plain and fused attention) built from that checkpoint.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ModelConfig } from '../../server/src/model/config';
import { openCheckpoint } from '../../server/src/model/checkpoint';
import { exportGguf, ggufMetadata, ggufTensors, writeCheckpointGguf } from '../../server/src/model/export/gguf';
import { dequantizeGgml, quantizeQ4_0, quantizeQ8_0 } from '../../server/src/model/export/ggml-quants';
import { kv, writeGguf } from '../../server/src/model/export/gguf-writer';
import { halfArrayToFloat32, float32ToHalfArray } from '../../server/src/model/half';
import { Tokenizer } from '../../server/src/model/tokenizer';
import { llamaCppLogprobs, withLlamaCppModel } from '../helpers/llama-cpp-peer';
import { logSoftmax, referenceForward } from '../helpers/reference-forward';
import { makeTinyWeights, type TinyWeights, TINY_LLAMA, TINY_LLAMA_GQA, TINY_QWEN2, writeTinyCheckpoint } from '../helpers/tiny-model';
import { forwardRows, loadOnCpu } from '../helpers/tiny-session';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer';

const TOLERANCE = 1e-3;
const TEXT = 'def parse_options(text):\n    value = json.loads(text)\n';

const root = mkdtempSync(join(tmpdir(), 'kiln-gguf-peer-'));
after(() => rmSync(root, { recursive: true, force: true }));

interface Case {
  label: string;
  config: ModelConfig;
  /** Tokenizer entries; fewer than config.vocabSize exercises the `[PAD{i}]` rows. */
  tokenizerSize: number;
}

const CASES: Case[] = [
  { label: 'llama (MHA)', config: TINY_LLAMA, tokenizerSize: TINY_LLAMA.vocabSize },
  { label: 'llama (GQA, linear RoPE scaling)', config: TINY_LLAMA_GQA, tokenizerSize: TINY_LLAMA_GQA.vocabSize },
  { label: 'qwen2 (tied, q/k/v bias, padded vocabulary)', config: TINY_QWEN2, tokenizerSize: TINY_QWEN2.vocabSize - 10 },
];

function maxAbsDiff(a: Float64Array[], b: Float64Array[]): number {
  assert.equal(a.length, b.length, 'row count');
  let max = 0;
  a.forEach((row, t) => {
    assert.equal(row.length, b[t]!.length, `row ${t} length`);
    for (let i = 0; i < row.length; i++) max = Math.max(max, Math.abs(row[i]! - b[t]![i]!));
  });
  return max;
}

describe('GGUF export against llama.cpp', () => {
  CASES.forEach(({ label, config, tokenizerSize }, n) => {
    describe(label, () => {
      const dir = join(root, `model-${n}`);
      const gguf = join(root, `model-${n}.gguf`);
      const weights = makeTinyWeights(config, 11 + n);
      let tokenizer: Tokenizer;
      let tokens: number[];
      let theirs: Float64Array[];

      before(async () => {
        writeTinyCheckpoint(dir, weights);
        writeTinyTokenizer(dir, { vocabSize: tokenizerSize, seed: n });
        const result = await exportGguf(dir, gguf, { dtype: 'f32' });
        assert.equal(result.paddedTokens, config.vocabSize - tokenizerSize);
        tokenizer = Tokenizer.load(dir);
        tokens = [tokenizerSize - 7, ...tokenizer.encode(TEXT)].slice(0, 12); // <|endoftext|> then code
        assert.equal(tokens.length, 12);
        theirs = await llamaCppLogprobs(gguf, tokens);
        assert.equal(theirs[0]!.length, config.vocabSize, 'llama.cpp rows cover the whole vocabulary');
      });

      test('llama.cpp matches the float64 reference forward pass', () => {
        const diff = maxAbsDiff(referenceForward(weights, tokens).map(logSoftmax), theirs);
        console.log(`  ${label}, reference: max |Δ log p| = ${diff.toExponential(2)} over ${tokens.length}x${config.vocabSize}`);
        assert.ok(diff <= TOLERANCE, `max abs log-prob difference ${diff} exceeds ${TOLERANCE}`);
      });

      for (const attention of ['plain', 'fused'] as const) {
        test(`llama.cpp matches Kiln's own ONNX graph (${attention} attention)`, async () => {
          const model = await loadOnCpu(dir, { attention, cacheDir: join(root, 'cache') });
          try {
            const diff = maxAbsDiff((await forwardRows(model, tokens)).map(logSoftmax), theirs);
            console.log(`  ${label}, ONNX ${attention}: max |Δ log p| = ${diff.toExponential(2)}`);
            assert.ok(diff <= TOLERANCE, `max abs log-prob difference ${diff} exceeds ${TOLERANCE}`);
          } finally {
            await model.session.release();
          }
        });
      }

      test('the vocabulary round-trips: llama.cpp tokenizes the text as Kiln does', async () => {
        await withLlamaCppModel(gguf, async (model) => {
          assert.deepEqual(model.tokenize(TEXT), tokenizer.encode(TEXT));
          assert.equal(model.detokenize(tokenizer.encode(TEXT)), TEXT);
        });
      });
    });
  });

  test('F16 export matches the reference on F16-rounded weights', async () => {
    const dir = join(root, 'model-f16');
    const weights = makeTinyWeights(TINY_LLAMA_GQA, 21);
    writeTinyCheckpoint(dir, weights);
    writeTinyTokenizer(dir, { vocabSize: TINY_LLAMA_GQA.vocabSize, seed: 5 });
    const gguf = join(root, 'model-f16.gguf');
    await exportGguf(dir, gguf, { dtype: 'f16' });
    // matrices are stored as F16; norms and biases stay F32
    const rounded: TinyWeights = {
      config: weights.config,
      tensors: new Map([...weights.tensors].map(([name, v]) => [name, name.endsWith('norm.weight') || name.endsWith('.bias') ? v : halfArrayToFloat32(float32ToHalfArray(v))])),
    };
    const tokens = Tokenizer.load(dir).encode(TEXT).slice(0, 12);
    const diff = maxAbsDiff(referenceForward(rounded, tokens).map(logSoftmax), await llamaCppLogprobs(gguf, tokens));
    console.log(`  f16: max |Δ log p| = ${diff.toExponential(2)} (llama.cpp also rounds activations to F16 for F16 matmuls)`);
    assert.ok(diff <= 2e-2, `F16 max abs log-prob difference ${diff}`);
  });

  for (const [dtype, type] of [
    ['q8_0', 'Q8_0'],
    ['q4_0', 'Q4_0'],
  ] as const) {
    test(`${dtype} export: llama.cpp computes with the blocks as written (reference on the dequantized weights)`, async () => {
      const dir = join(root, `model-${dtype}`);
      const weights = makeTinyWeights(TINY_LLAMA_GQA, 23);
      writeTinyCheckpoint(dir, weights);
      writeTinyTokenizer(dir, { vocabSize: TINY_LLAMA_GQA.vocabSize, seed: 6 });
      const gguf = join(root, `model-${dtype}.gguf`);
      await exportGguf(dir, gguf, { dtype });
      // every matrix (rows are whole blocks here) is stored quantized; norms stay F32
      const dequantized: TinyWeights = {
        config: weights.config,
        tensors: new Map(
          [...weights.tensors].map(([name, v]) => [name, name.endsWith('norm.weight') ? v : dequantizeGgml(type, type === 'Q8_0' ? quantizeQ8_0(v) : quantizeQ4_0(v))]),
        ),
      };
      const tokens = Tokenizer.load(dir).encode(TEXT).slice(0, 12);
      const theirs = await llamaCppLogprobs(gguf, tokens);
      const toBlocks = maxAbsDiff(referenceForward(dequantized, tokens).map(logSoftmax), theirs);
      const toFloat = maxAbsDiff(referenceForward(weights, tokens).map(logSoftmax), theirs);
      console.log(
        `  ${dtype}: max |Δ log p| = ${toBlocks.toExponential(2)} vs dequantized weights, ${toFloat.toExponential(2)} vs fp32 (llama.cpp also quantizes activations to 8 bits)`,
      );
      // llama.cpp's 8-bit activations move log p by ~0.1 on this tiny model; a misread block moves it by whole units
      assert.ok(toBlocks <= 0.3, `${dtype} max abs log-prob difference ${toBlocks}`);
      if (dtype === 'q4_0') assert.ok(toBlocks < toFloat / 2, 'closer to the weights as quantized than to the fp32 ones');
    });
  }

  test('llama.cpp accepts every tokenizer.ggml.pre value the exporter writes, and rejects unknown ones', async () => {
    const dir = join(root, 'model-0'); // written by the first case
    const ckpt = openCheckpoint(dir);
    try {
      const vocab = Tokenizer.load(dir).exportVocabulary();
      for (const pre of ['default', 'qwen2', 'llama-bpe', 'gpt-2', 'deepseek-coder', 'deepseek-llm', 'starcoder', 'smollm']) {
        const path = join(root, `pre-${pre}.gguf`);
        await writeCheckpointGguf(ckpt, { ...vocab, preTokenizer: pre }, path, { dtype: 'f32' });
        const n = await withLlamaCppModel(path, async (m) => m.tokenize(TEXT).length, { vocabOnly: true });
        assert.ok(n > 0, `pre=${pre} tokenizes`);
      }
      const { metadata } = ggufMetadata(ckpt, vocab, { dtype: 'f32' });
      const bad = metadata.map((m) => (m.key === 'tokenizer.ggml.pre' ? kv.str(m.key, 'no-such-pre') : m));
      const badPath = join(root, 'pre-unknown.gguf');
      await writeGguf(badPath, bad, ggufTensors(ckpt, 'f32'));
      await assert.rejects(withLlamaCppModel(badPath, async () => 0, { vocabOnly: true }));
    } finally {
      ckpt.weights.close();
    }
  });
});

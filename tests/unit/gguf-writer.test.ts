// GGUF structure: a small independent reader (written here from the format description) parses
// exported files back; checks keys and their types, ggml dims order, alignment, tensor bytes, the
// RoPE row permutation for `llama`, tied heads, vocabulary padding, atomic writes and the CLI.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, test } from 'node:test';
import type { ModelConfig } from '../../server/src/model/config';
import { exportGguf } from '../../server/src/model/export/gguf';
import { dequantizeGgml, quantizeQ4_0, quantizeQ8_0 } from '../../server/src/model/export/ggml-quants';
import { encodeGgufHeader, kv, writeGguf } from '../../server/src/model/export/gguf-writer';
import { runExportCommand } from '../../server/src/model/export/export-command';
import { floatToHalfBits } from '../../server/src/model/half';
import { makeTinyWeights, TINY_LLAMA, TINY_QWEN2, writeTinyCheckpoint, type TinyWeights } from '../helpers/tiny-model';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer';

type Value = number | bigint | boolean | string | Value[];
interface ReadKv {
  type: number;
  itemType?: number;
  value: Value;
}
interface ReadTensor {
  dims: number[]; // ggml order
  type: number;
  offset: number;
}
interface ReadGguf {
  version: number;
  kvs: Map<string, ReadKv>;
  tensors: Map<string, ReadTensor>;
  names: string[];
  dataStart: number;
  buf: Buffer;
}

/** Parses a whole GGUF file (v3, little-endian). */
function readGguf(path: string): ReadGguf {
  const buf = readFileSync(path);
  let p = 0;
  /** Reads `width` bytes at the cursor with `read` and moves the cursor past them. */
  const take = <T>(width: number, read: (at: number) => T): T => {
    p += width;
    return read(p - width);
  };
  const u32 = () => take(4, (at) => buf.readUInt32LE(at));
  const u64 = () => take(8, (at) => Number(buf.readBigUInt64LE(at)));
  const str = () => {
    const n = u64();
    p += n;
    return buf.toString('utf8', p - n, p);
  };
  const value = (type: number): Value => {
    switch (type) {
      case 0:
        return buf.readUInt8(p++);
      case 4:
        return u32();
      case 5:
        return take(4, (at) => buf.readInt32LE(at));
      case 6:
        return take(4, (at) => buf.readFloatLE(at));
      case 7:
        return buf.readUInt8(p++) === 1;
      case 8:
        return str();
      case 10:
        return u64();
      case 12:
        return take(8, (at) => buf.readDoubleLE(at));
      default:
        throw new Error(`reader: unexpected value type ${type}`);
    }
  };
  assert.equal(buf.toString('latin1', 0, 4), 'GGUF');
  p = 4;
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const kvs = new Map<string, ReadKv>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const type = u32();
    if (type === 9) {
      const itemType = u32();
      const n = u64();
      const items: Value[] = [];
      for (let j = 0; j < n; j++) items.push(value(itemType));
      kvs.set(key, { type, itemType, value: items });
    } else {
      kvs.set(key, { type, value: value(type) });
    }
  }
  const tensors = new Map<string, ReadTensor>();
  const names: string[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nDims = u32();
    const dims = Array.from({ length: nDims }, u64);
    tensors.set(name, { dims, type: u32(), offset: u64() });
    names.push(name);
  }
  const alignment = (kvs.get('general.alignment')?.value as number | undefined) ?? 32;
  const dataStart = Math.ceil(p / alignment) * alignment;
  return { version, kvs, tensors, names, dataStart, buf };
}

/** A tensor's values as float32 (F32 or F16). */
function tensorValues(g: ReadGguf, name: string): Float32Array {
  const t = g.tensors.get(name);
  assert.ok(t, `tensor ${name} present`);
  const count = t.dims.reduce((a, b) => a * b, 1);
  const start = g.dataStart + t.offset;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = t.type === 0 ? g.buf.readFloatLE(start + 4 * i) : g.buf.readUInt16LE(start + 2 * i);
  return out;
}

/** llama with q/k/v biases, to check the bias permutation too. */
const TINY_LLAMA_BIAS: ModelConfig = { ...TINY_LLAMA, attentionBias: true };

const root = mkdtempSync(join(tmpdir(), 'kiln-gguf-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;
async function exportTiny(config: ModelConfig, dtype: 'f32' | 'f16', tokenizerSize = config.vocabSize): Promise<{ g: ReadGguf; weights: TinyWeights; dir: string }> {
  const dir = join(root, `m${counter++}`);
  const weights = makeTinyWeights(config, 7);
  writeTinyCheckpoint(dir, weights);
  writeTinyTokenizer(dir, { vocabSize: tokenizerSize });
  const out = join(dir, 'model.gguf');
  await exportGguf(dir, out, { dtype });
  return { g: readGguf(out), weights, dir };
}

describe('GGUF writer and exporter', () => {
  test('llama: header, typed keys, ggml dims, alignment', async () => {
    const { g } = await exportTiny(TINY_LLAMA_BIAS, 'f32');
    assert.equal(g.version, 3);
    const k = (key: string) => g.kvs.get(key);
    assert.deepEqual(k('general.architecture'), { type: 8, value: 'llama' });
    assert.deepEqual(k('general.alignment'), { type: 4, value: 32 });
    for (const [key, v] of [
      ['block_count', 2],
      ['embedding_length', 64],
      ['feed_forward_length', 96],
      ['attention.head_count', 4],
      ['attention.head_count_kv', 4],
      ['rope.dimension_count', 16],
      ['context_length', 512],
      ['vocab_size', 300],
    ] as const) {
      assert.deepEqual(k(`llama.${key}`), { type: 4, value: v }, key);
    }
    assert.equal(k('llama.attention.layer_norm_rms_epsilon')!.type, 6);
    assert.equal(k('llama.attention.layer_norm_rms_epsilon')!.value, Math.fround(1e-5));
    assert.deepEqual(k('llama.rope.freq_base'), { type: 6, value: 10000 });
    assert.equal(k('llama.rope.scaling.type'), undefined, 'no scaling key when factor is 1');
    assert.deepEqual(k('tokenizer.ggml.model'), { type: 8, value: 'gpt2' });
    assert.equal(k('tokenizer.ggml.tokens')!.itemType, 8);
    assert.equal((k('tokenizer.ggml.tokens')!.value as string[]).length, 300);
    assert.equal(k('tokenizer.ggml.token_type')!.itemType, 5);
    assert.equal(k('tokenizer.ggml.merges')!.itemType, 8);
    assert.deepEqual(k('tokenizer.ggml.eos_token_id'), { type: 4, value: 293 }, "the tokenizer's <|endoftext|>");
    assert.deepEqual(k('tokenizer.ggml.add_bos_token'), { type: 7, value: false });
    // special tokens are control (3), the rest normal (1)
    const types = k('tokenizer.ggml.token_type')!.value as number[];
    assert.deepEqual(types.slice(-7), [3, 3, 3, 3, 3, 3, 3]);
    assert.ok(types.slice(0, -7).every((t) => t === 1));

    assert.deepEqual(g.tensors.get('token_embd.weight')!.dims, [64, 300], 'ggml dims reverse [V, d]');
    assert.deepEqual(g.tensors.get('blk.1.ffn_down.weight')!.dims, [96, 64]);
    assert.deepEqual(g.tensors.get('blk.0.attn_q.bias')!.dims, [64]);
    assert.ok(g.tensors.has('output.weight'), 'untied head is written');
    assert.equal(g.dataStart % 32, 0);
    let end = 0;
    for (const name of g.names) {
      const t = g.tensors.get(name)!;
      assert.equal(t.offset % 32, 0, `${name} offset aligned`);
      assert.ok(t.offset >= end, `${name} does not overlap the previous tensor`);
      end = t.offset + t.dims.reduce((a, b) => a * b, 1) * 4;
    }
    assert.equal(g.buf.length, g.dataStart + Math.ceil(end / 32) * 32);
  });

  test('llama: Q and K rows (and q bias) are permuted from rotate_half to adjacent pairs; others are copied', async () => {
    const { g, weights } = await exportTiny(TINY_LLAMA_BIAS, 'f32');
    const D = TINY_LLAMA_BIAS.headDim;
    const d = TINY_LLAMA_BIAS.hiddenSize;
    const hfQ = weights.tensors.get('model.layers.1.self_attn.q_proj.weight')!;
    const gQ = tensorValues(g, 'blk.1.attn_q.weight');
    const hfQb = weights.tensors.get('model.layers.1.self_attn.q_proj.bias')!;
    const gQb = tensorValues(g, 'blk.1.attn_q.bias');
    for (let h = 0; h < TINY_LLAMA_BIAS.numHeads; h++) {
      for (let i = 0; i < D / 2; i++) {
        // GGUF rows (2i, 2i+1) of head h are HF rows (i, i + D/2)
        assert.deepEqual(gQ.subarray((h * D + 2 * i) * d, (h * D + 2 * i + 1) * d), hfQ.subarray((h * D + i) * d, (h * D + i + 1) * d));
        assert.deepEqual(gQ.subarray((h * D + 2 * i + 1) * d, (h * D + 2 * i + 2) * d), hfQ.subarray((h * D + i + D / 2) * d, (h * D + i + D / 2 + 1) * d));
        assert.equal(gQb[h * D + 2 * i + 1], hfQb[h * D + i + D / 2]);
      }
    }
    assert.notDeepEqual(tensorValues(g, 'blk.0.attn_k.weight'), weights.tensors.get('model.layers.0.self_attn.k_proj.weight'));
    assert.deepEqual(tensorValues(g, 'blk.0.attn_v.weight'), weights.tensors.get('model.layers.0.self_attn.v_proj.weight'));
    assert.deepEqual(tensorValues(g, 'output.weight'), weights.tensors.get('lm_head.weight'));
  });

  test('qwen2: no permutation, tied head omitted, linear RoPE keys, padded vocabulary', async () => {
    const config: ModelConfig = { ...TINY_QWEN2, ropeLinearFactor: 4 };
    const { g, weights } = await exportTiny(config, 'f32', config.vocabSize - 5);
    assert.deepEqual(g.kvs.get('general.architecture')!.value, 'qwen2');
    assert.deepEqual(g.kvs.get('qwen2.rope.scaling.type'), { type: 8, value: 'linear' });
    assert.deepEqual(g.kvs.get('qwen2.rope.scaling.factor'), { type: 6, value: 4 });
    assert.deepEqual(g.kvs.get('qwen2.attention.head_count_kv')!.value, 1);
    assert.ok(!g.tensors.has('output.weight'), 'tied: llama.cpp falls back to token_embd');
    assert.deepEqual(tensorValues(g, 'blk.0.attn_q.weight'), weights.tensors.get('model.layers.0.self_attn.q_proj.weight'));
    assert.deepEqual(tensorValues(g, 'blk.0.attn_k.bias'), weights.tensors.get('model.layers.0.self_attn.k_proj.bias'));
    const tokens = g.kvs.get('tokenizer.ggml.tokens')!.value as string[];
    const types = g.kvs.get('tokenizer.ggml.token_type')!.value as number[];
    assert.equal(tokens.length, 300);
    assert.deepEqual(tokens.slice(295), ['[PAD295]', '[PAD296]', '[PAD297]', '[PAD298]', '[PAD299]']);
    assert.deepEqual(types.slice(295), [5, 5, 5, 5, 5], 'padding rows are typed unused');
  });

  test('f16: matrices stored as IEEE half, norms and biases stay F32', async () => {
    const { g, weights } = await exportTiny(TINY_QWEN2, 'f16');
    assert.deepEqual(g.kvs.get('general.file_type')!.value, 1);
    assert.equal(g.tensors.get('token_embd.weight')!.type, 1);
    assert.equal(g.tensors.get('blk.0.ffn_up.weight')!.type, 1);
    assert.equal(g.tensors.get('blk.0.attn_norm.weight')!.type, 0);
    assert.equal(g.tensors.get('blk.0.attn_q.bias')!.type, 0);
    assert.equal(g.tensors.get('output_norm.weight')!.type, 0);
    const hf = weights.tensors.get('model.layers.0.mlp.up_proj.weight')!;
    assert.deepEqual(tensorValues(g, 'blk.0.ffn_up.weight'), Float32Array.from(hf, floatToHalfBits));
    for (const t of g.tensors.values()) assert.equal(t.offset % 32, 0);
  });

  test('writes atomically and validates its input', async () => {
    const dir = join(root, 'atomic');
    writeTinyCheckpoint(dir, makeTinyWeights(TINY_LLAMA, 1));
    const out = join(dir, 'x.gguf');
    const boom = {
      name: 'a',
      shape: [2],
      type: 'F32' as const,
      data: () => {
        throw new Error('read failed');
      },
    };
    await assert.rejects(writeGguf(out, [kv.str('general.architecture', 'llama')], [boom]), /read failed/);
    assert.ok(!existsSync(out));
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('.tmp')),
      [],
      'no temporary file left',
    );
    assert.throws(() => encodeGgufHeader([kv.u32('k', 1), kv.u32('k', 2)], []), /duplicate metadata key/);
    assert.throws(() => encodeGgufHeader([kv.u32('general.alignment', 24)], []), /power of two/);
    await assert.rejects(writeGguf(out, [kv.u32('k', -1)], []), /does not fit uint32/);
    await assert.rejects(writeGguf(out, [], [{ name: 'a', shape: [3], type: 'F32', data: () => new Float32Array(2) }]), /has 2 values/);
    await assert.rejects(exportGguf(dir, out, { dtype: 'f32' }), /tokenizer\.json/); // no tokenizer in this folder
  });

  test('kiln export CLI: usage errors exit 2, success writes the file', async () => {
    const { dir } = await exportTiny(TINY_LLAMA, 'f32');
    const quiet = async (args: string[]) => {
      const [out, err] = [process.stdout.write, process.stderr.write];
      let text = '';
      const capture = ((chunk: string) => {
        text += chunk;
        return true;
      }) as typeof process.stdout.write;
      process.stdout.write = capture;
      process.stderr.write = capture;
      try {
        return { code: await runExportCommand(args), text };
      } finally {
        [process.stdout.write, process.stderr.write] = [out, err];
      }
    };
    assert.equal((await quiet([dir, '--out', join(root, 'c.gguf')])).code, 2);
    assert.match((await quiet([dir, '--format', 'onnx', '--out', join(root, 'c.gguf')])).text, /unsupported --format "onnx"/);
    assert.equal((await quiet([dir, '--format', 'gguf', '--out', join(root, 'c.gguf'), '--dtype', 'q4'])).code, 2);
    assert.equal((await quiet([dir, '--format', 'gguf'])).code, 2);
    const missing = await quiet([join(root, 'nope'), '--format', 'gguf', '--out', join(root, 'c.gguf')]);
    assert.equal(missing.code, 1);
    assert.match(missing.text, /does not exist/);
    const ok = await quiet([dir, '--format=gguf', '--out', join(root, 'c.gguf'), '--dtype', 'f16']);
    assert.equal(ok.code, 0, ok.text);
    assert.equal(readGguf(join(root, 'c.gguf')).tensors.get('blk.0.attn_q.weight')!.type, 1);
  });
});

describe('ggml Q8_0 / Q4_0 blocks', () => {
  const values = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.7) * (i < 32 ? 0.5 : 2));

  it('Q8_0: 34 bytes a block, each value within half a step', () => {
    const bytes = quantizeQ8_0(values);
    assert.equal(bytes.length, 2 * 34);
    const back = dequantizeGgml('Q8_0', bytes);
    for (const [i, v] of values.entries()) assert.ok(Math.abs(back[i]! - v) <= (i < 32 ? 0.5 : 2) / 127 / 2 + 1e-3, `value ${i}`);
  });

  it('Q4_0: 18 bytes a block, the largest magnitude is code 0, value j and j+16 share byte j', () => {
    const block = Float32Array.from({ length: 32 }, (_, i) => (i === 20 ? -1.6 : i / 40));
    const bytes = quantizeQ4_0(block);
    assert.equal(bytes.length, 18);
    assert.equal(bytes[2 + 4]! >> 4, 0, 'value 20 (the largest magnitude, negative) is in the high nibble of byte 4, code 0');
    const back = dequantizeGgml('Q4_0', bytes);
    assert.ok(Math.abs(back[20]! + 1.6) < 1e-3);
    for (const [i, v] of block.entries()) assert.ok(Math.abs(back[i]! - v) <= 0.2 / 2 + 1e-3, `value ${i}: ${back[i]} vs ${v}`);
  });

  it('rejects a row that is not whole blocks', () => {
    assert.throws(() => quantizeQ4_0(new Float32Array(40)), /multiple of 32/);
  });
});

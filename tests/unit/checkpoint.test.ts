// Hugging Face checkpoint folders: sharded == single file, config.json parsing, and every broken
// folder failing with a ModelFileError that names the file and the problem, while the process
// stays up: no file descriptor leaks, and the next good model still loads and runs.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectedTensors, openCheckpoint } from '../../server/src/model/checkpoint';
import { parseModelConfig, toHfConfigJson } from '../../server/src/model/config';
import { writeSafetensors } from '../../server/src/model/safetensors';
import { modelFileError } from '../helpers/model-file-error';
import { referenceForward } from '../helpers/reference-forward';
import { makeTinyWeights, TINY_LLAMA, TINY_LLAMA_GQA, writeTinyCheckpoint } from '../helpers/tiny-model';
import { forwardRows, loadOnCpu, maxAbsDiff, tempDir } from '../helpers/tiny-session';

const TOKENS = [3, 141, 59, 26, 299, 0, 5];
const root = tempDir('kiln-checkpoint-');
const cacheDir = join(root, 'cache');
after(() => rmSync(root, { recursive: true, force: true }));

const weights = makeTinyWeights(TINY_LLAMA_GQA, 3);
const singleDir = join(root, 'single');
const shardedDir = join(root, 'sharded');
before(() => {
  writeTinyCheckpoint(singleDir, weights);
  writeTinyCheckpoint(shardedDir, weights, { shards: 3 });
});

const flat = (rows: ArrayLike<number>[]) => Float64Array.from(rows.flatMap((r) => Array.from(r)));

/** Loads a folder, runs TOKENS and checks the logits against the independent reference. */
async function loadsAndMatchesReference(dir: string): Promise<Float32Array[]> {
  const model = await loadOnCpu(dir, { cacheDir });
  try {
    const rows = await forwardRows(model, TOKENS);
    const diff = maxAbsDiff(flat(rows), flat(referenceForward(weights, TOKENS)));
    assert.ok(diff <= 1e-4, `${dir}: max abs diff to the reference ${diff}`);
    return rows;
  } finally {
    await model.session.release();
  }
}

describe('sharded checkpoints', () => {
  it('three shards load and give the same logits as one file', async () => {
    const shards = readdirSync(shardedDir).filter((n) => /^model-\d{5}-of-00003\.safetensors$/.test(n));
    assert.equal(shards.length, 3);
    const ckpt = openCheckpoint(shardedDir);
    assert.equal(ckpt.weights.files.length, 3);
    assert.equal(ckpt.weights.names().length, expectedTensors(TINY_LLAMA_GQA).length);
    ckpt.weights.close();
    const single = await loadsAndMatchesReference(singleDir);
    const sharded = await loadsAndMatchesReference(shardedDir);
    assert.equal(maxAbsDiff(flat(single), flat(sharded)), 0, 'same weights, same graph, same logits');
  });
});

let copies = 0;
/** Makes a copy of a good folder damaged by `damage`; returns its path. */
const copyOf = (from: string, damage: (dir: string) => void) => (): string => {
  const dir = join(root, 'bad', `copy-${copies++}`);
  cpSync(from, dir, { recursive: true });
  damage(dir);
  return dir;
};

function editJson<T = Record<string, unknown>>(file: string, edit: (json: T) => void): void {
  const json = JSON.parse(readFileSync(file, 'utf8')) as T;
  edit(json);
  writeFileSync(file, JSON.stringify(json));
}
const editConfig = (edit: (json: Record<string, unknown>) => void) => (dir: string) => editJson(join(dir, 'config.json'), edit);

const openFds = () => readdirSync('/proc/self/fd').length;

const DROPPED = 'model.layers.1.mlp.up_proj.weight';
const INDEX = 'model.safetensors.index.json';
/** [label, makes the path to load, the file the error names (relative to that path), the problem]. */
const BROKEN: [string, () => string, string, RegExp][] = [
  [
    'a tensor missing from model.safetensors',
    copyOf(singleDir, (d) =>
      writeSafetensors(
        join(d, 'model.safetensors'),
        expectedTensors(TINY_LLAMA_GQA)
          .filter((t) => t.name !== DROPPED)
          .map((t) => ({ ...t, dtype: 'F32' as const, data: weights.tensors.get(t.name)! })),
      ),
    ),
    'model.safetensors',
    new RegExp(`missing tensor "${DROPPED}"`),
  ],
  [
    'a tensor missing from the shard index',
    copyOf(shardedDir, (d) => editJson<{ weight_map: Record<string, string> }>(join(d, INDEX), (j) => delete j.weight_map[DROPPED])),
    INDEX,
    new RegExp(`missing tensor "${DROPPED}"`),
  ],
  [
    'a shard listed in the index that is not there',
    copyOf(shardedDir, (d) => unlinkSync(join(d, 'model-00002-of-00003.safetensors'))),
    'model-00002-of-00003.safetensors',
    /cannot open: ENOENT/,
  ],
  ['an index that is not JSON', copyOf(shardedDir, (d) => writeFileSync(join(d, INDEX), '{"weight_map": ')), INDEX, /invalid index/],
  ['a truncated weights file', copyOf(singleDir, (d) => truncateSync(join(d, 'model.safetensors'), 4096)), 'model.safetensors', /truncated or corrupt: tensor ".+" ends at byte/],
  [
    'a tensor whose shape disagrees with config.json',
    copyOf(
      singleDir,
      editConfig((j) => (j.intermediate_size = 128)),
    ),
    'model.safetensors',
    /tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[96,64\] but config\.json implies \[128,64\]/,
  ],
  ['no config.json', copyOf(singleDir, (d) => unlinkSync(join(d, 'config.json'))), 'config.json', /not found/],
  [
    'an unknown model_type',
    copyOf(
      singleDir,
      editConfig((j) => (j.model_type = 'gpt2')),
    ),
    'config.json',
    /unsupported model_type "gpt2" \(supported: llama, qwen2, mistral\)/,
  ],
  ['config.json that is not JSON', copyOf(singleDir, (d) => writeFileSync(join(d, 'config.json'), '{"model_type": "llama",')), 'config.json', /invalid JSON/],
  [
    'mistral with a sliding window shorter than its context',
    copyOf(
      singleDir,
      editConfig((j) => Object.assign(j, { model_type: 'mistral', sliding_window: 128 })),
    ),
    'config.json',
    /mistral with sliding_window=128 is not supported/,
  ],
  [
    'mistral with a sliding window and no max_position_embeddings (the default context is longer)',
    copyOf(
      singleDir,
      editConfig((j) => Object.assign(j, { model_type: 'mistral', sliding_window: 512, max_position_embeddings: undefined })),
    ),
    'config.json',
    /mistral with sliding_window=512 is not supported/,
  ],
  ['a folder with config.json and no weights', copyOf(singleDir, (d) => unlinkSync(join(d, 'model.safetensors'))), '', /no model\.safetensors or model\.safetensors\.index\.json/],
  ['a path that does not exist', () => join(root, 'bad', 'nowhere'), '', /model folder does not exist/],
  ['a file given as the model folder', () => join(singleDir, 'model.safetensors'), '', /not a folder/],
  [
    'a dangling symbolic link',
    () => {
      const link = join(root, 'bad', 'dangling');
      symlinkSync(join(root, 'bad', 'gone'), link);
      return link;
    },
    '',
    /symbolic link to .*gone, which does not exist/,
  ],
];

describe('broken checkpoints fail clearly and the process stays up', () => {
  before(() => mkdirSync(join(root, 'bad'), { recursive: true }));
  for (const [label, make, names, problem] of BROKEN) {
    it(label, async () => {
      const dir = make();
      const file = join(dir, names);
      const fds = openFds();
      assert.throws(() => openCheckpoint(dir), modelFileError(file, problem));
      await assert.rejects(loadOnCpu(dir, { cacheDir }), modelFileError(file, problem));
      assert.equal(openFds(), fds, 'no file descriptor is left open by the failure');
      await loadsAndMatchesReference(singleDir); // the same process loads and runs a good model
    });
  }
});

describe('parseModelConfig', () => {
  const base = { model_type: 'llama', hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 96, vocab_size: 300 };
  const FILE = '/models/x/config.json';
  const parse = (extra: Record<string, unknown>) => parseModelConfig({ ...base, ...extra }, FILE);
  const rejects = (extra: Record<string, unknown>, problem: RegExp) => assert.throws(() => parse(extra), modelFileError(FILE, problem));

  it('defaults: MHA when num_key_value_heads is absent, head_dim = d/H, untied, no bias', () => {
    // the same shape as TINY_LLAMA, every optional field left to its default
    assert.deepEqual(parse({}), { ...TINY_LLAMA, maxPositions: 4096, rmsNormEps: 1e-6, bosTokenId: undefined, eosTokenId: undefined });
  });

  it('GQA heads, explicit head_dim, token ids', () => {
    const c = parse({ num_key_value_heads: 2, head_dim: 32, bos_token_id: 1, eos_token_id: [2, 7] });
    assert.equal(c.numKvHeads, 2);
    assert.equal(c.headDim, 32, 'head_dim wins over hidden_size / heads');
    assert.equal(c.bosTokenId, 1);
    assert.equal(c.eosTokenId, 2, 'the first of a list of eos ids');
    assert.equal(parse({ head_dim: null }).headDim, 16);
    rejects({ num_key_value_heads: 3 }, /num_attention_heads \(4\) must be a multiple of num_key_value_heads \(3\)/);
    rejects({ head_dim: 15 }, /head_dim must be even for RoPE, got 15/);
    rejects({ hidden_size: 60, num_attention_heads: 8 }, /hidden_size \(60\) must be a multiple of num_attention_heads \(8\) when head_dim is not given/);
  });

  it('rope_scaling: none, default, linear; anything else is an error', () => {
    assert.equal(parse({ rope_scaling: null }).ropeLinearFactor, 1);
    assert.equal(parse({ rope_scaling: { rope_type: 'default' } }).ropeLinearFactor, 1);
    assert.equal(parse({ rope_scaling: { type: 'linear', factor: 4 } }).ropeLinearFactor, 4);
    assert.equal(parse({ rope_scaling: { rope_type: 'linear', factor: 2.5 } }).ropeLinearFactor, 2.5);
    rejects({ rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 } }, /unsupported rope_scaling type "yarn" \(supported: linear or none\)/);
    rejects({ rope_scaling: { type: 'dynamic', factor: 2 } }, /unsupported rope_scaling type "dynamic"/);
    rejects({ rope_scaling: { type: 'linear' } }, /missing required field "factor"/);
    rejects({ rope_scaling: { type: 'linear', factor: 0 } }, /rope_scaling\.factor must be a number from 0\.001 to 1024 \(got 0\)/);
    rejects({ rope_scaling: 'linear' }, /"rope_scaling" must be an object or null/);
  });

  it('qwen2 always has q/k/v bias; llama only with attention_bias; the tie flag is read as given', () => {
    assert.equal(parse({ model_type: 'qwen2' }).attentionBias, true);
    assert.equal(parse({ model_type: 'qwen2', attention_bias: false }).attentionBias, true);
    assert.equal(parse({ attention_bias: true }).attentionBias, true);
    assert.equal(parse({ tie_word_embeddings: true }).tieWordEmbeddings, true);
    assert.equal(parse({ tie_word_embeddings: false }).tieWordEmbeddings, false);
    assert.equal(parse({ model_type: 'qwen2', sliding_window: 4096, use_sliding_window: false }).modelType, 'qwen2');
    rejects({ model_type: 'qwen2', use_sliding_window: true }, /use_sliding_window=true is not supported/);
  });

  it('mistral is full attention only when the window covers the context', () => {
    assert.equal(parse({ model_type: 'mistral', sliding_window: 4096 }).maxPositions, 4096);
    assert.equal(parse({ model_type: 'mistral', sliding_window: null, max_position_embeddings: 32768 }).maxPositions, 32768);
    rejects({ model_type: 'mistral', sliding_window: 4095 }, /sliding_window=4095/);
    rejects({ model_type: 'mistral', sliding_window: '4096' }, /sliding_window="4096"/);
  });

  it('bad fields name themselves', () => {
    rejects({ hidden_size: undefined }, /missing required field "hidden_size"/);
    rejects({ vocab_size: '300' }, /vocab_size must be an integer from 1 to 1048576 \(got "300"\)/);
    rejects({ num_hidden_layers: 0 }, /num_hidden_layers must be an integer from 1 to 1024 \(got 0\)/);
    rejects({ hidden_act: 'gelu' }, /unsupported hidden_act "gelu"/);
    rejects({ mlp_bias: true }, /mlp_bias=true is not supported/);
    rejects({ partial_rotary_factor: 0.5 }, /partial_rotary_factor=0\.5 is not supported/);
    assert.throws(() => parseModelConfig([base], FILE), modelFileError(FILE, /expected a JSON object/));
  });

  it('toHfConfigJson round-trips through the parser', () => {
    assert.deepEqual(parseModelConfig(toHfConfigJson(TINY_LLAMA_GQA)), TINY_LLAMA_GQA);
  });
});

// Hostile model folders: every config.json number out of its bounds is refused with the field and the
// file named; every JSON read of a model folder is size-capped and refuses FIFOs and devices without
// blocking (checked in a child process with a deadline, since the old reads hung or aborted the
// process); and the worker that validates and builds graphs gives the same answers as this thread.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { CONFIG_BOUNDS, loadModelConfig, parseModelConfig, toHfConfigJson } from '../../server/src/model/config';
import { ROPE_TABLE_POSITIONS, ropeCaches } from '../../server/src/model/graph/decoder-parts';
import { MODEL_FILE_CAPS } from '../../server/src/model/read-model-file';
import { prepareGraphInWorker, validateModelInWorker } from '../../server/src/lsp/model-worker-client';
import { prepareGraph } from '../../server/src/runtime/prepare-graph';
import { modelFileError } from '../helpers/model-file-error';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { TINY_LLAMA } from '../helpers/tiny-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-model-files-');
after(() => rmSync(root, { recursive: true, force: true }));

const FILE = '/models/hostile/config.json';
const base = toHfConfigJson(TINY_LLAMA);

/** [what, the fields over a good config, the field the message must name, what it must say]. */
const HOSTILE: [string, Record<string, unknown>, string, RegExp][] = [
  ['a billion layers', { num_hidden_layers: 1e9 }, 'num_hidden_layers', /an integer from 1 to 1024 \(got 1000000000\)/],
  ['zero layers', { num_hidden_layers: 0 }, 'num_hidden_layers', /\(got 0\)/],
  ['negative layers', { num_hidden_layers: -2 }, 'num_hidden_layers', /\(got -2\)/],
  ['fractional layers', { num_hidden_layers: 2.5 }, 'num_hidden_layers', /\(got 2\.5\)/],
  ['layers as a string', { num_hidden_layers: '2' }, 'num_hidden_layers', /\(got "2"\)/],
  ['an absurd hidden size', { hidden_size: 2 ** 40 }, 'hidden_size', /an integer from 1 to 65536/],
  ['absurd heads', { num_attention_heads: 1e6, num_key_value_heads: 1e6 }, 'num_attention_heads', /an integer from 1 to 1024/],
  ['negative kv heads', { num_key_value_heads: -4 }, 'num_key_value_heads', /\(got -4\)/],
  ['an absurd head_dim', { head_dim: 1e7 }, 'head_dim', /an integer from 2 to 1024/],
  ['a fractional head_dim', { head_dim: 15.5 }, 'head_dim', /\(got 15\.5\)/],
  ['an absurd intermediate size', { intermediate_size: 1e12 }, 'intermediate_size', /an integer from 1 to 262144/],
  ['an absurd vocabulary', { vocab_size: 1e10 }, 'vocab_size', /an integer from 1 to 1048576/],
  ['absurd positions', { max_position_embeddings: 1e15 }, 'max_position_embeddings', /an integer from 1 to 10000000/],
  ['negative positions', { max_position_embeddings: -1 }, 'max_position_embeddings', /\(got -1\)/],
  [
    'heads that do not divide hidden (no head_dim)',
    { head_dim: null, hidden_size: 60, num_attention_heads: 8 },
    'hidden_size',
    /hidden_size \(60\) must be a multiple of num_attention_heads \(8\)/,
  ],
  ['kv heads that do not divide heads', { num_key_value_heads: 3 }, 'num_key_value_heads', /num_attention_heads \(4\) must be a multiple of num_key_value_heads \(3\)/],
  ['more kv heads than heads', { num_key_value_heads: 8 }, 'num_key_value_heads', /multiple of num_key_value_heads \(8\)/],
  ['heads × head_dim too wide', { num_attention_heads: 1024, num_key_value_heads: 1024, head_dim: 1024 }, 'head_dim', /num_attention_heads × head_dim must be at most 262144/],
  ['rope_theta 0', { rope_theta: 0 }, 'rope_theta', /a number from 1 to 1000000000000 \(got 0\)/],
  ['rope_theta negative', { rope_theta: -10000 }, 'rope_theta', /\(got -10000\)/],
  ['rope_theta as a string', { rope_theta: '10000' }, 'rope_theta', /\(got "10000"\)/],
  ['rope_theta NaN (a parsed object, not JSON)', { rope_theta: Number.NaN }, 'rope_theta', /\(got NaN\)/],
  ['rope_theta Infinity', { rope_theta: Number.POSITIVE_INFINITY }, 'rope_theta', /\(got Infinity\)/],
  ['rms_norm_eps negative', { rms_norm_eps: -1 }, 'rms_norm_eps', /a number from 1e-12 to 1 \(got -1\)/],
  ['rms_norm_eps 0', { rms_norm_eps: 0 }, 'rms_norm_eps', /\(got 0\)/],
  ['rms_norm_eps a string', { rms_norm_eps: 'tiny' }, 'rms_norm_eps', /\(got "tiny"\)/],
  ['rms_norm_eps huge', { rms_norm_eps: 1e9 }, 'rms_norm_eps', /\(got 1000000000\)/],
  ['a linear rope factor of 0', { rope_scaling: { type: 'linear', factor: 0 } }, 'rope_scaling.factor', /\(got 0\)/],
  ['a negative eos id', { eos_token_id: -5 }, 'eos_token_id', /\(got -5\)/],
  ['a fractional bos id in a list', { bos_token_id: [1.5] }, 'bos_token_id', /\(got 1\.5\)/],
  ['a mistral window that is not an integer', { model_type: 'mistral', sliding_window: 1e300 }, 'sliding_window', /sliding_window must be an integer/],
];

describe('config.json bounds: each hostile value is refused naming its field and the file', () => {
  for (const [what, fields, field, problem] of HOSTILE) {
    it(what, () => {
      const named = (err: unknown) => modelFileError(FILE, problem)(err) && (err as Error).message.includes(field);
      assert.throws(() => parseModelConfig({ ...base, ...fields }, FILE), named, `the message names ${field}`);
    });
  }

  it('every bounded field is in the table, and the table admits real models up to 70B', () => {
    for (const [, , field] of HOSTILE) assert.ok(field in CONFIG_BOUNDS, field);
    const llama3_70b = {
      model_type: 'llama',
      hidden_size: 8192,
      num_hidden_layers: 80,
      num_attention_heads: 64,
      num_key_value_heads: 8,
      intermediate_size: 28672,
      vocab_size: 128256,
      max_position_embeddings: 131072,
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      bos_token_id: 128000,
      eos_token_id: [128001, 128008, 128009],
    };
    const qwen25_32b = {
      model_type: 'qwen2',
      hidden_size: 5120,
      num_hidden_layers: 64,
      num_attention_heads: 40,
      num_key_value_heads: 8,
      intermediate_size: 27648,
      vocab_size: 152064,
      max_position_embeddings: 32768,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000,
      use_sliding_window: false,
      sliding_window: 131072,
    };
    const codellama_34b = {
      model_type: 'llama',
      hidden_size: 8192,
      num_hidden_layers: 48,
      num_attention_heads: 64,
      num_key_value_heads: 8,
      intermediate_size: 22016,
      vocab_size: 32000,
      max_position_embeddings: 16384,
      rms_norm_eps: 1e-5,
      rope_theta: 1000000,
    };
    assert.equal(parseModelConfig(llama3_70b, FILE).numLayers, 80);
    assert.equal(parseModelConfig(qwen25_32b, FILE).headDim, 128);
    assert.equal(parseModelConfig(codellama_34b, FILE).intermediateSize, 22016);
  });

  it('through a folder: config.json from disk names its full path', () => {
    const dir = join(root, 'billion-layers');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...base, num_hidden_layers: 1e9 }));
    assert.throws(() => loadModelConfig(dir), modelFileError(join(dir, 'config.json'), /^num_hidden_layers must be an integer from 1 to 1024 \(got 1000000000\)$/));
  });
});

test('a huge max_position_embeddings does not size the rotary tables: they stop at ROPE_TABLE_POSITIONS', () => {
  const config = parseModelConfig({ ...base, max_position_embeddings: 10_000_000 });
  const { cos, sin } = ropeCaches(config);
  assert.equal(cos.length, ROPE_TABLE_POSITIONS * (config.headDim / 2));
  assert.equal(sin.length, cos.length);
});

describe('size caps on the JSON files of a model folder', () => {
  it('a config.json over its cap is refused before it is parsed', () => {
    const dir = join(root, 'padded');
    mkdirSync(dir);
    const text = JSON.stringify(base);
    writeFileSync(join(dir, 'config.json'), text + ' '.repeat(MODEL_FILE_CAPS.config + 1 - text.length));
    assert.throws(
      () => loadModelConfig(dir),
      modelFileError(join(dir, 'config.json'), new RegExp(`is ${MODEL_FILE_CAPS.config + 1} bytes, more than the ${MODEL_FILE_CAPS.config}`)),
    );
  });
});

/**
 * Runs every reader of a model folder on non-regular files in a child process that must finish within
 * `deadlineMs`: the old readers blocked forever on a FIFO or read /dev/zero until the process aborted.
 */
function readersOnHostileFiles(deadlineMs: number): { label: string; file: string; name: string; message: string }[] {
  const dir = join(root, 'hostile-files');
  const good = join(root, 'good-for-hostile');
  writeTinyCodeModel(good);
  mkdirSync(dir, { recursive: true });
  const src = (p: string) => JSON.stringify(join(__dirname, '..', '..', 'server', 'src', p));
  const fifo = (name: string) => {
    const path = join(dir, name);
    const made = spawnSync('mkfifo', [path]);
    assert.equal(made.status, 0, `mkfifo ${path}: ${made.stderr}`);
    return path;
  };
  const folder = (name: string, replace: string, how: 'fifo' | 'zero') => {
    const d = join(dir, name);
    mkdirSync(d);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'kiln.json']) writeFileSync(join(d, f), readFileSync(join(good, f)));
    unlinkSync(join(d, replace));
    if (how === 'fifo') fifo(join(name, replace));
    else symlinkSync('/dev/zero', join(d, replace));
    return d;
  };
  const cases = {
    configFifo: folder('config-fifo', 'config.json', 'fifo'),
    configZero: folder('config-zero', 'config.json', 'zero'),
    weightsFifo: folder('weights-fifo', 'model.safetensors', 'fifo'),
    tokenizerFifo: folder('tokenizer-fifo', 'tokenizer.json', 'fifo'),
    tokenizerConfigZero: folder('tokenizer-config-zero', 'tokenizer_config.json', 'zero'),
    kilnFifo: folder('kiln-fifo', 'kiln.json', 'fifo'),
    index: join(dir, 'index'),
    adapter: join(dir, 'adapter'),
  };
  mkdirSync(cases.index);
  writeFileSync(join(cases.index, 'config.json'), readFileSync(join(good, 'config.json')));
  fifo(join('index', 'model.safetensors.index.json'));
  mkdirSync(cases.adapter);
  fifo(join('adapter', 'adapter_config.json'));
  const script = `
    const { openCheckpoint } = require(${src('model/checkpoint.ts')});
    const { Tokenizer } = require(${src('model/tokenizer.ts')});
    const { readTrainedFacts } = require(${src('completion/completion-model.ts')});
    const { loadLoraAdapter } = require(${src('model/export/peft.ts')});
    const { parseModelConfig } = require(${src('model/config.ts')});
    const cases = ${JSON.stringify(cases)};
    const runs = [
      ['config.json a FIFO', () => openCheckpoint(cases.configFifo)],
      ['config.json a link to /dev/zero', () => openCheckpoint(cases.configZero)],
      ['model.safetensors a FIFO', () => openCheckpoint(cases.weightsFifo)],
      ['tokenizer.json a FIFO', () => Tokenizer.load(cases.tokenizerFifo)],
      ['tokenizer_config.json a link to /dev/zero', () => Tokenizer.load(cases.tokenizerConfigZero)],
      ['kiln.json a FIFO', () => readTrainedFacts(cases.kilnFifo)],
      ['model.safetensors.index.json a FIFO', () => openCheckpoint(cases.index)],
      ['adapter_config.json a FIFO', () => loadLoraAdapter(cases.adapter, parseModelConfig(${JSON.stringify(base)}))],
    ];
    const out = [];
    for (const [label, run] of runs) {
      try { run(); out.push({ label, file: '', name: 'none', message: 'no error' }); }
      catch (err) { out.push({ label, file: err.file ?? '', name: err.name, message: err.message }); }
    }
    process.stdout.write(JSON.stringify(out));
  `;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { timeout: deadlineMs, encoding: 'utf8', maxBuffer: 16 * 2 ** 20 });
  assert.equal(child.signal, null, `the readers did not finish within ${deadlineMs} ms (signal ${child.signal}); stderr: ${child.stderr.slice(-2000)}`);
  assert.equal(child.status, 0, child.stderr.slice(-2000));
  return JSON.parse(child.stdout) as { label: string; file: string; name: string; message: string }[];
}

describe('FIFOs and devices in a model folder are refused at once', () => {
  let results: { label: string; file: string; name: string; message: string }[];
  before(() => {
    results = readersOnHostileFiles(60_000);
  });
  const expected: [string, string, RegExp][] = [
    ['config.json a FIFO', 'config-fifo/config.json', /is not a regular file \(a FIFO\)/],
    ['config.json a link to /dev/zero', 'config-zero/config.json', /is not a regular file \(a character device\)/],
    ['model.safetensors a FIFO', 'weights-fifo/model.safetensors', /is not a regular file \(a FIFO\)/],
    ['tokenizer.json a FIFO', 'tokenizer-fifo/tokenizer.json', /is not a regular file \(a FIFO\)/],
    ['tokenizer_config.json a link to /dev/zero', 'tokenizer-config-zero/tokenizer_config.json', /is not a regular file \(a character device\)/],
    ['kiln.json a FIFO', 'kiln-fifo/kiln.json', /is not a regular file \(a FIFO\)/],
    ['model.safetensors.index.json a FIFO', 'index/model.safetensors.index.json', /is not a regular file \(a FIFO\)/],
    ['adapter_config.json a FIFO', 'adapter/adapter_config.json', /is not a regular file \(a FIFO\)/],
  ];
  for (const [label, file, problem] of expected) {
    it(label, () => {
      const r = results.find((x) => x.label === label);
      assert.ok(r, `no result for ${label}`);
      assert.equal(r.name, 'ModelFileError', `${label}: ${r.message}`);
      assert.equal(r.file, join(root, 'hostile-files', file));
      assert.match(r.message, problem);
    });
  }
});

describe('the model worker', () => {
  const cacheDir = join(root, 'worker-cache');

  it('builds the same graph as this thread, and a second call finds it in the cache', async () => {
    const dir = writeTinyCodeModel(join(root, 'worker-good'), { seed: 5 });
    const logs: string[] = [];
    const inWorker = await prepareGraphInWorker(dir, { cacheDir, log: (m) => logs.push(m) });
    assert.equal(inWorker.cacheHit, false);
    assert.ok(
      logs.some((m) => m.startsWith('building the plain/float32 graph')),
      `the worker's log reaches the caller: ${logs.join('; ')}`,
    );
    const here = prepareGraph(dir, { cacheDir });
    assert.equal(here.cacheHit, true, 'the build the worker wrote is the one this thread finds');
    assert.equal(here.graphDir, inWorker.graphDir);
    assert.deepEqual(here.config, inWorker.config);
  });

  it('a ModelFileError crosses back with its file and problem', async () => {
    const dir = writeTinyCodeModel(join(root, 'worker-bad'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...base, rope_theta: 0 }));
    await assert.rejects(prepareGraphInWorker(dir, { cacheDir }), modelFileError(join(dir, 'config.json'), /^rope_theta must be a number from 1 to 1000000000000 \(got 0\)$/));
  });

  it('refuses a tokenizer with ids the embedding has no row for, before the server thread would load it', async () => {
    const dir = writeTinyCodeModel(join(root, 'worker-big-tokenizer'));
    const tokenizerFile = join(dir, 'tokenizer.json');
    const tokenizer = JSON.parse(readFileSync(tokenizerFile, 'utf8')) as { model: { vocab: Record<string, number> } };
    const vocabSize = (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
    tokenizer.model.vocab['<extra>'] = vocabSize + 5;
    writeFileSync(tokenizerFile, JSON.stringify(tokenizer));
    await assert.rejects(
      prepareGraphInWorker(dir, { cacheDir }),
      modelFileError(tokenizerFile, new RegExp(`^has token id ${vocabSize + 5}, but the model's vocab_size is ${vocabSize}`)),
    );
  });

  it('validates a folder whose config.json is a FIFO with a clear answer', async () => {
    const dir = writeTinyCodeModel(join(root, 'worker-fifo'));
    unlinkSync(join(dir, 'config.json'));
    assert.equal(spawnSync('mkfifo', [join(dir, 'config.json')]).status, 0);
    const result = await validateModelInWorker(dir);
    assert.equal(result.ok, false);
    assert.match(result.message, /config\.json: is not a regular file \(a FIFO\)/);
  });
});

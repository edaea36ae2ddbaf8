// Fine-tuning elsewhere: `kiln finetune --export-dataset` writes the dataset the fine-tune would
// train on (the same build, secrets blanked), and recipes/train_lora.py trains a LoRA adapter on it
// under `torchrun --nproc_per_node 2` on the CPU (gloo, Debian's python3-torch) with a seeded tiny
// checkpoint: both ranks' losses fall, the PEFT adapter it writes loads in Kiln, and Kiln's logits
// with it equal the recipe's own PyTorch forward pass with the same adapter. A Qwen2 checkpoint
// (q/k/v biases, tied embeddings, grouped-query attention, RoPE theta and linear scaling) is trained
// by the recipe in one process and compared the same way.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { DatasetManifest } from '../../server/src/dataset/export-dataset';
import { buildWorkspaceDataset, datasetChoices } from '../../server/src/dataset/training-preview';
import { buildFineTuneOptions } from '../../server/src/finetune/fine-tune-options';
import { SafetensorsFile } from '../../server/src/model/safetensors';
import { loadModel } from '../../server/src/runtime/load-model';
import { writeOverfitRepo } from '../fixtures/overfit-repo';
import { ensureBuilt, REPO, runKiln } from '../helpers/built-cli';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { makeTinyWeights, TINY_QWEN2, writeTinyCheckpoint } from '../helpers/tiny-model';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer';
import { forwardRows, maxAbsDiff, tempDir } from '../helpers/tiny-session';
import { PYTHON, requireTorch } from '../helpers/torch-python';

const root = tempDir('kiln-recipe-');
const repo = join(root, 'repo');
const llama = join(root, 'llama');
const qwen2 = join(root, 'qwen2');
const cache = join(root, 'cache');
const RECIPE = join(REPO, 'recipes', 'train_lora.py');
const LOGITS = join(REPO, 'tests', 'helpers', 'torch_lora_logits.py');
const PACKED = join(REPO, 'tests', 'helpers', 'recipe_packed.py');
const SECRET = `hunter${Date.now().toString(36)}Zq7`;
const SEQ_LEN = '64';

interface Line {
  split: string;
  path: string;
  kind: string;
  input_ids: number[];
  loss_mask: number[];
  text: string;
}

/** Runs to completion (never rejects); Python writes no __pycache__ into the repository's recipes/. */
function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20, cwd: root, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

const exportTo = (model: string, out: string, ...more: string[]) =>
  runKiln('finetune', repo, '--model', model, '--cache', cache, '--seq-len', SEQ_LEN, '--threads', '1', '--export-dataset', out, ...more);

const readLines = (file: string): Line[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);

const readManifest = (dir: string) => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as DatasetManifest;

/** `rank R step S/T loss L` lines of one rank's log. */
function stepLosses(text: string): number[] {
  return [...text.matchAll(/^rank \d+ step \d+\/\d+ loss (\S+)/gm)].map((m) => Number(m[1]));
}

/** An example's text with its FIM markers undone: the file's text as it was (SPM puts the prefix after <|fim_middle|>). */
function reassemble(text: string): string {
  const body = text.replace(/<\|endoftext\|>$/, '');
  const m = /^<\|fim_prefix\|>(?<pre>[\s\S]*?)<\|fim_suffix\|>(?<suf>[\s\S]*?)<\|fim_middle\|>(?<mid>[\s\S]*)$/.exec(body);
  if (!m?.groups) return body;
  const { pre, suf, mid } = m.groups as { pre: string; suf: string; mid: string };
  return pre === '' ? `${mid}${suf}` : `${pre}${mid}${suf}`;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Kiln's logits for `tokens` with the adapter, and without it. */
async function kilnLogits(modelDir: string, adapterDir: string | undefined, tokens: number[]): Promise<Float64Array> {
  const model = await loadModel(modelDir, { executionProvider: 'cpu', threads: 1, cacheDir: cache, adapterDir });
  try {
    if (adapterDir) assert.equal(model.adapter?.dir, adapterDir);
    return Float64Array.from((await forwardRows(model, tokens)).flatMap((r) => Array.from(r)));
  } finally {
    await model.session.release();
  }
}

/** The recipe's PyTorch forward pass with the adapter, on the same tokens. */
async function torchLogits(modelDir: string, adapterDir: string, tokens: number[]): Promise<Float64Array> {
  const r = await run(PYTHON, [LOGITS, '--model', modelDir, '--adapter', adapterDir, '--tokens', tokens.join(',')]);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { logits: number[][] };
  return Float64Array.from(doc.logits.flat());
}

/** An adapter folder's tensors by name. */
function adapterTensors(dir: string): Map<string, Float32Array> {
  const st = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
  try {
    return new Map([...st.tensors.keys()].map((name) => [name, st.readFloat32(name)]));
  } finally {
    st.close();
  }
}

/** Kiln and the recipe agree with the adapter (≤ 1e-4), and the adapter moved the logits. */
async function checkAdapterInKiln(modelDir: string, adapterDir: string, tokens: number[]): Promise<void> {
  const kiln = await kilnLogits(modelDir, adapterDir, tokens);
  const torch = await torchLogits(modelDir, adapterDir, tokens);
  const diff = maxAbsDiff(kiln, torch);
  assert.ok(diff <= 1e-4, `Kiln vs PyTorch with the adapter: max |Δlogit| ${diff}`);
  const base = await kilnLogits(modelDir, undefined, tokens);
  assert.ok(maxAbsDiff(kiln, base) > 1e-3, 'the trained adapter changes the logits');
}

before(() => {
  requireTorch();
  ensureBuilt();
  writeTinyCodeModel(llama, { seed: 1, maxPositions: 512, config: { vocabSize: 400, intermediateSize: 128 } });
  // Qwen2 with two KV heads for four query heads and linear RoPE scaling, in F16 across two shards
  writeTinyCheckpoint(qwen2, makeTinyWeights({ ...TINY_QWEN2, maxPositions: 512, vocabSize: 400, numKvHeads: 2, ropeLinearFactor: 2 }, 2), { dtype: 'F16', shards: 2 });
  writeTinyTokenizer(qwen2, { vocabSize: 400 });
  writeFileSync(join(qwen2, 'kiln.json'), JSON.stringify({ fimOrders: ['spm'] }));
  writeOverfitRepo(repo, 12);
  writeFileSync(join(repo, 'src', 'settings.py'), `import os\n\nDEBUG = False\npassword = "${SECRET}"\nTIMEOUT = 30\n`);
  writeFileSync(join(repo, '.env'), `DATABASE_PASSWORD=${SECRET}\n`);
});

describe('kiln finetune --export-dataset', () => {
  const out = join(root, 'export-llama');

  it('writes the examples the fine-tune builds, as JSONL, with a manifest; secrets blanked; the recipe packs them as Kiln does', async () => {
    const r = await exportTo(llama, out);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(out).sort(), ['manifest.json', 'train.jsonl', 'validation.jsonl']);
    assert.deepEqual(
      readdirSync(root).filter((f) => f.startsWith('export-llama.')),
      [],
      'no temp folder left beside the export',
    );
    const manifest = readManifest(out);
    const lines = { train: readLines(join(out, 'train.jsonl')), validation: readLines(join(out, 'validation.jsonl')) };

    // the same build as the fine-tune, through the options builder the CLI uses
    const options = buildFineTuneOptions({ workspace: repo, modelDir: llama, cacheDir: cache, seqLen: Number(SEQ_LEN), threads: 1 });
    const { dataset } = await buildWorkspaceDataset({ ...datasetChoices(options), keepExamples: true });
    for (const split of ['train', 'validation'] as const) {
      const expected = (dataset.examples ?? []).filter((e) => e.split === split);
      assert.equal(lines[split].length, expected.length, split);
      assert.deepEqual(
        lines[split].map((l) => [l.path, l.kind, l.input_ids, l.loss_mask]),
        expected.map((e) => [e.path, e.kind, e.tokens, Array.from(e.loss)]),
        `${split}: the exported examples are the fine-tune's`,
      );
      assert.equal(manifest.split[split].examples, expected.length);
      assert.equal(manifest.split[split].tokens, dataset.report.tokens[split]);
    }
    assert.ok(lines.validation.length > 0 && lines.train.length > 0);

    // the recipe packs them into exactly the sequences the fine-tune trains on
    const packed = await run(PYTHON, [PACKED, '--data', out, '--vocab', '400']);
    assert.equal(packed.code, 0, packed.stderr);
    const recipe = JSON.parse(packed.stdout) as Record<'train' | 'validation', { input_ids: number[][]; labels: number[][] }>;
    for (const split of ['train', 'validation'] as const) {
      const kiln = dataset[split];
      assert.ok(kiln.length > (split === 'train' ? 4 : 0), `${split}: ${kiln.length} sequences`);
      assert.deepEqual(
        recipe[split].input_ids,
        kiln.map((q) => Array.from(q.inputIds)),
        `${split} input ids`,
      );
      assert.deepEqual(
        recipe[split].labels,
        kiln.map((q) => Array.from(q.labels)),
        `${split} labels`,
      );
    }
    assert.ok(lines.train.some((l) => l.kind !== 'plain') && lines.train.every((l) => l.split === 'train'));

    const all = readFileSync(join(out, 'train.jsonl'), 'utf8') + readFileSync(join(out, 'validation.jsonl'), 'utf8');
    assert.ok(!all.includes(SECRET), 'a planted secret reached the export');
    const settings = lines.train
      .concat(lines.validation)
      .filter((l) => l.path === 'src/settings.py')
      .map((l) => reassemble(l.text))
      .join('');
    assert.ok(settings.includes('TIMEOUT = 30') && settings.includes('DEBUG = False'), `the scrubbed file keeps its other lines: ${settings}`);
    assert.ok(!lines.train.concat(lines.validation).some((l) => l.path === '.env'));

    assert.equal(manifest.format, 'kiln-dataset');
    assert.equal(manifest.kiln_version, JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version);
    assert.equal(manifest.sequence_length, Number(SEQ_LEN));
    assert.equal(manifest.workspace.max_files, options.maxFiles);
    assert.deepEqual(manifest.training, {
      batch_size: options.batchSize,
      accumulation: options.accumulation,
      warmup_steps: options.warmupSteps,
      epochs: options.epochs,
      max_steps: options.maxSteps,
    });
    assert.deepEqual(manifest.rates, { fim: options.fimRate, spm: options.spmRate, line_span: options.lineSpanRate });
    assert.equal(manifest.fim?.family, 'qwen');
    assert.equal(manifest.base_model.model_type, 'llama');
    assert.deepEqual(manifest.base_model.config, JSON.parse(readFileSync(join(llama, 'config.json'), 'utf8')));
    assert.match(manifest.base_model.weights[0]!.sha256, /^[0-9a-f]{64}$/);
    assert.ok(manifest.files.scrubbed_lines >= 1 && manifest.files.excluded >= 1);
    assert.ok(manifest.tokenizer.files['tokenizer.json']);
    assert.deepEqual(manifest.lora, { rank: 8, alpha: 16, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], learning_rate: options.lr });
    assert.ok(r.stdout.includes(`train a LoRA adapter on it with: torchrun --nproc_per_node <GPUs> ${JSON.stringify(RECIPE)} --data ${JSON.stringify(out)}`), r.stdout);
  });

  it('refuses a non-empty folder unless told to overwrite it, and then replaces it whole', async () => {
    const target = join(root, 'occupied');
    mkdirSync(target);
    writeFileSync(join(target, 'keep.txt'), 'mine');
    const refused = await exportTo(llama, target);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is not empty; choose another folder or pass --overwrite/);
    assert.deepEqual(readdirSync(target), ['keep.txt']);
    const replaced = await exportTo(llama, target, '--overwrite');
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.deepEqual(readdirSync(target).sort(), ['manifest.json', 'train.jsonl', 'validation.jsonl']);
    const empty = join(root, 'empty');
    mkdirSync(empty);
    assert.equal((await exportTo(llama, empty)).code, 0, 'an empty folder is used as is');
    // --overwrite replaces OUT whole: never the workspace, a folder holding it, or a folder inside it (nor the model's)
    for (const [target, why] of [
      [repo, /holds the workspace/],
      [root, /holds the workspace/],
      [join(repo, 'export'), /is inside the workspace/],
      [join(llama, 'export'), /is inside the model folder/],
    ] as const) {
      const r = await exportTo(llama, target, '--overwrite');
      assert.equal(r.code, 1, target);
      assert.match(r.stderr, why);
    }
    assert.ok(existsSync(join(repo, 'src', 'settings.py')) && !existsSync(join(repo, 'export')) && !existsSync(join(llama, 'export')));
    const usage = await runKiln('finetune', repo, '--model', llama, '--overwrite');
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--overwrite needs --export-dataset/);
  });
});

describe('recipes/train_lora.py', () => {
  it('says what to install when its python has no torch (python -S: no site-packages), without a traceback', async () => {
    const r = await run(PYTHON, ['-S', RECIPE, '--data', root, '--model', llama, '--out', join(root, 'never')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /train_lora\.py needs PyTorch, which .* cannot import/);
    assert.doesNotMatch(r.stderr, /Traceback/);
  });

  it('trains under torchrun on 2 CPU processes (gloo): both ranks learn, Kiln loads the adapter and matches PyTorch', async () => {
    const data = join(root, 'export-llama');
    if (!existsSync(join(data, 'manifest.json'))) assert.equal((await exportTo(llama, data)).code, 0);
    const adapter = join(root, 'adapter-llama');
    const logs = join(root, 'torchrun-logs');
    // --redirects 2 --tee 1: torchrun 1.13 on Python 3.11 (Debian 12) crashes on its default "0" for both (its Std enum has no
    // iterable NONE there); with these each rank's stdout is teed to <log_dir>/<run>/attempt_0/<rank>/stdout.log
    const r = await run(PYTHON, [
      ...['-m', 'torch.distributed.run', '--nproc_per_node', '2', '--redirects', '2', '--tee', '1', '--log_dir', logs],
      ...[RECIPE, '--data', data, '--model', llama, '--out', adapter, '--steps', '30', '--batch', '2', '--lr', '1e-2', '--warmup', '2', '--seed', '3'],
    ]);
    const runDir = readdirSync(logs).map((d) => join(logs, d, 'attempt_0'))[0]!;
    const rankLog = (rank: number, stream: string) => readFileSync(join(runDir, String(rank), `${stream}.log`), 'utf8');
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}\n${[0, 1].map((k) => rankLog(k, 'stderr')).join('\n')}`);
    assert.match(rankLog(0, 'stdout'), /2 processes, backend gloo, device cpu/);
    for (const rank of [0, 1]) {
      const losses = stepLosses(rankLog(rank, 'stdout'));
      assert.equal(losses.length, 30, `rank ${rank} logged every step`);
      const [first, last] = [mean(losses.slice(0, 5)), mean(losses.slice(-5))];
      assert.ok(last < 0.95 * first, `rank ${rank}: loss ${first.toFixed(3)} -> ${last.toFixed(3)} did not fall`);
    }
    assert.deepEqual(readdirSync(adapter).sort(), ['adapter_config.json', 'adapter_model.safetensors', 'training_report.json']);
    const report = JSON.parse(readFileSync(join(adapter, 'training_report.json'), 'utf8'));
    assert.ok(report.validation_loss_after < report.validation_loss_before, JSON.stringify(report));
    const tokens = readLines(join(data, 'validation.jsonl'))[0]!.input_ids.slice(0, 40);
    await checkAdapterInKiln(llama, adapter, tokens);

    // a sliding window shorter than the sequences is refused: the own forward pass attends to every earlier position
    const windowed = join(root, 'mistral-windowed');
    cpSync(llama, windowed, { recursive: true });
    writeFileSync(join(windowed, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(llama, 'config.json'), 'utf8')), model_type: 'mistral', sliding_window: 16 }));
    const window = await run(PYTHON, [RECIPE, '--data', data, '--model', windowed, '--out', join(root, 'never'), '--steps', '1']);
    assert.notEqual(window.code, 0);
    assert.match(window.stderr, /longer than the model's sliding_window 16/);
    assert.ok(!existsSync(join(root, 'never')));

    // a shard index pointing out of the model folder is refused, as Kiln's loader refuses it
    const escaping = join(root, 'llama-escaping-index');
    cpSync(llama, escaping, { recursive: true });
    writeFileSync(join(escaping, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'model.norm.weight': '../llama/model.safetensors' } }));
    const escaped = await run(PYTHON, [RECIPE, '--data', data, '--model', escaping, '--out', join(root, 'never'), '--steps', '1']);
    assert.notEqual(escaped.code, 0);
    assert.match(escaped.stderr, /names an invalid shard file '\.\.\/llama\/model\.safetensors'/);
    assert.ok(!existsSync(join(root, 'never')));

    // DDP is the one-process run with the whole batch: 2 ranks x 2 sequences train the adapter 1 process x 4 does
    // (each step's rows split between the ranks, not repeated; gradients averaged over every target of the step)
    const alone = join(root, 'adapter-llama-one-process');
    const one = await run(PYTHON, [RECIPE, '--data', data, '--model', llama, '--out', alone, '--steps', '30', '--batch', '4', '--lr', '1e-2', '--warmup', '2', '--seed', '3']);
    assert.equal(one.code, 0, one.stderr);
    const [ddp, single] = [adapter, alone].map((d) => adapterTensors(d));
    assert.deepEqual([...ddp!.keys()].sort(), [...single!.keys()].sort());
    let diff = 0;
    for (const [name, values] of ddp!) diff = Math.max(diff, maxAbsDiff(Float64Array.from(values), Float64Array.from(single!.get(name)!)));
    assert.ok(diff <= 1e-4, `2 processes x 2 vs 1 process x 4: max |Δ| of the adapter tensors ${diff}`);
  });

  it('trains a Qwen2 checkpoint (biases, tied embeddings, GQA, RoPE scaling; F16, sharded) in one process; Kiln matches PyTorch with it', async () => {
    const data = join(root, 'export-qwen2');
    assert.equal((await exportTo(qwen2, data, '--warmup', '3')).code, 0); // the recipe takes Kiln's schedule from the manifest
    assert.deepEqual(
      readManifest(data).base_model.weights.map((w) => w.file),
      ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'],
    );
    const otherTokenizer = join(root, 'qwen2-other-tokenizer');
    cpSync(qwen2, otherTokenizer, { recursive: true });
    writeFileSync(
      join(otherTokenizer, 'tokenizer_config.json'),
      JSON.stringify({ ...JSON.parse(readFileSync(join(qwen2, 'tokenizer_config.json'), 'utf8')), model_max_length: 7 }),
    );
    const mismatch = await run(PYTHON, [RECIPE, '--data', data, '--model', otherTokenizer, '--out', join(root, 'never'), '--steps', '1']);
    assert.notEqual(mismatch.code, 0);
    assert.match(mismatch.stderr, /differs from the tokenizer the dataset was exported with/);
    assert.ok(!existsSync(join(root, 'never')));
    const adapter = join(root, 'adapter-qwen2');
    const targets = 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj';
    const r = await run(PYTHON, [
      RECIPE,
      '--data',
      data,
      '--model',
      qwen2,
      '--out',
      adapter,
      '--steps',
      '6',
      '--batch',
      '2',
      '--lr',
      '1e-2',
      '--targets',
      targets,
      '--rank',
      '4',
      '--alpha',
      '8',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /1 processes, backend gloo/);
    const config = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8'));
    assert.deepEqual([config.r, config.lora_alpha, config.target_modules], [4, 8, targets.split(',')]);
    // the report names every choice the adapter depends on, so it can be trained again
    const { torch_version, python_version, ...training } = JSON.parse(readFileSync(join(adapter, 'training_report.json'), 'utf8')).training;
    assert.deepEqual(training, {
      ...{ rank: 4, alpha: 8, target_modules: targets.split(','), learning_rate: 0.01, warmup: 3, steps: 6, batch_per_process: 2 },
      ...{ sequence_length: Number(SEQ_LEN), seed: 0, packing_seed: readManifest(data).seed, dtype: 'float32', forward: 'own', backend: 'gloo', device: 'cpu' },
    });
    assert.match(`${torch_version} ${python_version}`, /^\d+\.\d+\S* 3\.\d+\.\d+$/);
    const refused = await run(PYTHON, [RECIPE, '--data', data, '--model', qwen2, '--out', adapter, '--steps', '1']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /is not empty; choose another folder or pass --overwrite/);
    const overlapping = await run(PYTHON, [RECIPE, '--data', data, '--model', qwen2, '--out', join(qwen2, 'adapter'), '--overwrite', '--steps', '1']);
    assert.notEqual(overlapping.code, 0);
    assert.match(overlapping.stderr, /overlaps --model/);
    // through a link to their parent, --out is still the export: --overwrite would move it aside and delete it
    symlinkSync(root, join(root, 'link-to-root'));
    const linked = await run(PYTHON, [RECIPE, '--data', data, '--model', qwen2, '--out', join(root, 'link-to-root', 'export-qwen2'), '--overwrite', '--steps', '1']);
    assert.notEqual(linked.code, 0);
    assert.match(linked.stderr, /overlaps --data/);
    assert.ok(existsSync(join(data, 'manifest.json')), 'the export is kept');
    const first = readFileSync(join(adapter, 'adapter_model.safetensors'));
    const again = await run(PYTHON, [
      RECIPE,
      '--data',
      data,
      '--model',
      qwen2,
      '--out',
      adapter,
      '--overwrite',
      '--steps',
      '6',
      '--batch',
      '2',
      '--lr',
      '1e-2',
      '--targets',
      targets,
      '--rank',
      '4',
      '--alpha',
      '8',
      '--seed',
      '5',
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(!first.equals(readFileSync(join(adapter, 'adapter_model.safetensors'))), '--overwrite replaced the adapter');
    assert.deepEqual(
      readdirSync(root).filter((f) => f.startsWith('adapter-qwen2.')),
      [],
      'no temp folder left beside the adapter',
    );
    const tokens = readLines(join(data, 'train.jsonl'))[0]!.input_ids.slice(0, 40);
    await checkAdapterInKiln(qwen2, adapter, tokens);
  });
});

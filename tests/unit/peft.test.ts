// PEFT LoRA adapters: save -> load round trip; logits with an adapter against the independent reference
// forward on weights merged here in plain loops; merged export; bad adapters; the graph cache key.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { expectedTensors, WeightStore } from '../../server/src/model/checkpoint';
import { ModelFileError } from '../../server/src/model/errors';
import { exportMerged } from '../../server/src/model/export/merge';
import { loadLoraAdapter, saveLoraAdapter } from '../../server/src/model/export/peft';
import { LORA_TARGETS, type LoraTarget } from '../../server/src/model/graph/training-graph';
import { MergedWeightSource } from '../../server/src/model/merged-weights';
import { SafetensorsFile, writeSafetensors } from '../../server/src/model/safetensors';
import { loadModel } from '../../server/src/runtime/load-model';
import { modelFileError } from '../helpers/model-file-error';
import { randomNormal, seededRandom } from '../helpers/random';
import { referenceForward } from '../helpers/reference-forward';
import { makeTinyWeights, TINY_LLAMA_GQA, type TinyWeights, writeTinyCheckpoint } from '../helpers/tiny-model';
import { forwardRows, maxAbsDiff, tempDir } from '../helpers/tiny-session';

// GQA: k/v narrower than q, and the MLP wider than d, so every projection has its own [out, in]
const CONFIG = TINY_LLAMA_GQA;
const TOKENS = [5, 17, 250, 3, 99, 42];
const root = tempDir('kiln-peft-');
after(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;
const fresh = (name: string) => join(root, `${name}-${folders++}`);

const base = makeTinyWeights(CONFIG, 11);
const baseDir = join(root, 'base');
writeTinyCheckpoint(baseDir, base);
writeFileSync(join(baseDir, 'tokenizer.json'), '{"model": {"type": "BPE"}, "note": "copied as is"}');
writeFileSync(join(baseDir, 'tokenizer_config.json'), '{"add_bos_token": false}');

interface TestAdapter {
  mode: { rank: number; alpha: number; targets: LoraTarget[] };
  tensors: Map<string, Float32Array>;
  shapes: Map<string, number[]>;
}

/** Random A [r, in] and B [out, r] (B non-zero, so the adapter changes the model) for each target projection. */
function makeAdapter(seed: number, targets: LoraTarget[] = [...LORA_TARGETS], rank = 4, alpha = 8): TestAdapter {
  const rand = seededRandom(seed);
  const tensors = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  for (const t of expectedTensors(CONFIG)) {
    const m = /^(.*\.([a-z]+_proj))\.weight$/.exec(t.name);
    if (!m || !targets.includes(m[2] as LoraTarget)) continue;
    const [out, inDim] = t.shape as [number, number];
    for (const [which, shape] of [
      ['A', [rank, inDim]],
      ['B', [out, rank]],
    ] as const) {
      tensors.set(`${m[1]}.lora_${which}.weight`, randomNormal(rand, shape[0] * shape[1], 0.1));
      shapes.set(`${m[1]}.lora_${which}.weight`, [...shape]);
    }
  }
  return { mode: { rank, alpha, targets }, tensors, shapes };
}

function save(dir: string, a: TestAdapter): string {
  saveLoraAdapter(dir, { baseModel: baseDir, ...a });
  return dir;
}

/** The test's own merge, in plain loops: W[o][i] + scale · Σ_k B[o][k] · A[k][i]. */
function mergeHere(weights: TinyWeights, a: TestAdapter, scale: number): TinyWeights {
  const tensors = new Map(weights.tensors);
  const r = a.mode.rank;
  for (const [name, A] of a.tensors) {
    if (!name.endsWith('.lora_A.weight')) continue;
    const module = name.slice(0, -'.lora_A.weight'.length);
    const B = a.tensors.get(`${module}.lora_B.weight`)!;
    const W = weights.tensors.get(`${module}.weight`)!;
    const inDim = A.length / r;
    const outDim = B.length / r;
    const merged = new Float32Array(W.length);
    for (let o = 0; o < outDim; o++) {
      for (let i = 0; i < inDim; i++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += B[o * r + k]! * A[k * inDim + i]!;
        merged[o * inDim + i] = W[o * inDim + i]! + scale * s;
      }
    }
    tensors.set(`${module}.weight`, merged);
  }
  return { config: weights.config, tensors };
}

const flat = (rows: ArrayLike<number>[]) => Float64Array.from(rows.flatMap((r) => Array.from(r)));

/** Loads (base + optional adapter) on the CPU, runs TOKENS, releases. */
async function run(modelDir: string, cacheDir: string, adapterDir?: string): Promise<{ cacheHit: boolean; logits: Float64Array }> {
  const model = await loadModel(modelDir, { executionProvider: 'cpu', threads: 1, cacheDir, adapterDir });
  try {
    assert.equal(model.adapter?.dir, adapterDir);
    return { cacheHit: model.cacheHit, logits: flat(await forwardRows(model, TOKENS)) };
  } finally {
    await model.session.release();
  }
}

const ADAPTER = makeAdapter(21);
const adapterDir = save(join(root, 'adapter'), ADAPTER);

describe('PEFT adapter files', () => {
  it('save -> load gives back the same tensors and config, in PEFT names and fields', () => {
    const loaded = loadLoraAdapter(adapterDir, CONFIG);
    assert.deepEqual([loaded.rank, loaded.alpha, loaded.scale, loaded.useRslora], [4, 8, 2, false]);
    assert.deepEqual(loaded.targets, LORA_TARGETS);
    assert.equal(loaded.baseModel, baseDir);
    assert.deepEqual([...loaded.tensors.keys()].sort(), [...ADAPTER.tensors.keys()].sort());
    for (const [name, values] of ADAPTER.tensors) assert.deepEqual(loaded.tensors.get(name), values, name);
    const file = join(adapterDir, 'adapter_model.safetensors');
    assert.equal(loaded.hash, createHash('sha256').update(readFileSync(file)).digest('hex'));

    const json = JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8'));
    const fields = {
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 4,
      lora_alpha: 8,
      lora_dropout: 0,
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      use_rslora: false,
      use_dora: false,
      base_model_name_or_path: baseDir,
    };
    for (const [k, v] of Object.entries(fields)) assert.equal(json[k], v, k);
    assert.deepEqual(json.target_modules, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);

    const st = SafetensorsFile.open(file);
    try {
      assert.equal(st.metadata.format, 'pt');
      assert.ok(st.tensors.has('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'));
      assert.deepEqual(st.info('base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight').shape, [CONFIG.numKvHeads * CONFIG.headDim, 4]);
      assert.deepEqual(st.info('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight').shape, [4, CONFIG.intermediateSize]);
      for (const t of st.tensors.values()) assert.equal(t.dtype, 'F32', t.name);
    } finally {
      st.close();
    }
    assert.deepEqual(
      readdirSync(root).filter((n) => n.includes('.tmp-')),
      [],
      'no temp folder left',
    );
  });

  it('LoRA on the top layers records them in layers_to_transform (null when every layer is adapted), and loads back', () => {
    const topOnly = makeAdapter(5, ['q_proj', 'v_proj']);
    const top = CONFIG.numLayers - 1;
    for (const name of [...topOnly.tensors.keys()]) {
      if (!name.startsWith(`model.layers.${top}.`)) {
        topOnly.tensors.delete(name);
        topOnly.shapes.delete(name);
      }
    }
    const dir = join(root, 'adapter-top');
    saveLoraAdapter(dir, { baseModel: baseDir, ...topOnly, mode: { ...topOnly.mode, layers: 1 } });
    const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    assert.deepEqual(config.layers_to_transform, [top]);
    assert.equal(JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8')).layers_to_transform, null);
    assert.deepEqual([...loadLoraAdapter(dir, CONFIG).tensors.keys()].sort(), [...topOnly.tensors.keys()].sort());
  });

  it('saving over an adapter folder replaces both files and keeps the others', () => {
    const dir = save(fresh('resave'), makeAdapter(1, ['q_proj'], 2, 4));
    writeFileSync(join(dir, 'README.md'), 'kept');
    const next = makeAdapter(2, ['v_proj', 'up_proj'], 8, 16);
    save(dir, next);
    const loaded = loadLoraAdapter(dir, CONFIG);
    assert.deepEqual([loaded.rank, loaded.alpha, loaded.targets], [8, 16, ['v_proj', 'up_proj']]);
    assert.deepEqual([...loaded.tensors.keys()].sort(), [...next.tensors.keys()].sort());
    assert.equal(readFileSync(join(dir, 'README.md'), 'utf8'), 'kept');
  });

  it('merges adapted projections one tensor at a time and leaves the rest unchanged; use_rslora scales by alpha/√r', () => {
    const partial = makeAdapter(3, ['q_proj', 'down_proj']);
    const dir = save(fresh('rslora'), partial);
    const cfgFile = join(dir, 'adapter_config.json');
    writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(readFileSync(cfgFile, 'utf8')), use_rslora: true }));
    const adapter = loadLoraAdapter(dir, CONFIG);
    assert.equal(adapter.useRslora, true);
    assert.equal(adapter.scale, 8 / Math.sqrt(4));
    const expected = mergeHere(base, partial, 8 / Math.sqrt(4));
    const store = WeightStore.open(baseDir);
    try {
      const merged = new MergedWeightSource(store, adapter);
      for (const name of ['model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight', 'model.layers.0.self_attn.k_proj.weight', 'lm_head.weight']) {
        assert.deepEqual(merged.readFloat32(name), base.tensors.get(name), `${name} unchanged`);
      }
      for (const name of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.1.mlp.down_proj.weight']) {
        assert.ok(maxAbsDiff(merged.readFloat32(name), expected.tensors.get(name)!) <= 1e-6, name);
        assert.ok(maxAbsDiff(merged.readFloat32(name), base.tensors.get(name)!) > 1e-3, `${name} changed`);
      }
    } finally {
      store.close();
    }
  });
});

describe('models with a PEFT adapter', () => {
  const cacheDir = join(root, 'cache');
  let adapted: Float64Array | undefined;

  it('loadModel with adapterDir matches the reference forward on weights merged in plain loops', async () => {
    const { logits } = await run(baseDir, cacheDir, adapterDir);
    const diff = maxAbsDiff(logits, flat(referenceForward(mergeHere(base, ADAPTER, 8 / 4), TOKENS)));
    assert.ok(diff <= 1e-4, `max abs diff to the reference on merged weights: ${diff}`);
    const baseOnly = await run(baseDir, cacheDir);
    assert.ok(maxAbsDiff(logits, baseOnly.logits) > 1e-2, 'the adapter changes the logits');
    adapted = logits;
  });

  it('exportMerged writes a checkpoint whose logits equal base + adapter', async () => {
    const out = fresh('merged');
    const result = exportMerged(baseDir, adapterDir, out);
    assert.deepEqual(result.copiedFiles, ['tokenizer.json', 'tokenizer_config.json']);
    assert.equal(result.mergedTensors, CONFIG.numLayers * LORA_TARGETS.length);
    for (const f of result.copiedFiles) assert.deepEqual(readFileSync(join(out, f)), readFileSync(join(baseDir, f)), f);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    assert.equal(config.torch_dtype, 'float32');
    assert.equal(config.num_key_value_heads, CONFIG.numKvHeads);
    const st = SafetensorsFile.open(join(out, 'model.safetensors'));
    assert.ok([...st.tensors.values()].every((t) => t.dtype === 'F32'));
    st.close();

    const merged = await run(out, join(root, 'cache-merged'));
    const diff = maxAbsDiff(merged.logits, adapted ?? (await run(baseDir, cacheDir, adapterDir)).logits);
    assert.ok(diff <= 1e-5, `merged checkpoint vs base + adapter: ${diff}`);
    assert.throws(() => exportMerged(baseDir, adapterDir, out), modelFileError(out, /not empty/));
  });

  it('caches one graph per adapter: the same adapter is a hit, another one (or another lora_alpha) a rebuild', async () => {
    const cache = join(root, 'cache-adapters');
    const other = save(fresh('other'), makeAdapter(22));
    assert.equal((await run(baseDir, cache, adapterDir)).cacheHit, false);
    assert.equal((await run(baseDir, cache, adapterDir)).cacheHit, true);
    assert.equal((await run(baseDir, cache, other)).cacheHit, false);
    assert.equal((await run(baseDir, cache, adapterDir)).cacheHit, true);
    // an adapter graph is written beside its base graph and shares its weights: the base was built with it
    assert.equal((await run(baseDir, cache)).cacheHit, true, 'the base alone is the graph the adapters share');

    const alpha = save(fresh('alpha'), { ...ADAPTER, mode: { ...ADAPTER.mode, alpha: 16 } });
    const rebuilt = await run(baseDir, cache, alpha);
    assert.equal(rebuilt.cacheHit, false, 'same tensors, different lora_alpha: a new graph');
    const diff = maxAbsDiff(rebuilt.logits, flat(referenceForward(mergeHere(base, ADAPTER, 16 / 4), TOKENS)));
    assert.ok(diff <= 1e-4, `alpha 16 vs reference: ${diff}`);
  });
});

describe('bad adapters', () => {
  const A0 = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';
  const B0 = 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight';
  const q = CONFIG.numHeads * CONFIG.headDim;
  const d = CONFIG.hiddenSize;
  /** Replaces adapter_model.safetensors with these tensors (r = 4 in the config). */
  const tensorsFile = (list: [string, number[]][]) => (dir: string) =>
    writeSafetensors(
      join(dir, 'adapter_model.safetensors'),
      list.map(([name, shape]) => ({ name, shape, dtype: 'F32' as const, data: new Float32Array(shape[0]! * shape[1]!) })),
    );
  const editConfig = (patch: object) => (dir: string) => {
    const file = join(dir, 'adapter_config.json');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), ...patch }));
  };
  const CASES: [string, string, (dir: string) => void, RegExp][] = [
    ['adapter_config.json missing', 'adapter_config.json', (dir) => unlinkSync(join(dir, 'adapter_config.json')), /not found.*adapter_config\.json/],
    ['adapter_config.json not JSON', 'adapter_config.json', (dir) => writeFileSync(join(dir, 'adapter_config.json'), '{"r": 4,'), /invalid JSON/],
    ['another PEFT method', 'adapter_config.json', editConfig({ peft_type: 'IA3' }), /peft_type "IA3" is not supported/],
    ['DoRA', 'adapter_config.json', editConfig({ use_dora: true }), /use_dora=true is not supported/],
    ['an absurd lora_alpha (Inf logits)', 'adapter_config.json', editConfig({ lora_alpha: 1e308 }), /"lora_alpha" must be a number from -1000000 to 1000000, got 1e\+308/],
    ['an absurd rank', 'adapter_config.json', editConfig({ r: 1e9 }), /"r" must be an integer from 1 to 65536, got 1000000000/],
    ['modules_to_save', 'adapter_config.json', editConfig({ modules_to_save: ['lm_head'] }), /modules_to_save=.* is not supported/],
    [
      'a PiSSA adapter (base changed too)',
      'adapter_config.json',
      editConfig({ init_lora_weights: 'pissa_niter_4' }),
      /init_lora_weights="pissa_niter_4" is not supported .*path_initial_model_for_weight_conversion/,
    ],
    ['adapter_model.safetensors missing', 'adapter_model.safetensors', (dir) => unlinkSync(join(dir, 'adapter_model.safetensors')), /not found/],
    ['adapter_model.safetensors truncated', 'adapter_model.safetensors', (dir) => truncateSync(join(dir, 'adapter_model.safetensors'), 4000), /truncated/],
    [
      'lora_A of the wrong rank',
      'adapter_model.safetensors',
      tensorsFile([
        [A0, [3, d]],
        [B0, [q, 4]],
      ]),
      /"[^"]*q_proj\.lora_A\.weight" has shape \[3,64\] but r=4 .* imply \[4,64\]/,
    ],
    [
      'lora_B of the wrong width',
      'adapter_model.safetensors',
      tensorsFile([
        [A0, [4, d]],
        [B0, [d + 1, 4]],
      ]),
      /has shape \[65,4\] but .* imply \[64,4\]/,
    ],
    ['an unknown module', 'adapter_model.safetensors', tensorsFile([[A0.replace('q_proj', 'qkv_proj'), [4, d]]]), /unknown tensor .*qkv_proj/],
    ['a layer the base does not have', 'adapter_model.safetensors', tensorsFile([[A0.replace('layers.0', 'layers.7'), [4, d]]]), /unknown tensor .*layers\.7/],
    ['a name without the PEFT prefix', 'adapter_model.safetensors', tensorsFile([[A0.replace('base_model.model.', ''), [4, d]]]), /unknown tensor/],
    ['lora_A without its lora_B', 'adapter_model.safetensors', tensorsFile([[A0, [4, d]]]), /q_proj\.lora_B\.weight" is missing/],
    ['a module target_modules does not name', 'adapter_model.safetensors', editConfig({ target_modules: ['v_proj'] }), /target_modules \(v_proj\) does not name/],
  ];
  for (const [what, file, damage, problem] of CASES) {
    it(`${what}: a ModelFileError naming ${file}`, () => {
      const dir = save(fresh('bad'), ADAPTER);
      damage(dir);
      assert.throws(() => loadLoraAdapter(dir, CONFIG), modelFileError(join(dir, file), problem));
    });
  }

  it('loadModel and exportMerged reject a bad adapter with the same error, building and writing nothing', async () => {
    const dir = save(fresh('bad'), ADAPTER);
    unlinkSync(join(dir, 'adapter_config.json'));
    const cache = fresh('cache');
    await assert.rejects(
      loadModel(baseDir, { executionProvider: 'cpu', threads: 1, cacheDir: cache, adapterDir: dir }),
      modelFileError(join(dir, 'adapter_config.json'), /not found/),
    );
    assert.equal(existsSync(join(cache, 'graphs')), false);
    const out = fresh('out');
    assert.throws(
      () => exportMerged(baseDir, dir, out),
      (err) => err instanceof ModelFileError,
    );
    assert.equal(existsSync(out), false);
    assert.throws(() => loadLoraAdapter(join(root, 'nowhere'), CONFIG), modelFileError(join(root, 'nowhere'), /adapter folder does not exist/));
  });
});

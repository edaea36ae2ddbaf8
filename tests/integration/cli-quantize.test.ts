// `kiln model quantize` on a seeded tiny code model: the quality cost measured against the unquantized
// model on held-out files, the record merged into kiln.json (other fields kept), the recommendation
// following the bound, and `auto` loading the recommended precision on the CPU only.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readTrainedFacts } from '../../server/src/completion/completion-model';
import { ModelFileError } from '../../server/src/model/errors';
import { saveLoraAdapter } from '../../server/src/model/export/peft';
import { loadWithQuantization } from '../../server/src/runtime/quantization-choice';
import { ensureBuilt, runKiln as kiln } from '../helpers/built-cli';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-cli-quantize-');
const modelDir = join(root, 'model');
const heldOut = join(root, 'held-out');
const cache = join(root, 'cache');
const onCpu = ['--ep', 'cpu', '--threads', '1', '--cache', cache];

before(() => {
  ensureBuilt();
  writeTinyCodeModel(modelDir);
  mkdirSync(heldOut, { recursive: true });
  writeFileSync(
    join(heldOut, 'queue.ts'),
    'export class Queue<T> {\n  private items: T[] = [];\n  push(item: T): void {\n    this.items.push(item);\n  }\n  shift(): T | undefined {\n    return this.items.shift();\n  }\n}\n',
  );
  writeFileSync(join(heldOut, 'names.py'), 'def names(values):\n    result = sorted(values)\n    return [v.upper() for v in result]\n');
});
after(() => rmSync(root, { recursive: true, force: true }));

interface QuantizeJson {
  rows: { precision: string; weightBytes: number; report?: { validationLoss: number }; relativeLossIncrease?: number }[];
  recommended?: string;
}

describe('kiln model quantize', () => {
  it('measures int4 and int8 against fp32 and records the smallest precision within the bound', async () => {
    const r = await kiln('model', 'quantize', modelDir, '--eval', heldOut, '--max-lines', '4', '--bound', '0.5', '--json', ...onCpu);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as QuantizeJson;
    assert.deepEqual(
      out.rows.map((x) => x.precision),
      ['none', 'int4', 'int8'],
    );
    const [none, int4, int8] = out.rows as [QuantizeJson['rows'][0], QuantizeJson['rows'][0], QuantizeJson['rows'][0]];
    assert.equal(none.relativeLossIncrease, 0);
    assert.ok(int4.weightBytes < int8.weightBytes && int8.weightBytes < none.weightBytes, 'int4 < int8 < fp32 bytes');
    // random weights: quantization moves the loss, but far less than the generous bound
    assert.ok(Math.abs(int4.relativeLossIncrease!) < 0.5, `int4 ${int4.relativeLossIncrease}`);
    assert.equal(out.recommended, 'int4');
    const facts = readTrainedFacts(modelDir);
    assert.deepEqual(facts.fimOrders, ['spm'], 'the fields already in kiln.json are kept');
    assert.equal(facts.quantization?.recommended, 'int4');
    assert.equal(facts.quantization?.maxRelativeLossIncrease, 0.5);
    assert.equal(facts.quantization?.measured.int4?.validationLoss, int4.report!.validationLoss);
  });

  it('recommends none when no precision is within a zero bound that int4 cannot meet', async () => {
    const r = await kiln('model', 'quantize', modelDir, '--eval', heldOut, '--max-lines', '2', '--bits', '4', '--bound', '0', '--no-record', '--json', ...onCpu);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as QuantizeJson;
    const int4 = out.rows.find((x) => x.precision === 'int4')!;
    assert.equal(out.recommended, int4.relativeLossIncrease! <= 0 ? 'int4' : 'none');
    assert.equal(readTrainedFacts(modelDir).quantization?.recommended, 'int4', '--no-record leaves kiln.json as it was');
  });

  it('--adapter measures the adapter on each precision of the base, and never records it', async () => {
    const adapterDir = join(root, 'quantize-adapter');
    const d = 64;
    const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);
    const name = (which: string) => `model.layers.0.self_attn.q_proj.lora_${which}.weight`;
    saveLoraAdapter(adapterDir, {
      baseModel: modelDir,
      mode: { rank: 2, alpha: 16, targets: ['q_proj'] },
      tensors: new Map([
        [name('A'), rand(2 * d, 1)],
        [name('B'), rand(d * 2, 2)],
      ]),
      shapes: new Map([
        [name('A'), [2, d]],
        [name('B'), [d, 2]],
      ]),
    });
    const recordBefore = readFileSync(join(modelDir, 'kiln.json'), 'utf8');
    const plain = await kiln('model', 'quantize', modelDir, '--eval', heldOut, '--max-lines', '2', '--bits', '8', '--no-record', '--json', ...onCpu);
    const adapted = await kiln('model', 'quantize', modelDir, '--eval', heldOut, '--max-lines', '2', '--bits', '8', '--adapter', adapterDir, '--json', ...onCpu);
    assert.equal(adapted.code, 0, adapted.stderr);
    const [p, a] = [JSON.parse(plain.stdout), JSON.parse(adapted.stdout)] as [QuantizeJson, QuantizeJson & { adapter: string }];
    assert.equal(a.adapter, adapterDir);
    assert.deepEqual(
      a.rows.map((x) => x.precision),
      ['none', 'int8'],
    );
    for (const [i, row] of a.rows.entries()) {
      assert.notEqual(row.report!.validationLoss, p.rows[i]!.report!.validationLoss, `${row.precision}: the adapter changes the loss`);
      assert.ok(row.weightBytes > p.rows[i]!.weightBytes, `${row.precision}: the base's weights plus the factors`);
    }
    assert.equal(readFileSync(join(modelDir, 'kiln.json'), 'utf8'), recordBefore, "kiln.json is the base model's record");
  });

  it('without --eval builds the graphs and reports their sizes; bad flags exit 2', async () => {
    const r = await kiln('model', 'quantize', modelDir, '--bits', '8', ...onCpu);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^none .*MiB\nint8 .*MiB$/m);
    assert.equal((await kiln('model', 'quantize', modelDir, '--bits', '3', ...onCpu)).code, 2);
    assert.equal((await kiln('model', 'quantize', modelDir, '--bound', '2', ...onCpu)).code, 2);
  });
});

describe('kiln.quantization auto', () => {
  it('loads the recommended precision on the CPU; explicit settings win', async () => {
    const options = { executionProvider: 'cpu' as const, threads: 1, cacheDir: cache };
    const auto = await loadWithQuantization(modelDir, 'auto', 'int4', options);
    assert.equal(auto.quantization, 4);
    const none = await loadWithQuantization(modelDir, 'none', 'int4', options);
    assert.equal(none.quantization, undefined);
    assert.ok(auto.session.weightBytes < none.session.weightBytes / 2);
    const unmeasured = await loadWithQuantization(modelDir, 'auto', undefined, options);
    assert.equal(unmeasured.quantization, undefined, 'no measurement, no quantization');
    for (const m of [auto, none, unmeasured]) await m.session.release();
  });

  it('an adapter runs on the recommended quantized base (side products on the int4 graph, in its folder)', async () => {
    const adapterDir = join(root, 'adapter');
    const d = 64;
    const tensors = new Map([
      ['model.layers.0.self_attn.q_proj.lora_A.weight', new Float32Array(2 * d).fill(0.01)],
      ['model.layers.0.self_attn.q_proj.lora_B.weight', new Float32Array(d * 2).fill(0.01)],
    ]);
    const shapes = new Map([
      ['model.layers.0.self_attn.q_proj.lora_A.weight', [2, d]],
      ['model.layers.0.self_attn.q_proj.lora_B.weight', [d, 2]],
    ]);
    saveLoraAdapter(adapterDir, { baseModel: modelDir, mode: { rank: 2, alpha: 4, targets: ['q_proj'] }, tensors, shapes });
    const adapted = await loadWithQuantization(modelDir, 'auto', 'int4', { executionProvider: 'cpu', threads: 1, cacheDir: cache, adapterDir });
    assert.equal(adapted.quantization, 4);
    const base = await loadWithQuantization(modelDir, 'auto', 'int4', { executionProvider: 'cpu', threads: 1, cacheDir: cache });
    assert.equal(adapted.graphDir, base.graphDir, "the adapter graph sits in the int4 base graph's folder");
    assert.equal(adapted.session.weightBytes, base.session.weightBytes + 2 * 2 * d * 4, 'the base weights plus the two factors');
    await adapted.session.release();
    await base.session.release();
    const explicit = await loadWithQuantization(modelDir, 'none', 'int4', { executionProvider: 'cpu', threads: 1, cacheDir: cache, adapterDir });
    assert.equal(explicit.quantization, undefined, 'an explicit setting still applies');
    await explicit.session.release();
  });

  it('a kiln.json with an unknown recommendation is a model file error', () => {
    const dir = join(root, 'bad');
    writeTinyCodeModel(dir);
    writeFileSync(join(dir, 'kiln.json'), JSON.stringify({ quantization: { recommended: 'int3' } }));
    assert.throws(
      () => readTrainedFacts(dir),
      (err: unknown) => err instanceof ModelFileError && /quantization\.recommended/.test(err.message),
    );
    assert.match(readFileSync(join(dir, 'kiln.json'), 'utf8'), /int3/, 'the file is left as it was');
  });
});

// The built CLI's `kiln eval <dir>` on a seeded tiny code model: a JSON report over the folder's
// source files (dependency folders and binaries skipped), with a LoRA adapter merged, against the
// baselines and against a second model on the same lines, a text table, and the exit codes: 2 for
// bad flags, 1 for a missing adapter or a folder with no source files.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { saveLoraAdapter } from '../../server/src/model/export/peft';
import type { EvalReport } from '../../server/src/evaluation/evaluate';
import type { PairedDifference } from '../../server/src/evaluation/paired-difference';
import { ensureBuilt, runKiln as kiln } from '../helpers/built-cli';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { TINY_LLAMA } from '../helpers/tiny-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-cli-eval-');
const modelDir = join(root, 'model');
const src = join(root, 'src');
const onCpu = ['--model', modelDir, '--ep', 'cpu', '--threads', '1', '--cache', join(root, 'cache')];

/** A rank-2 LoRA adapter on every layer's q_proj with fixed non-zero values: it changes the model. */
function writeAdapter(dir: string): void {
  const d = TINY_LLAMA.hiddenSize;
  const rank = 2;
  const fill = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => (((i * k) % 11) - 5) / 10);
  const tensors = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  for (let l = 0; l < TINY_LLAMA.numLayers; l++) {
    const module = `model.layers.${l}.self_attn.q_proj`;
    tensors.set(`${module}.lora_A.weight`, fill(rank * d, 7)).set(`${module}.lora_B.weight`, fill(d * rank, 3));
    shapes.set(`${module}.lora_A.weight`, [rank, d]).set(`${module}.lora_B.weight`, [d, rank]);
  }
  saveLoraAdapter(dir, { baseModel: modelDir, mode: { rank, alpha: 4, targets: ['q_proj'] }, tensors, shapes });
}

function write(path: string, text: string | Buffer): void {
  mkdirSync(join(src, path, '..'), { recursive: true });
  writeFileSync(join(src, path), text);
}

before(() => {
  ensureBuilt();
  writeTinyCodeModel(modelDir);
  writeAdapter(join(root, 'adapter'));
  write('math.ts', 'export function add(a: number, b: number): number {\n  return a + b;\n}\n\nexport const zero = add(0, 0);\n');
  write('lib/names.py', 'def names():\n    values = ["alpha", "beta"]\n    return sorted(values)\n');
  write('node_modules/dep/index.js', 'module.exports = function dependency() { return 1; };\n');
  write('README.md', 'Not code: the evaluation skips prose.\n');
  write('blob.ts', Buffer.from([0x65, 0x78, 0x70, 0, 1, 2, 3, 0x0a]));
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('kiln eval', () => {
  it('--json prints the report over the source files', async () => {
    const r = await kiln('eval', src, '--json', '--max-lines', '4', '--seed', '2', ...onCpu);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as EvalReport;
    assert.equal(report.files, 2, 'math.ts and lib/names.py');
    assert.equal(report.lines, 4);
    assert.equal(report.samples.length, 4);
    for (const s of report.samples) assert.ok(['math.ts', 'lib/names.py'].includes(s.path), s.path);
    assert.ok(report.exactMatch >= 0 && report.exactMatch <= 1);
    assert.ok(report.editSimilarity >= 0 && report.editSimilarity <= 1);
    assert.ok(Number.isFinite(report.validationLoss) && report.validationLoss > 0);
    assert.ok(report.tokens > 0);
  });

  it('--baselines scores both baselines on the same lines, with the paired difference', async () => {
    const r = await kiln('eval', src, '--json', '--max-lines', '6', '--baselines', src, ...onCpu);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as EvalReport & {
      baselines: Record<'previousLine' | 'ngram', { exactMatch: number; editSimilarity: number; modelMinusBaseline: PairedDifference }>;
    };
    for (const b of [out.baselines.previousLine, out.baselines.ngram]) {
      const d = b.modelMinusBaseline;
      assert.equal(d.lines, out.lines);
      assert.ok(Math.abs(d.editSimilarity.mean - (out.editSimilarity - b.editSimilarity)) < 1e-9, 'paired mean = difference of the means');
      assert.ok(Math.abs(d.exactMatch.mean - (out.exactMatch - b.exactMatch)) < 1e-9);
      assert.ok(d.editSimilarity.low <= d.editSimilarity.mean && d.editSimilarity.mean <= d.editSimilarity.high);
    }
    const table = await kiln('eval', src, '--max-lines', '6', '--baselines', src, ...onCpu);
    assert.match(table.stdout, /^ {2}previous line +exact [+-]\d+\.\d \[[^\]]+\] points, edit sim [+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]$/m);
  });

  it('--adapter evaluates the model with the adapter merged', async () => {
    const common = ['eval', src, '--json', '--max-lines', '0', ...onCpu];
    const base = JSON.parse((await kiln(...common)).stdout) as EvalReport;
    const r = await kiln(...common, '--adapter', join(root, 'adapter'));
    assert.equal(r.code, 0, r.stderr);
    const tuned = JSON.parse(r.stdout) as EvalReport;
    assert.equal(tuned.tokens, base.tokens);
    assert.ok(Number.isFinite(tuned.validationLoss) && tuned.validationLoss !== base.validationLoss, `${tuned.validationLoss} vs ${base.validationLoss}`);
    const missing = await kiln(...common, '--adapter', join(root, 'no-adapter'));
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trimEnd().split('\n').length, 1, missing.stderr);
    assert.match(missing.stderr, /^kiln eval: .*no-adapter/);
  });

  it('--compare scores a second model on the same lines: itself differs by zero, the base differs from the adapted model by the difference of their means', async () => {
    type Compared = EvalReport & { compared: { model: string; report: EvalReport; modelMinusCompared: PairedDifference } };
    const common = ['eval', src, '--json', '--max-lines', '6', ...onCpu];
    const self = await kiln(...common, '--compare', modelDir);
    assert.equal(self.code, 0, self.stderr);
    const same = JSON.parse(self.stdout) as Compared;
    assert.equal(same.compared.model, modelDir);
    assert.deepEqual(same.compared.report.samples, same.samples, 'the same lines, the same answers');
    assert.deepEqual(same.compared.modelMinusCompared.editSimilarity, { mean: 0, low: 0, high: 0 });
    assert.equal(same.compared.modelMinusCompared.lines, same.lines);

    const base = JSON.parse((await kiln(...common)).stdout) as EvalReport;
    const r = await kiln(...common, '--adapter', join(root, 'adapter'), '--compare', modelDir);
    assert.equal(r.code, 0, r.stderr);
    const tuned = JSON.parse(r.stdout) as Compared;
    assert.equal(tuned.compared.report.validationLoss, base.validationLoss, 'the compared model is loaded without the adapter');
    assert.notEqual(tuned.validationLoss, base.validationLoss);
    const d = tuned.compared.modelMinusCompared;
    assert.ok(Math.abs(d.editSimilarity.mean - (tuned.editSimilarity - base.editSimilarity)) < 1e-9, 'paired mean = difference of the means');
    assert.ok(Math.abs(d.exactMatch.mean - (tuned.exactMatch - base.exactMatch)) < 1e-9);

    const table = await kiln('eval', src, '--max-lines', '6', '--compare', modelDir, ...onCpu);
    assert.match(table.stdout, /^model minus compared, same lines \(mean \[95% interval\]\): exact [+-]0\.0 \[[^\]]+\] points, edit sim [+-]0\.000 \[[^\]]+\], loss [+-]0\.0000$/m);
    const missing = await kiln(...common, '--compare', join(root, 'no-model'));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^kiln eval: .*no-model/);
    assert.equal(missing.stderr.trimEnd().split('\n').length, 1, missing.stderr);
  });

  it('--workspace scores the same lines with and without context, with the paired difference and each source switched off', async () => {
    const ws = join(root, 'ws');
    const put = (path: string, text: string) => {
      mkdirSync(join(ws, path, '..'), { recursive: true });
      writeFileSync(join(ws, path), text);
    };
    put(
      'held/report.ts',
      "import { formatTotal } from '../src/format';\n\nexport function report(orders: Order[]): string {\n  const sum = orders.reduce((a, o) => a + o.amount, 0);\n  return formatTotal(orders, 'EUR');\n}\n",
    );
    put(
      'src/format.ts',
      'export function formatTotal(orders: Order[], currency: string): string {\n  const sum = orders.reduce((a, o) => a + o.amount, 0);\n  return sum.toFixed(2) + currency;\n}\n',
    );
    const plain = await kiln('eval', join(ws, 'held'), '--json', '--max-lines', '3', ...onCpu);
    const r = await kiln('eval', join(ws, 'held'), '--json', '--max-lines', '3', '--workspace', ws, ...onCpu);
    assert.equal(r.code, 0, r.stderr);
    type WithContext = EvalReport & {
      context: {
        sources: string[];
        snippetLines: Record<string, number>;
        none: { exactMatch: number; editSimilarity: number };
        contextMinusNone: PairedDifference;
        withoutSource: Record<string, unknown>;
      };
    };
    const report = JSON.parse(r.stdout) as WithContext;
    const before = JSON.parse(plain.stdout) as EvalReport;
    assert.equal(report.lines, 3);
    assert.deepEqual(report.context.sources, ['imports', 'edits', 'viewed', 'similar']);
    assert.ok((report.context.snippetLines.imports ?? 0) > 0 && (report.context.snippetLines.similar ?? 0) > 0, JSON.stringify(report.context.snippetLines));
    assert.equal(report.context.contextMinusNone.lines, 3);
    assert.deepEqual(
      [report.context.none.exactMatch, report.context.none.editSimilarity],
      [before.exactMatch, before.editSimilarity],
      'the run without context is the plain evaluation',
    );
    assert.ok(Math.abs(report.context.contextMinusNone.editSimilarity.mean - (report.editSimilarity - before.editSimilarity)) < 1e-9, 'paired on the same lines');
    assert.deepEqual(Object.keys(report.context.withoutSource).sort(), ['imports', 'similar'], 'each source that gave snippets, switched off in turn');
    // the same model compared without context: its difference is exactly context minus none
    const vsBare = await kiln('eval', join(ws, 'held'), '--json', '--max-lines', '3', '--workspace', ws, '--compare', modelDir, '--compare-context', 'none', ...onCpu);
    assert.equal(vsBare.code, 0, vsBare.stderr);
    const compared = (JSON.parse(vsBare.stdout) as WithContext & { compared: { modelMinusCompared: PairedDifference } }).compared;
    assert.deepEqual(compared.modelMinusCompared, report.context.contextMinusNone);
    const none = await kiln('eval', join(ws, 'held'), '--json', '--max-lines', '3', '--workspace', ws, '--context', 'none', ...onCpu);
    const off = JSON.parse(none.stdout) as WithContext;
    assert.equal(off.context, undefined);
    assert.deepEqual([off.exactMatch, off.editSimilarity], [before.exactMatch, before.editSimilarity]);
  });

  it('prints a table without --json', async () => {
    const r = await kiln('eval', src, '--max-lines', '2', ...onCpu);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^files {12}2$/m);
    assert.match(r.stdout, /^lines {12}2$/m);
    assert.match(r.stdout, /^exact match {6}\d+\.\d%$/m);
    assert.match(r.stdout, /^validation loss {2}\d+\.\d{4} nats\/token over \d+ tokens$/m);
  });

  it('exits 2 with the usage for bad flags', async () => {
    for (const args of [['--max-lines', 'many'], ['--bogus'], ['--adapter'], ['--loss-window', '1'], ['--context', 'all'], ['--compare-context', 'none'], []]) {
      const r = await kiln('eval', ...(args.length ? [src] : []), ...args, ...onCpu);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^kiln eval: [\s\S]+\nusage: kiln eval <dir>/);
      assert.equal(r.stdout, '');
    }
  });

  it('exits 1 with one line for a folder with no source files', async () => {
    const empty = join(root, 'empty');
    mkdirSync(empty);
    const r = await kiln('eval', empty, ...onCpu);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `kiln eval: no source files to evaluate under ${empty}\n`);
  });
});

// The built CLI's `kiln finetune` on a tiny repository a tiny model can learn by heart, in full and
// LoRA mode: the training loss falls below a stated bound, next-line exact match on the held-out
// files rises, the output is a model folder (full) or a PEFT adapter (LoRA), and `kiln eval` on the
// held-out files with that output reproduces the "after" figures the fine-tune reported.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { SafetensorsFile } from '../../server/src/model/safetensors';
import type { EvalReport } from '../../server/src/evaluation/evaluate';
import type { FineTuneResult } from '../../server/src/finetune/fine-tune';
import { finetuneFlags, parseResult, stepLosses, writeOverfitModel, writeOverfitRepo } from '../fixtures/overfit-repo';
import { ensureBuilt, runKiln } from '../helpers/built-cli';
import { TINY_LLAMA } from '../helpers/tiny-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-finetune-overfit-');
const repo = join(root, 'repo');
const modelDir = join(root, 'model');
const cacheDir = join(root, 'cache');

/**
 * The bound on the training loss at the end (mean of the last 5 steps), in nats per token. The
 * seeded random model starts near 12.6 nats, and guessing uniformly over the 400-token vocabulary
 * would score ln 400 ≈ 6.0; a model that has learnt the six shared lines scores well under 0.5
 * (0.27 full, 0.28 LoRA when written: what remains is mostly each file's header number and where
 * the FIM examples were cut).
 */
const TRAINING_LOSS_BOUND = 0.5;
/** Full-parameter training needs more steps than LoRA (at a lower peak rate) to pass the bound with room. */
const STEPS = { full: 75, lora: 50 };
const EVAL_LINES = 30;
const TARGETS = 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj';

interface Run {
  steps: number;
  result: FineTuneResult;
  losses: { step: number; loss: number }[];
}

async function finetune(out: string, steps: number, ...flags: string[]): Promise<Run> {
  const r = await runKiln(
    'finetune',
    repo,
    '--out',
    out,
    '--steps',
    String(steps),
    '--eval-every',
    '25',
    '--eval-lines',
    String(EVAL_LINES),
    // no context: `kiln eval` below reproduces "after" on a copy of the held-out files outside the
    // workspace, where the block (which names workspace paths) could not be the same
    '--context',
    'none',
    ...finetuneFlags(modelDir, cacheDir),
    ...flags,
  );
  assert.equal(r.code, 0, r.stderr);
  return { steps, result: parseResult(r.stdout), losses: stepLosses(r.stderr) };
}

/** The held-out files, copied under their own paths into a folder of their own for `kiln eval`. */
function heldOutFolder(result: FineTuneResult, dir: string): string {
  const held = result.dataset.files.filter((f) => f.split === 'validation');
  assert.ok(held.length >= 2, `${held.length} held-out files`);
  for (const f of held) {
    mkdirSync(dirname(join(dir, f.path)), { recursive: true });
    copyFileSync(join(repo, f.path), join(dir, f.path));
  }
  return dir;
}

/** The proofs both modes share: the loss bound, the gain, and `kiln eval` agreeing on "after". */
async function assertLearnt(t: TestContext, run: Run, name: string, evalFlags: string[]): Promise<void> {
  const { steps, result, losses } = run;
  assert.equal(result.steps, steps);
  assert.deepEqual(
    losses.map((l) => l.step),
    Array.from({ length: steps }, (_, i) => i + 1),
  );
  const first = losses[0]!.loss;
  const last5 = losses.slice(-5).reduce((a, l) => a + l.loss, 0) / 5;
  assert.ok(first > 6, `the random model starts above ln 400 nats: ${first}`);
  assert.ok(last5 < TRAINING_LOSS_BOUND, `training loss over the last 5 steps ${last5.toFixed(4)} ≥ ${TRAINING_LOSS_BOUND}`);

  const before = result.before!;
  const tuned = result.after!;
  assert.equal(tuned.lines, before.lines);
  assert.ok(tuned.lines >= 20, `${tuned.lines} held-out lines evaluated`);
  assert.ok(tuned.exactMatch > before.exactMatch, `exact match ${before.exactMatch} → ${tuned.exactMatch}`);
  assert.ok(tuned.validationLoss < before.validationLoss / 10, `validation loss ${before.validationLoss} → ${tuned.validationLoss}`);
  // the gain is paired line by line: its means are the differences of the means, and it is real
  const gain = result.gain!;
  assert.equal(gain.lines, tuned.lines);
  assert.ok(Math.abs(gain.exactMatch.mean - (tuned.exactMatch - before.exactMatch)) < 1e-12, `${gain.exactMatch.mean}`);
  assert.ok(Math.abs(gain.editSimilarity.mean - (tuned.editSimilarity - before.editSimilarity)) < 1e-12, `${gain.editSimilarity.mean}`);
  assert.ok(gain.exactMatch.low > 0, `exact match gain ${JSON.stringify(gain.exactMatch)}: its interval is above zero`);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  t.diagnostic(
    `${name}: training loss ${first.toFixed(3)} → ${last5.toFixed(3)} (last 5 steps); held-out exact match ${pct(before.exactMatch)} → ${pct(tuned.exactMatch)} over ${tuned.lines} lines; validation loss ${before.validationLoss.toFixed(3)} → ${tuned.validationLoss.toFixed(3)} nats; ${result.trainSeconds.toFixed(1)} s of training`,
  );

  const held = heldOutFolder(result, join(root, `held-out-${name}`));
  const r = await runKiln('eval', held, '--json', '--max-lines', String(EVAL_LINES), '--seed', '0', '--ep', 'cpu', '--threads', '2', '--cache', cacheDir, ...evalFlags);
  assert.equal(r.code, 0, r.stderr);
  const again = JSON.parse(r.stdout) as EvalReport;
  assert.deepEqual({ files: again.files, lines: again.lines, tokens: again.tokens }, { files: tuned.files, lines: tuned.lines, tokens: tuned.tokens });
  assert.equal(again.exactMatch, tuned.exactMatch);
  assert.ok(Math.abs(again.editSimilarity - tuned.editSimilarity) < 1e-9, `edit similarity ${again.editSimilarity} vs ${tuned.editSimilarity}`);
  assert.ok(Math.abs(again.validationLoss - tuned.validationLoss) < 1e-6, `validation loss ${again.validationLoss} vs ${tuned.validationLoss}`);
}

before(() => {
  ensureBuilt();
  writeOverfitModel(modelDir);
  // the facts a full-parameter result must keep (the model's own 512 positions: nothing else changes)
  const facts = JSON.parse(readFileSync(join(modelDir, 'kiln.json'), 'utf8'));
  writeFileSync(join(modelDir, 'kiln.json'), JSON.stringify({ ...facts, contextTokens: 512, contextFormat: 'repo' }));
  writeOverfitRepo(repo, 40);
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('kiln finetune overfits a tiny repository', () => {
  it('full: the loss falls below the bound, held-out exact match rises, kiln eval --model reproduces "after"', async (t) => {
    const out = join(root, 'full');
    const run = await finetune(out, STEPS.full, '--mode', 'full', '--lr', '2e-3');
    assert.equal(run.result.output, join(out, 'model'));
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'kiln.json']) assert.ok(existsSync(join(out, 'model', f)), f);
    // the trained context and block format carry over; a quantization measurement of the old weights would not
    const kept = JSON.parse(readFileSync(join(out, 'model', 'kiln.json'), 'utf8'));
    assert.deepEqual(
      { contextTokens: kept.contextTokens, contextFormat: kept.contextFormat, quantization: kept.quantization },
      { contextTokens: 512, contextFormat: 'repo', quantization: undefined },
    );
    await assertLearnt(t, run, 'full', ['--model', join(out, 'model')]);
  });

  it('LoRA: the loss falls below the bound, exact match rises, the adapter is PEFT, kiln eval --adapter reproduces "after"', async (t) => {
    const out = join(root, 'lora');
    const rank = 16;
    const run = await finetune(out, STEPS.lora, '--mode', 'lora', '--rank', String(rank), '--alpha', '32', '--targets', TARGETS, '--lr', '1e-2');
    const adapter = join(out, 'adapter');
    assert.equal(run.result.output, adapter);

    const config = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.peft_type, 'LORA');
    assert.equal(config.r, rank);
    assert.equal(config.lora_alpha, 32);
    assert.deepEqual([...(config.target_modules as string[])].sort(), TARGETS.split(',').sort());
    const file = SafetensorsFile.open(join(adapter, 'adapter_model.safetensors'));
    try {
      const names = [...file.tensors.keys()];
      assert.equal(names.length, TINY_LLAMA.numLayers * TARGETS.split(',').length * 2, 'an A and a B for each projection in each layer');
      for (const name of names) {
        const m = /^base_model\.model\.model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.lora_([AB])\.weight$/.exec(name);
        assert.ok(m, `PEFT tensor name: ${name}`);
        const shape = file.info(name).shape;
        assert.equal(shape[m[2] === 'A' ? 0 : 1], rank, `${name} ${JSON.stringify(shape)}: A is [r, in], B is [out, r]`);
      }
    } finally {
      file.close();
    }
    await assertLearnt(t, run, 'lora', ['--model', modelDir, '--adapter', adapter]);
  });
});

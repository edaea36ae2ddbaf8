// The built CLI's `kiln finetune`, interrupted: killed with SIGKILL (the CLI and its training
// process together) after a checkpoint, the same command resumes and ends exactly where an
// uninterrupted run with the same seed ends — same steps, same losses, same adapter tensors, same
// optimizer state. A diverging run that stopped early, run again, trains no further. A corrupt, partial
// or foreign checkpoint is refused with a message naming it (exit 1), and nothing is trained. A run
// under a time budget (--minutes) persists the schedule it fitted; killed and resumed (with any
// budget), it trains exactly that schedule, ending where a run told the fitted step count ends.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SafetensorsFile } from '../../server/src/model/safetensors';
import type { CheckpointMeta } from '../../server/src/training/checkpoint-store';
import { BUDGET_MEASURE_STEPS } from '../../server/src/training/time-budget';
import type { FineTuneResult } from '../../server/src/finetune/fine-tune';
import { finetuneFlags, parseResult, writeOverfitModel, writeOverfitRepo } from '../fixtures/overfit-repo';
import { CLI, type CliRun, ensureBuilt, runKiln } from '../helpers/built-cli';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-finetune-resume-');
const repo = join(root, 'repo');
const modelDir = join(root, 'model');
const cacheDir = join(root, 'cache');
const STEPS = 40;
const EVERY = 5; // validation and checkpoint every 5 steps
const reference = join(root, 'reference');
let uninterrupted: { result: FineTuneResult; stderr: string };
const groups: number[] = []; // process groups started here, killed in `after` whatever happens

/** A fraction of a minute: the tiny model fits a few hundred steps in it. */
const BUDGET_MINUTES = '0.2';
/** A short warm-up (a slow machine fits few steps): a budgeted run's shortest, covering its measured steps. */
const WARMUP = BUDGET_MEASURE_STEPS + 1;

/** The command line of every run: LoRA, 40 steps (or a time budget), a checkpoint every 5, no line evaluation. */
function args(out: string, ...extra: string[]): string[] {
  return baseArgs(out, '--steps', String(STEPS), ...extra);
}

function budgetArgs(out: string, minutes = BUDGET_MINUTES): string[] {
  return baseArgs(out, '--minutes', minutes, '--warmup', String(WARMUP));
}

function baseArgs(out: string, ...extra: string[]): string[] {
  return [
    'finetune',
    repo,
    '--out',
    out,
    ...finetuneFlags(modelDir, cacheDir),
    '--mode',
    'lora',
    '--rank',
    '8',
    '--lr',
    '5e-3',
    '--eval-every',
    String(EVERY),
    '--eval-lines',
    '0',
    ...extra,
  ];
}

async function finetune(out: string, ...extra: string[]): Promise<{ result: FineTuneResult; stderr: string }> {
  return finetuneWith(args(out, ...extra));
}

async function finetuneWith(argv: string[]): Promise<{ result: FineTuneResult; stderr: string }> {
  const r = await runKiln(...argv);
  assert.equal(r.code, 0, r.stderr);
  return { result: parseResult(r.stdout), stderr: r.stderr };
}

/** Progress lines after `step`, without throughput and ETA (which depend on the clock). */
function progressAfter(stderr: string, step: number): string[] {
  return [...stderr.matchAll(/^(?:step (\d+)\/\d+ .*|validation loss \S+ at step (\d+).*)$/gm)]
    .filter((m) => Number(m[1] ?? m[2]) > step)
    .map((m) => m[0].replace(/ +\d+ tok\/s.*$/, ''));
}

function readTensors(path: string): Map<string, Float32Array> {
  const file = SafetensorsFile.open(path);
  try {
    return new Map([...file.tensors.keys()].map((name) => [name, file.readFloat32(name)]));
  } finally {
    file.close();
  }
}

/** The largest |a − b| over two safetensors files holding the same tensors. */
function maxDifference(pathA: string, pathB: string): number {
  const a = readTensors(pathA);
  const b = readTensors(pathB);
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  let max = 0;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    assert.equal(x.length, y.length, name);
    for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i]! - y[i]!));
  }
  return max;
}

/** True while any process of the group is alive. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The checkpoint's loop state, or undefined while none is complete (the swap is by rename). */
function checkpointMeta(out: string): CheckpointMeta | undefined {
  try {
    return JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')) as CheckpointMeta;
  } catch {
    return undefined;
  }
}

/** Starts the run in a process group of its own, waits for a checkpoint `ready` accepts (default: the first), then SIGKILLs the group. */
async function startAndKill(out: string, argv = args(out), ready: (meta: CheckpointMeta) => boolean = () => true): Promise<string> {
  const child = spawn(process.execPath, [CLI, ...argv], { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KILN_DEBUG: '' } });
  groups.push(child.pid!);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = once(child, 'exit');
  const deadline = Date.now() + 60_000;
  for (;;) {
    const meta = checkpointMeta(out);
    if (meta && ready(meta)) break;
    assert.equal(child.exitCode, null, `the run ended before its first checkpoint:\n${stderr}`);
    assert.ok(Date.now() < deadline, `no checkpoint after 60 s:\n${stderr}`);
    await sleep(10);
  }
  process.kill(-child.pid!, 'SIGKILL'); // the CLI and the train-worker it forked
  const [, signal] = await exited;
  assert.equal(signal, 'SIGKILL');
  for (let i = 0; groupAlive(child.pid!); i++) {
    assert.ok(i < 200, 'the training process outlived the kill');
    await sleep(10);
  }
  return stderr;
}

before(async () => {
  ensureBuilt();
  writeOverfitModel(modelDir);
  writeOverfitRepo(repo, 40);
  uninterrupted = await finetune(reference);
  assert.equal(uninterrupted.result.steps, STEPS);
});
after(() => {
  for (const pgid of groups) if (groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

describe('kiln finetune resumes after a kill', () => {
  it('killed after a checkpoint, the same command resumes and ends where an uninterrupted run ends', async (t) => {
    const out = join(root, 'killed');
    const killed = await startAndKill(out);
    assert.doesNotMatch(killed, /saving the best parameters/, 'killed mid-training');

    const resumed = await finetune(out);
    const from = Number(/^resumed from step (\d+) /m.exec(resumed.stderr)?.[1]);
    assert.ok(from > 0 && from < STEPS && from % EVERY === 0, `resumed from step ${from}`);
    assert.equal(resumed.result.resumedFrom, from);
    assert.equal(resumed.result.steps, STEPS);
    assert.equal(resumed.result.bestStep, uninterrupted.result.bestStep);
    assert.ok(Math.abs(resumed.result.bestValidationLoss - uninterrupted.result.bestValidationLoss) <= 1e-6);
    assert.equal(resumed.result.tokensSeen, uninterrupted.result.tokensSeen);
    // the same batches at the same learning rates give the same losses, step by step
    assert.deepEqual(progressAfter(resumed.stderr, from), progressAfter(uninterrupted.stderr, from));
    assert.equal(progressAfter(resumed.stderr, from).filter((l) => l.startsWith('step')).length, STEPS - from);

    // The adapter (the best parameters), and the final parameters and AdamW moments of the checkpoint.
    const adapterDiff = maxDifference(join(out, 'adapter', 'adapter_model.safetensors'), join(reference, 'adapter', 'adapter_model.safetensors'));
    const stateDiff = maxDifference(join(out, 'checkpoint', 'state.safetensors'), join(reference, 'checkpoint', 'state.safetensors'));
    assert.ok(adapterDiff <= 1e-6 && stateDiff <= 1e-6, `adapter max |difference| ${adapterDiff}, training state ${stateDiff}`);
    t.diagnostic(
      `killed after the step-${from} checkpoint; resumed for ${STEPS - from} steps; adapter max |difference| ${adapterDiff}, training state max |difference| ${stateDiff}; best validation loss ${resumed.result.bestValidationLoss.toFixed(4)} at step ${resumed.result.bestStep}`,
    );
  });

  it('a time-budgeted run, killed after half its fitted steps, resumes its persisted schedule and ends where a run told that step count ends', async (t) => {
    const out = join(root, 'budget-killed');
    const argv = budgetArgs(out);
    // Killed once the schedule is fitted and half of it trained, or earlier when 40% of the budget has
    // gone: a fit made while the machine was quiet may promise more steps than a loaded one then
    // reaches (CI once spent the budget at step 490 of 986). The resumed run has time to spare.
    const started = Date.now();
    const late = () => Date.now() - started >= 0.4 * Number(BUDGET_MINUTES) * 60_000;
    const killed = await startAndKill(
      out,
      argv,
      (m) => m.budget !== undefined && m.schedule !== undefined && m.step > m.budget.fittedAtStep && (m.step >= m.schedule.totalSteps / 2 || late()),
    );
    assert.match(killed, /^time budget 0\.2 min: \d+ steps /m);
    const meta = checkpointMeta(out)!;
    const planned = meta.schedule!;
    assert.equal(meta.budget!.minutes, Number(BUDGET_MINUTES));
    // fitted after the untimed first step and the timed warm-up ones, far below the 100,000-step cap
    assert.ok(meta.budget!.fittedAtStep >= 2 && meta.budget!.fittedAtStep <= BUDGET_MEASURE_STEPS + 1, `fitted at step ${meta.budget!.fittedAtStep}`);
    assert.ok(planned.totalSteps >= 4 * WARMUP && planned.totalSteps < 100_000, `${planned.totalSteps} steps planned`);
    assert.deepEqual({ peak: planned.peak, warmupSteps: planned.warmupSteps }, { peak: 5e-3, warmupSteps: WARMUP });

    // Resumed with a roomier budget (a loaded machine may be slower the second time): the plan is the
    // persisted one whatever this invocation's minutes, which only bound this invocation.
    const resumed = await finetuneWith(budgetArgs(out, '5'));
    assert.equal(resumed.result.resumedFrom, meta.step);
    assert.deepEqual(resumed.result.schedule, planned, 'the resumed run follows the persisted schedule');
    assert.deepEqual(resumed.result.budget, meta.budget);
    assert.equal(resumed.result.endReason, 'completed');
    assert.equal(resumed.result.steps, planned.totalSteps);
    assert.doesNotMatch(resumed.stderr, /^time budget \S+ min/m, 'no refit on resume');
    assert.deepEqual(checkpointMeta(out)!.schedule, planned);
    // a budgeted run's evaluations are bounded by it and paired: after scores the very loss tokens before did (no lines here)
    const { before: base, after: tuned, gain } = resumed.result;
    assert.ok(base && tuned && gain && base.tokens > 0, 'before, after and the paired gain are measured');
    assert.deepEqual([gain.lines, tuned.lines, tuned.tokens], [0, 0, base.tokens]);

    // The same training told the fitted step count: the same losses step by step, the same adapter and state.
    const told = join(root, 'budget-reference');
    const reference = await finetuneWith(baseArgs(told, '--steps', String(planned.totalSteps), '--warmup', String(WARMUP)));
    assert.deepEqual(reference.result.schedule, planned);
    // the tiny model's steps and validations are short next to their shares: the budget chose the asked sizes
    assert.deepEqual(meta.sizes, checkpointMeta(told)!.sizes);
    assert.deepEqual(meta.sizes, { batchSize: 4, validationBatches: meta.sizes!.validationBatches });
    assert.deepEqual(progressAfter(resumed.stderr, meta.step), progressAfter(reference.stderr, meta.step));
    assert.equal(progressAfter(resumed.stderr, meta.step).filter((l) => l.startsWith('step')).length, planned.totalSteps - meta.step);
    const adapterDiff = maxDifference(join(out, 'adapter', 'adapter_model.safetensors'), join(told, 'adapter', 'adapter_model.safetensors'));
    const stateDiff = maxDifference(join(out, 'checkpoint', 'state.safetensors'), join(told, 'checkpoint', 'state.safetensors'));
    assert.ok(adapterDiff <= 1e-6 && stateDiff <= 1e-6, `adapter max |difference| ${adapterDiff}, training state ${stateDiff}`);
    t.diagnostic(
      `budget ${BUDGET_MINUTES} min: ${planned.totalSteps} steps fitted at step ${meta.budget!.fittedAtStep}; killed at step ${meta.step}; resumed to the end, max |difference| ${adapterDiff} / ${stateDiff}`,
    );
  });

  it('a budgeted run ends within its minutes, give or take the time it kept back for the evaluation after', async () => {
    const { result } = await finetuneWith(budgetArgs(join(root, 'budget-whole'), '0.1'));
    const { budget, runSeconds, trainSeconds } = result;
    assert.ok(budget && trainSeconds > 0, 'fitted and trained');
    assert.deepEqual(result.sizes, checkpointMeta(join(root, 'budget-whole'))!.sizes, 'the sizes it trained with are reported');
    // Saving the adapter and loading the tuned model are not shortened by any budget: on a loaded
    // machine they may outlast the reserve measured from the tiny model's evaluation (~0.1 s).
    const slack = 3;
    assert.ok(
      runSeconds <= 6 + budget.reserveSeconds + slack,
      `the run took ${runSeconds.toFixed(1)} s of a 6 s budget (${budget.reserveSeconds.toFixed(1)} s kept for the end, ${slack} s allowed for saving and loading)`,
    );
    assert.ok(runSeconds > trainSeconds);
  });

  it('a diverging run ends cleanly with its best (the base) kept; run again, it trains no further', async () => {
    // A peak rate of 1e6 overflows the weights within a few steps: the losses become NaN (they must
    // reach the CLI as NaN, not break it), the first validation does not improve on the base model,
    // and with patience 1 the run stops early there, at step 5.
    const out = join(root, 'diverged');
    const first = await finetune(out, '--lr', '1e6', '--patience', '1');
    assert.match(first.stderr, /^step \d+\/\d+ +loss NaN /m);
    assert.deepEqual({ steps: first.result.steps, bestStep: first.result.bestStep, stoppedEarly: first.result.stoppedEarly }, { steps: EVERY, bestStep: 0, stoppedEarly: true });
    const again = await finetune(out, '--lr', '1e6', '--patience', '1');
    assert.match(again.stderr, new RegExp(`^resumed from step ${EVERY} `, 'm'));
    assert.deepEqual(progressAfter(again.stderr, 0), [], 'no step trained, no validation run');
    assert.deepEqual({ steps: again.result.steps, bestStep: again.result.bestStep, stoppedEarly: again.result.stoppedEarly }, { steps: EVERY, bestStep: 0, stoppedEarly: true });
    assert.equal(again.result.after!.validationLoss, first.result.after!.validationLoss);
  });

  describe('a checkpoint that cannot be resumed is refused, exit 1, and nothing is trained', () => {
    /** A copy of the reference run's final checkpoint in a run folder of its own, spoilt by `spoil`. */
    function checkpointCopy(name: string, spoil: (dir: string) => void): { out: string; files: Map<string, Buffer> } {
      const out = join(root, name);
      const dir = join(out, 'checkpoint');
      cpSync(join(reference, 'checkpoint'), dir, { recursive: true });
      spoil(dir);
      const files = new Map(['state.json', 'state.safetensors'].filter((f) => existsSync(join(dir, f))).map((f) => [f, readFileSync(join(dir, f))]));
      return { out, files };
    }

    const cases: { name: string; spoil: (dir: string) => void; flags: string[]; message: (dir: string) => string }[] = [
      {
        name: 'corrupt',
        spoil: (dir) => {
          const path = join(dir, 'state.safetensors');
          const bytes = readFileSync(path);
          for (let i = 0; i < 4; i++) bytes[Math.floor(bytes.length / 2) + i]! ^= 0xff; // inside the tensor data
          writeFileSync(path, bytes);
        },
        flags: [],
        message: (dir) => `${join(dir, 'state.safetensors')}: checksum mismatch: the checkpoint is corrupt or partially written; refusing to load it`,
      },
      {
        name: 'partial',
        spoil: (dir) => rmSync(join(dir, 'state.json')),
        flags: [],
        message: (dir) => `${dir}: incomplete checkpoint (state.json or state.safetensors missing); refusing to resume from it`,
      },
      {
        name: 'absurd sizes',
        spoil: (dir) => {
          const path = join(dir, 'state.json');
          writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), sizes: { batchSize: 0, validationBatches: 1 } }));
        },
        flags: [],
        message: (dir) => `${join(dir, 'state.json')}: corrupt checkpoint metadata: batch and validation sizes {"batchSize":0,"validationBatches":1}`,
      },
      {
        name: 'foreign',
        spoil: () => {},
        flags: ['--lr', '1e-2'], // another learning rate: another run
        message: (dir) =>
          `${join(dir, 'state.json')}: checkpoint belongs to a different run (model, mode, settings or the workspace changed); resume with the original settings, or start over without resuming`,
      },
    ];

    // The runs go together (the graph cache is warm by now): each fails before training.
    const runs = new Map<string, Promise<{ out: string; files: Map<string, Buffer>; r: CliRun }>>();
    before(() => {
      for (const c of cases) {
        const { out, files } = checkpointCopy(c.name, c.spoil);
        runs.set(
          c.name,
          runKiln(...args(out, ...c.flags)).then((r) => ({ out, files, r })),
        );
      }
    });

    for (const c of cases) {
      it(c.name, async () => {
        const { out, files, r } = await runs.get(c.name)!;
        assert.equal(r.code, 1, r.stderr);
        assert.equal(r.stderr.trimEnd().split('\n').at(-1), `kiln finetune: ${c.message(join(out, 'checkpoint'))}`);
        assert.doesNotMatch(r.stderr, /^(resumed from|step \d)/m);
        assert.ok(!existsSync(join(out, 'adapter')) && !existsSync(join(out, 'report.json')), 'no adapter, no report');
        for (const [f, bytes] of files) assert.ok(readFileSync(join(out, 'checkpoint', f)).equals(bytes), `${f} left as it was`);
      });
    }
  });
});

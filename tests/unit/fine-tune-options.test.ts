// What a kiln/fineTune request and `kiln finetune` turn into: unset fields take the fine-tune's
// defaults, the editor's counts (steps, files) pass through, a count that is not a positive integer
// is refused, and the CLI and the LSP build the same options from the same choices (one builder).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseFinetuneArgs } from '../../server/src/commands/finetune';
import { buildFineTuneOptions, DEFAULT_LORA, FINE_TUNE_DEFAULTS, trainingThreads } from '../../server/src/finetune/fine-tune-options';
import { fineTuneOptions } from '../../server/src/lsp/fine-tune-handler';
import { automaticThreads } from '../../server/src/runtime/threads';

const options = (params: Record<string, unknown>) => fineTuneOptions({ workspace: '/repo', ...params }, '/models/m', '/cache');

describe('fine-tune request options', () => {
  it('unset fields take the defaults: LoRA, default steps and file bound, output under the cache', () => {
    const o = options({});
    assert.equal(o.mode.kind, 'lora');
    assert.equal(o.maxSteps, FINE_TUNE_DEFAULTS.maxSteps);
    assert.equal(o.maxFiles, FINE_TUNE_DEFAULTS.maxFiles);
    assert.equal(o.workspace, '/repo');
    assert.ok(o.outDir.startsWith(join('/cache', 'runs')), o.outDir);
  });

  it('the steps and the file bound from the settings reach the fine-tune', () => {
    const o = options({ maxSteps: 7, maxFiles: 50_000, mode: 'full' });
    assert.deepEqual([o.maxSteps, o.maxFiles, o.mode.kind], [7, 50_000, 'full']);
  });

  for (const bad of [0, -3, 2.5, '100', null, Number.NaN]) {
    it(`maxFiles = ${JSON.stringify(bad)} is refused with a message naming it`, () => {
      assert.throws(
        () => options({ maxFiles: bad }),
        (err: Error) => /^maxFiles must be a positive integer/.test(err.message),
      );
    });
  }

  it('a time budget supersedes the default steps and epochs; a chosen step count still caps it', () => {
    const budgeted = options({ minutes: 3 });
    assert.equal(budgeted.minutes, 3);
    assert.ok(budgeted.maxSteps > FINE_TUNE_DEFAULTS.maxSteps && budgeted.epochs > FINE_TUNE_DEFAULTS.epochs, `${budgeted.maxSteps} steps, ${budgeted.epochs} epochs`);
    assert.equal(options({ minutes: 3, maxSteps: 40 }).maxSteps, 40);
    assert.deepEqual([options({}).minutes, options({}).maxSteps], [0, FINE_TUNE_DEFAULTS.maxSteps], 'no budget: the steps decide as before');
  });

  for (const bad of [0, -1, Number.POSITIVE_INFINITY, '5']) {
    it(`minutes = ${String(bad)} is refused with a message naming it`, () => {
      assert.throws(
        () => options({ minutes: bad }),
        (err: Error) => /^minutes must be a positive number/.test(err.message),
      );
    });
  }

  it('--lora-layers adapts the top layers only (every layer unless set)', () => {
    const parsed = parseFinetuneArgs(['/repo', '--model', '/models/m', '--cache', '/cache', '--lora-layers', '6']).options.mode;
    assert.deepEqual(parsed, { ...DEFAULT_LORA, alpha: 2 * DEFAULT_LORA.rank, layers: 6 });
    assert.equal('layers' in options({}).mode, false);
  });

  it('--base-bits trains LoRA on a quantized base; anything but 8 or 4 is refused', () => {
    const cli = (...flags: string[]) => parseFinetuneArgs(['/repo', '--model', '/models/m', '--cache', '/cache', ...flags]).options.mode;
    assert.deepEqual(cli('--base-bits', '8'), { ...DEFAULT_LORA, alpha: 2 * DEFAULT_LORA.rank, baseBits: 8 });
    assert.throws(() => cli('--base-bits', '16'), /--base-bits must be 8 or 4, got "16"/);
  });

  it('--recompute-layers on|off|auto reaches the fine-tune (auto unless set); anything else is refused', () => {
    const cli = (...flags: string[]) => parseFinetuneArgs(['/repo', '--model', '/models/m', '--cache', '/cache', ...flags]).options.recomputeLayers;
    assert.deepEqual([cli(), cli('--recompute-layers', 'on'), cli('--recompute-layers', 'off')], ['auto', 'on', 'off']);
    assert.equal(options({}).recomputeLayers, 'auto');
    assert.throws(() => cli('--recompute-layers', 'yes'), /--recompute-layers must be auto, on or off, got "yes"/);
  });

  it('--context-repos folders makes each top-level folder a repository of its own; anything but root or folders is refused', () => {
    const cli = (...flags: string[]) => parseFinetuneArgs(['/repo', '--model', '/models/m', '--cache', '/cache', ...flags]).options.context;
    assert.equal(cli('--context-repos', 'folders').repositories, 'folders');
    assert.equal(cli('--context-repos', 'root').repositories, 'root');
    assert.equal(cli().repositories, undefined);
    assert.throws(() => cli('--context-repos', 'packages'), /--context-repos must be root or folders, got packages/);
  });

  it('maxSteps is checked the same way', () => {
    assert.throws(() => options({ maxSteps: 0 }), /maxSteps must be a positive integer, got 0/);
  });
});

describe('one fine-tune options builder for the CLI and the LSP', () => {
  const cli = (...flags: string[]) => parseFinetuneArgs(['/repo', '--model', '/models/m', '--cache', '/cache', ...flags]).options;

  it('no choices: the CLI and the LSP build the same options', () => {
    assert.deepEqual(cli(), options({}));
  });

  const same: [string, string[], Record<string, unknown>][] = [
    ['a LoRA rank', ['--rank', '4'], { rank: 4 }],
    ['steps, files and a learning rate', ['--steps', '7', '--max-files', '50', '--lr', '0.01'], { maxSteps: 7, maxFiles: 50, learningRate: 0.01 }],
    ['full-parameter training', ['--mode', 'full', '--steps', '3'], { mode: 'full', maxSteps: 3 }],
    ['a time budget', ['--minutes', '2.5'], { minutes: 2.5 }],
    ['a time budget capped by steps', ['--minutes', '1', '--steps', '40'], { minutes: 1, maxSteps: 40 }],
  ];
  for (const [what, flags, params] of same) {
    it(`${what}: the CLI and the LSP build the same options`, () => {
      assert.deepEqual(cli(...flags), options(params));
    });
  }

  it('LoRA alpha defaults to 2 × rank on both paths (scale alpha/rank stays 2); --alpha overrides it', () => {
    assert.equal(DEFAULT_LORA.alpha, 2 * DEFAULT_LORA.rank, 'the default mode follows the same rule');
    for (const o of [cli('--rank', '4'), options({ rank: 4 })]) assert.deepEqual(o.mode, { kind: 'lora', rank: 4, alpha: 8, targets: DEFAULT_LORA.targets });
    assert.deepEqual(cli('--rank', '4', '--alpha', '32').mode, { kind: 'lora', rank: 4, alpha: 32, targets: DEFAULT_LORA.targets });
  });

  it('threads default to the automatic count less one (at least one) on both paths; --threads overrides it', () => {
    assert.equal(trainingThreads(), Math.max(1, automaticThreads() - 1));
    assert.deepEqual([cli().threads, options({}).threads], [trainingThreads(), trainingThreads()]);
    assert.equal(cli('--threads', '3').threads, 3);
  });

  it('a choice left undefined takes its default instead of overwriting it', () => {
    const o = buildFineTuneOptions({ workspace: '/repo', modelDir: '/models/m', cacheDir: '/cache', maxSteps: undefined, seqLen: undefined });
    assert.deepEqual([o.maxSteps, o.seqLen], [FINE_TUNE_DEFAULTS.maxSteps, FINE_TUNE_DEFAULTS.seqLen]);
  });

  it('checkpoints follow the validation interval unless chosen apart', () => {
    assert.equal(cli('--eval-every', '5').checkpointEvery, 5);
    assert.equal(buildFineTuneOptions({ workspace: '/repo', modelDir: '/m', cacheDir: '/c', evalEvery: 5, checkpointEvery: 10 }).checkpointEvery, 10);
  });
});

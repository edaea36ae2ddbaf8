// The fine-tune yields to typing, with a real training process: while a completion request is in
// flight the child is stopped at the OS level (Linux reports state 'T' in /proc/<pid>/stat) and
// reports no steps; one grace after the request ends it runs and its progress events flow again;
// a cancel while it is held resumes it, and it stops with its result. A parent that is told to end
// (SIGTERM) or exits while it holds a child stopped continues the child first.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FineTuneEvent } from '../../server/src/finetune/fine-tune';
import { buildFineTuneOptions } from '../../server/src/finetune/fine-tune-options';
import { type FineTuneProcess, startFineTuneProcess } from '../../server/src/finetune/fine-tune-process';
import { TYPING_GRACE_MS, TypingYield } from '../../server/src/finetune/typing-yield';
import { writeOverfitModel, writeOverfitRepo } from '../fixtures/overfit-repo';
import { processState, waitForState } from '../helpers/process-state';
import { tempDir } from '../helpers/tiny-session';

const linux = process.platform === 'linux';

describe('the fine-tune process held while the user types', { skip: !linux && '/proc/<pid>/stat is Linux only' }, () => {
  const root = tempDir('kiln-fine-tune-yield-');
  let run: FineTuneProcess;
  const events: FineTuneEvent[] = [];
  const steps = () => events.filter((e) => e.type === 'step').length;
  const typing = new TypingYield();

  before(async () => {
    const modelDir = writeOverfitModel(join(root, 'model'));
    writeOverfitRepo(join(root, 'repo'), 40);
    const options = buildFineTuneOptions({
      workspace: join(root, 'repo'),
      modelDir,
      cacheDir: join(root, 'cache'),
      maxSteps: 10_000,
      epochs: 1000,
      seqLen: 128,
      evalLines: 5,
      threads: 1,
    });
    run = startFineTuneProcess(options, (e) => events.push(e));
    run.result.catch(() => {}); // awaited in the last test
    typing.attach(run);
    const until = Date.now() + 120_000;
    while (steps() === 0) {
      if (Date.now() > until) assert.fail(`no training step in 120 s: ${JSON.stringify(events.slice(-3))}`);
      await sleep(50);
    }
  });
  after(() => {
    typing.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  it('is stopped while a request is in flight, reporting nothing, and runs again one grace after it ends', async () => {
    const pid = run.pid!;
    const done = typing.begin();
    await waitForState(pid, (s) => s === 'T', "'T' (stopped) during the request");
    await sleep(50); // an event already on its way when the stop landed
    const stepsHeld = steps();
    await sleep(1000);
    assert.equal(processState(pid), 'T', 'still stopped while the request is in flight');
    assert.equal(steps(), stepsHeld, 'no step while stopped');
    done();
    await sleep(TYPING_GRACE_MS / 2);
    assert.equal(processState(pid), 'T', 'held through the grace');
    await waitForState(pid, (s) => s !== 'T', 'running after the grace', TYPING_GRACE_MS + 2000);
    const until = Date.now() + 30_000;
    while (steps() === stepsHeld) {
      if (Date.now() > until) assert.fail('no step after the process was resumed');
      await sleep(20);
    }
  });

  it('a cancel while it is held resumes it, and the run ends cancelled', async () => {
    const pid = run.pid!;
    typing.begin(); // never ended: only the cancel can let it run
    await waitForState(pid, (s) => s === 'T', "'T' (stopped) during the request");
    run.cancel();
    await waitForState(pid, (s) => s !== 'T', 'running after the cancel');
    const result = await run.result;
    assert.equal(result.cancelled, true);
  });
});

/** A parent that forks an idle child, holds it stopped and prints its pid; `ending` says how the parent then ends. */
function parentHolding(ending: 'sigterm' | 'exit'): ChildProcess {
  const script = `
    const { spawn } = require('node:child_process');
    const { ChildStopper } = require(${JSON.stringify(join(__dirname, '../../server/src/finetune/child-stop.ts'))});
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    child.unref();
    const stopper = new ChildStopper(child);
    setTimeout(() => {
      if (!stopper.stop()) throw new Error('not stopped');
      process.stdout.write(child.pid + '\\n');
      ${ending === 'exit' ? 'setTimeout(() => process.exit(0), 600);' : 'setInterval(() => {}, 1000);'}
    }, 200);
  `;
  return spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
}

describe('a parent never leaves its child stopped', { skip: !linux && '/proc/<pid>/stat is Linux only' }, () => {
  for (const ending of ['sigterm', 'exit'] as const) {
    it(`continues the child when it ${ending === 'sigterm' ? 'is sent SIGTERM' : 'exits'} while holding it`, async () => {
      const parent = parentHolding(ending);
      const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
      const childPid = Number(line.toString().trim());
      assert.ok(childPid > 0, line.toString());
      try {
        await waitForState(childPid, (s) => s === 'T', "'T' (stopped) while the parent holds it", 400);
        if (ending === 'sigterm') parent.kill('SIGTERM');
        const [code, signal] = (await once(parent, 'exit')) as [number | null, NodeJS.Signals | null];
        if (ending === 'sigterm') assert.equal(signal, 'SIGTERM', 'the parent still ends by the signal');
        else assert.equal(code, 0);
        await waitForState(childPid, (s) => s !== 'T', 'running once its parent is gone');
      } finally {
        try {
          process.kill(childPid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  }
});

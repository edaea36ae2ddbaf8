// kiln/fineTune through the real server over stdio: progress arrives as kiln/trainingProgress,
// inline completions keep being answered while the training process runs (held stopped while each
// is computed and a grace after, running again between keystrokes), cancelling the request
// stops training within one step and keeps the best adapter so far, and pointing `kiln.adapterPath`
// at that adapter swaps it in without a restart, with a fresh KV pool (the first answer after the
// swap reuses no prompt tokens).
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CancellationTokenSource } from 'vscode-languageserver-protocol/node';
import type { FineTuneSummary, TrainingProgress } from '../../server/src/protocol';
import { OVERFIT_LINES, writeOverfitModel, writeOverfitRepo } from '../fixtures/overfit-repo';
import { ensureBuilt } from '../helpers/built-cli';
import { insertTexts, KilnClient } from '../helpers/lsp-client';
import { TYPING_GRACE_MS } from '../../server/src/finetune/typing-yield';
import { childProcesses, processState, waitForState } from '../helpers/process-state';
import { TEST_SETTINGS } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-finetune-lsp-');
const workspace = join(root, 'repo');
const modelDir = join(root, 'model');
const cacheDir = join(root, 'cache');
/** The server's default validation interval: the first "best so far" is taken at this step. */
const FIRST_VALIDATION = 25;
let client: KilnClient;

const isStep = (p: TrainingProgress) => p.state === 'running' && p.step !== undefined && p.validationLoss === undefined;
const lastStep = () => Math.max(0, ...client.training.items.filter(isStep).map((p) => p.step!));

before(async () => {
  ensureBuilt();
  writeOverfitModel(modelDir);
  // 150 files: about 50 training steps at the server's defaults (3 epochs of 256-token sequences)
  writeOverfitRepo(workspace, 150);
  // short suggestions: the completions asked for during training take little from it
  client = await KilnClient.start({ settings: { ...TEST_SETTINGS, modelPath: modelDir, maxTokens: 8 }, initializationOptions: { cacheDir } });
  assert.equal(client.statuses.items.at(-1)?.state, 'ready', client.stderr);
});
after(async () => {
  await client?.dispose();
  rmSync(root, { recursive: true, force: true });
});

describe('kiln/fineTune over LSP', () => {
  const uri = 'file:///work/typing.ts';
  const cancel = new CancellationTokenSource();
  let request: Promise<FineTuneSummary>;
  let stepAtCancel = 0;
  let modelAnswers = 0;

  it('reports progress, and completions are answered throughout training', async (t) => {
    await client.open(uri, ['// options 7', ...OVERFIT_LINES, ''].join('\n'));
    request = client.fineTune({ workspace, mode: 'lora', rank: 8, learningRate: 1e-2, maxSteps: 500 }, cancel.token);
    request.catch(() => {}); // awaited in the next test; a rejection must not go unhandled meanwhile
    const ended = request.then((r) => assert.fail(`the fine-tune ended before its first step: ${JSON.stringify(r)}`));
    const first = await Promise.race([client.training.waitFor(isStep, 'the first training step', 120_000), ended]);
    const validated = client.training.waitFor((p) => p.validationLoss !== undefined && p.step === FIRST_VALIDATION, `the validation at step ${FIRST_VALIDATION}`, 120_000);
    let done = false;
    const stop = () => (done = true);
    validated.then(stop, stop);
    const before = (await client.getStats()).answersBySource.model ?? 0;
    const stepsSeen = new Set<number>();
    // Linux shows whether the training process is stopped: held right after an answer, running again after a pause
    const [trainer] = process.platform === 'linux' ? childProcesses(client.process.pid!, 'train-worker') : [];
    const afterPause: string[] = [];
    // Type on the first line (each keystroke changes the prompt) and ask for a completion, until the
    // first validation: every request is answered while the training process runs.
    for (let i = 0; !done; i++) {
      await client.insert(uri, '// options 7'.length, String(i % 10));
      const list = await client.complete(uri, { line: 3, character: 0 });
      assert.ok(list && Array.isArray(list.items), 'an answer');
      // A thread the stop found waiting for a core shows 'R' until it next gets one (it runs nothing then)
      if (trainer !== undefined) await waitForState(trainer, (s) => s === 'T', "'T' (stopped) right after the answer", TYPING_GRACE_MS / 2);
      stepsSeen.add(lastStep());
      await sleep(TYPING_GRACE_MS + 200); // a pause longer than the grace: training runs again before the next keystroke
      if (trainer !== undefined && !done) afterPause.push(processState(trainer));
    }
    await validated;
    modelAnswers = ((await client.getStats()).answersBySource.model ?? 0) - before;
    const phases = client.training.items.map((p) => p.phase).filter((p) => p !== undefined);
    assert.deepEqual([...new Set(phases)], ['dataset', 'evaluate-before', 'train']);
    assert.ok(first.totalSteps! > FIRST_VALIDATION + 5, `total steps ${first.totalSteps}`);
    assert.ok(modelAnswers >= 3, `${modelAnswers} completions computed by the model during training`);
    assert.ok(stepsSeen.size >= 3, `completions answered across training steps ${[...stepsSeen].join(', ')}`);
    if (process.platform === 'linux') {
      assert.ok(trainer !== undefined, 'the training process is a child of the server');
      assert.ok(!afterPause.includes('T'), `the training process after each pause: ${afterPause.join('')}`);
      // kiln.fineTune.yieldToTyping off: the training process keeps running while a completion is computed
      await client.configure({ 'fineTune.yieldToTyping': false });
      await client.insert(uri, '// options 7'.length, 'x');
      await client.complete(uri, { line: 3, character: 0 });
      assert.notEqual(processState(trainer!), 'T', 'not held with yieldToTyping off');
      await client.configure({ 'fineTune.yieldToTyping': true });
    }
    t.diagnostic(`${modelAnswers} completions computed by the model during training steps ${Math.min(...stepsSeen)}–${Math.max(...stepsSeen)} of ${first.totalSteps}`);
  });

  it('cancelling stops training within one step, and the best adapter so far is kept', async (t) => {
    // Cancel as soon as a step is reported: the training process is then one step further at most
    // when the cancellation reaches it (a step takes far longer than the messages' round trip).
    const next = await client.training.waitFor(isStep, 'a step after the validation', 60_000, client.training.items.length);
    cancel.cancel(); // $/cancelRequest
    stepAtCancel = next.step!;
    const notified = client.training.items.length;
    const summary = await request;
    const later = client.training.items.slice(notified);
    const stepsAfter = later.filter(isStep).map((p) => p.step!);
    assert.ok(stepsAfter.length <= 1 && stepsAfter.every((s) => s === stepAtCancel + 1), `steps after the cancel at step ${stepAtCancel}: ${stepsAfter.join(', ')}`);
    assert.equal(summary.cancelled, true);
    assert.ok(summary.steps > FIRST_VALIDATION && summary.steps <= stepAtCancel + 1, `stopped at step ${summary.steps}, cancelled at ${stepAtCancel}`);
    assert.equal(summary.bestStep, FIRST_VALIDATION, 'the validated parameters are the best so far');
    assert.equal(summary.after, undefined, 'no after-evaluation for a cancelled run');
    assert.equal(summary.kind, 'adapter');
    assert.ok(
      summary.output && existsSync(join(summary.output, 'adapter_config.json')) && existsSync(join(summary.output, 'adapter_model.safetensors')),
      `adapter at ${summary.output}`,
    );
    assert.equal(later.at(-1)?.state, 'cancelled');
    const validation = client.training.items.find((p) => p.validationLoss !== undefined)!.validationLoss!;
    t.diagnostic(
      `cancelled at step ${stepAtCancel}, stopped at step ${summary.steps}; best step ${summary.bestStep} (validation loss ${validation.toFixed(3)}; before: ${summary.before?.validationLoss.toFixed(3)} nats, exact match ${summary.before?.exactMatch})`,
    );
  });

  it('setting kiln.adapterPath swaps the adapter in; the first answer after the swap reuses no KV state', async () => {
    const summary = await request;
    // The pool reuses prompt tokens across keystrokes before the swap ...
    const at = { line: 4, character: 0 };
    const shown = insertTexts(await client.complete(uri, at))[0] ?? '';
    await client.insert(uri, client.document(uri).offsetAt(at), shown.startsWith('e') ? 'q' : 'e'); // not typed through
    await client.complete(uri, { line: 4, character: 1 });
    const reused = (await client.getStats()).last!;
    assert.equal(reused.source, 'model');
    assert.ok(reused.prefillReused > 0, `reused ${reused.prefillReused} prompt tokens before the swap`);

    const from = client.statuses.items.length;
    await client.configure({ adapterPath: summary.output });
    const ready = await client.statuses.waitFor((s) => s.state !== 'loading', 'the reload with the adapter', 60_000, from);
    assert.deepEqual({ state: ready.state, adapter: ready.adapter }, { state: 'ready', adapter: 'adapter' }, ready.message);
    assert.equal((await client.getStats()).adapter, 'adapter');

    // ... and the same request right after the swap starts from an empty pool, on the new weights.
    const list = await client.complete(uri, { line: 4, character: 1 });
    assert.ok(list && Array.isArray(list.items), 'an answer after the swap');
    const fresh = (await client.getStats()).last!;
    assert.equal(fresh.source, 'model');
    assert.equal(fresh.prefillReused, 0, 'no prompt tokens reused from KV states of the old weights');
    assert.equal(fresh.prefillComputed, reused.prefillComputed + reused.prefillReused, 'the whole prompt computed again');
  });
});

// Pre-warm and the prefill budget over the real engine and runtime, on a seeded tiny model made slow
// (a wait per computed token) and scripted (greedy decoding writes "abc" and a line break): a request
// arriving mid-warm preempts it at the next background chunk and reuses what it computed; a cold
// request whose prefill would eat the time limit answers a full line from a shorter window, and the
// full window is prefilled in the background for the next keystroke; typing-through and cancellation
// keep working with warms in flight. Order of events is asserted, never timings.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CompletionModel, loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { MIN_SHORT_WINDOW_TOKENS } from '../../server/src/completion/prefill-budget';
import { MIDDLE_RESERVE_TOKENS } from '../../server/src/completion/psm-middle';
import { CancelledError } from '../../server/src/completion/scheduler';
import { parseSettings } from '../../server/src/lsp/settings';
import { InferenceServer } from '../../server/src/runtime/inference-server';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { scriptedSession } from '../helpers/scripted-session';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-prewarm-');
let model: CompletionModel;
let next: (id: number) => number;

before(async () => {
  const dir = writeTinyCodeModel(join(root, 'model'), { seed: 4, maxPositions: 2048 });
  model = await loadCompletionModel(dir, { fimOrder: 'auto', quantization: 'none' }, { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') });
  const [a, b, c, nl] = ['a', 'b', 'c', '\n'].map((ch) => {
    const ids = model.tokenizer.encode(ch);
    assert.equal(ids.length, 1, `${JSON.stringify(ch)} is one token`);
    return ids[0]!;
  }) as [number, number, number, number];
  next = (id) => (id === a ? b : id === b ? c : id === c ? nl : a); // "abc\n" after any prompt
});

after(async () => {
  await model?.loaded.session.release();
  rmSync(root, { recursive: true, force: true });
});

/** A module of ≥ `tokens` tokens (tokenized whole; its prompt, tokenized in pieces, has fewer), the cursor at the end of an unfinished line near its end. */
function codeFile(tag: string, tokens: number): { text: string; offset: number } {
  const lines: string[] = [];
  for (let i = 0; model.tokenizer.encode(lines.join('')).length < tokens; i++) lines.push(`export const ${tag}${i} = compute(${i * 7}, 'item-${i}');\n`);
  const head = `${lines.join('')}const last = `;
  return { text: `${head}\nexport default last;\n`, offset: head.length };
}

function engineOver(msPerToken: number, timeLimitMs: number) {
  const settings = { ...parseSettings({ maxTokens: 32, completionMode: 'line', tokenHealing: false, temperature: 0, timeLimitMs }).settings, speculate: false };
  const server = new InferenceServer(scriptedSession(model.loaded.session, { msPerToken, next }), { kvBudgetBytes: 2 ** 26 });
  return { server, engine: new CompletionEngine(model, settings, new LatencyStats(), { server }) };
}

describe('pre-warm', () => {
  it('never delays a request: one arriving mid-warm runs after the background chunk in flight at most, and reuses what the warm computed', async () => {
    const { server, engine } = engineOver(2, 60_000);
    const file = codeFile('warm', 1300);
    const events: string[] = [];
    let firstChunk!: () => void;
    const warmed = new Promise<void>((r) => (firstChunk = r));
    server.observeForwards((run) => {
      events.push(`${run.priority} ${run.kind} ${run.tokens}`);
      if (run.priority === 'background') firstChunk();
    });
    const warm = engine.prewarm({ uri: 'file:///warm.ts', ...file });
    await warmed;
    events.push('request');
    const answer = await engine.complete({ uri: 'file:///warm.ts', ...file });
    const outcome = await warm;

    assert.equal(outcome.preempted, true, 'the request preempted the warm');
    const asked = events.indexOf('request');
    const firstForeground = events.findIndex((e) => e.startsWith('foreground'));
    assert.ok(firstForeground > asked, JSON.stringify(events));
    const between = events.slice(asked + 1, firstForeground);
    assert.ok(between.length <= 1, `at most the chunk in flight ran before the request: ${JSON.stringify(between)}`);
    for (const e of between) assert.ok(Number(e.split(' ')[2]) <= 64, `a background chunk is small: ${e}`);
    assert.ok(
      events.slice(firstForeground).every((e) => e.startsWith('foreground')),
      `no background forward while the request ran: ${JSON.stringify(events.slice(firstForeground))}`,
    );
    const warmedTokens = events
      .slice(0, firstForeground)
      .filter((e) => e.startsWith('background prefill'))
      .reduce((n, e) => n + Number(e.split(' ')[2]), 0);
    assert.ok(warmedTokens > 0);
    assert.equal(answer.timings.prefillReused, warmedTokens, 'the request reused every token the warm had computed');
    assert.deepEqual(answer.items, ['abc']);
  });

  it('a finished warm leaves the whole prompt to reuse: the first keystroke computes only its own tokens', async () => {
    const { server, engine } = engineOver(0, 60_000);
    const file = codeFile('done', 400);
    const outcome = await engine.prewarm({ uri: 'file:///done.ts', ...file });
    assert.equal(outcome.preempted, false);
    assert.ok(outcome.computed > 400);
    const again = await engine.prewarm({ uri: 'file:///done.ts', ...file });
    assert.equal(again.computed, 0, 'a warm of a prompt the cache holds computes nothing');
    const typed = { text: `${file.text.slice(0, file.offset)}x${file.text.slice(file.offset)}`, offset: file.offset + 1 };
    const answer = await engine.complete({ uri: 'file:///done.ts', ...typed });
    assert.ok(answer.timings.prefillComputed <= 3, `computed ${answer.timings.prefillComputed} of ${answer.timings.prefillReused + answer.timings.prefillComputed}`);
    await server.whenIdle();
  });

  it('is off with kiln.prewarm false', async () => {
    const { engine } = engineOver(0, 60_000);
    engine.updateSettings({ ...parseSettings({ prewarm: false }).settings, speculate: false });
    const outcome = await engine.prewarm({ uri: 'file:///off.ts', ...codeFile('off', 100) });
    assert.deepEqual(outcome, { computed: 0, reused: 0, preempted: false });
  });
});

describe('a cold request on a 1,000-token file', () => {
  it('answers a full line from a shorter window when the full prompt would not prefill in time, then prefills the full one in the background', async () => {
    const { server, engine } = engineOver(1.5, 300);
    // No rate measured yet: the full prompt, slower than the limit; the line floor keeps the whole line.
    const first = await engine.complete({ uri: 'file:///first.ts', ...codeFile('first', 1300) });
    assert.deepEqual(first.items, ['abc'], 'a full line, not one token');
    assert.equal(first.timings.shortWindowTokens, undefined);
    assert.ok(first.timings.prefillComputed > 768, `a prefix window of 768–1,024 tokens: ${JSON.stringify(first.timings)}`);

    const file = codeFile('second', 1300);
    const cold = await engine.complete({ uri: 'file:///second.ts', ...file });
    assert.deepEqual(cold.items, ['abc'], 'a full line from the shorter window');
    const window = cold.timings.shortWindowTokens;
    assert.ok(window !== undefined && window >= MIN_SHORT_WINDOW_TOKENS && window < 768, `answered from a window of ${window} prefix tokens`);
    const shortPrompt = cold.timings.prefillComputed + cold.timings.prefillReused;

    await server.whenIdle(); // the full window, prefilled in the background after the answer
    const typed = { text: `${file.text.slice(0, file.offset)}x${file.text.slice(file.offset)}`, offset: file.offset + 1 };
    const warm = await engine.complete({ uri: 'file:///second.ts', ...typed });
    assert.equal(warm.timings.shortWindowTokens, undefined, 'the next keystroke has the full window');
    assert.ok(warm.timings.prefillReused > 768 && warm.timings.prefillReused > shortPrompt + 256, `reused ${warm.timings.prefillReused}, the short prompt had ${shortPrompt}`);
    assert.deepEqual(warm.items, ['abc']);
  });
});

describe('a cold request under PSM with the typed middle', () => {
  it('answers from a window whose prefix holds the minimum, the middle reserve not counted against it', async () => {
    const psm = await loadCompletionModel(join(root, 'model'), { fimOrder: 'psm', quantization: 'none' }, { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') });
    const settings = { ...parseSettings({ maxTokens: 32, completionMode: 'line', tokenHealing: false, temperature: 0, timeLimitMs: 300 }).settings, speculate: false };
    assert.ok(settings.psmTypedMiddle);
    const server = new InferenceServer(scriptedSession(psm.loaded.session, { msPerToken: 1.5, next }), { kvBudgetBytes: 2 ** 26 });
    const engine = new CompletionEngine(psm, settings, new LatencyStats(), { server });
    try {
      await engine.complete({ uri: 'file:///psm-first.ts', ...codeFile('psmfirst', 1300) }); // measures the rate
      const cold = await engine.complete({ uri: 'file:///psm-second.ts', ...codeFile('psmsecond', 1300) });
      const window = cold.timings.shortWindowTokens;
      // the window was once asked for its tokens less the middle's reserve, held too few and grew far past the minimum
      assert.ok(
        window !== undefined && window >= MIN_SHORT_WINDOW_TOKENS && window < MIN_SHORT_WINDOW_TOKENS + MIDDLE_RESERVE_TOKENS,
        `answered from a prefix window of ${window} tokens`,
      );
      await server.whenIdle();
    } finally {
      await psm.loaded.session.release();
    }
  });
});

describe('with warms in flight', () => {
  it('typing-through still answers without model work, and a cancelled request still cancels', async () => {
    const { server, engine } = engineOver(0.5, 60_000);
    const file = codeFile('type', 300);
    const uri = 'file:///type.ts';
    assert.deepEqual((await engine.complete({ uri, ...file })).items, ['abc']);
    const typed = { text: `${file.text.slice(0, file.offset)}a${file.text.slice(file.offset)}`, offset: file.offset + 1 };
    const warm = engine.prewarm({ uri, ...typed });
    const through = await engine.complete({ uri, ...typed });
    assert.equal(through.timings.source, 'typing-through');
    assert.deepEqual(through.items, ['bc']);
    await warm;

    const other = codeFile('cancel', 600);
    const warming = engine.prewarm({ uri: 'file:///cancel.ts', ...other });
    const abort = new AbortController();
    const cancelled = engine.complete({ uri: 'file:///cancel.ts', ...other, signal: abort.signal });
    abort.abort(new CancelledError());
    await assert.rejects(cancelled, CancelledError);
    assert.equal((await warming).preempted, true);
    const again = await engine.complete({ uri: 'file:///cancel.ts', ...other });
    assert.deepEqual(again.items, ['abc']);
    await server.whenIdle();
  });
});

// The scheduler seen from a real LSP client, on a model that never stops on its own (every answer
// is `maxTokens` of '+'/'-'), so unfinished work is visible: $/cancelRequest stops a request before,
// during and while queued for its computation; a typing storm computes only the newest request and
// keeps KV memory within the budget.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CancellationTokenSource, type InlineCompletionList } from 'vscode-languageserver-protocol/node';
import type { KilnStats } from '../../server/src/protocol';
import { ensureBuilt } from '../helpers/built-cli';
import { insertTexts, KilnClient } from '../helpers/lsp-client';
import { TEST_SETTINGS, writeTinyCodeModel } from '../helpers/tiny-code-model';
import { CODE_CORPUS } from '../helpers/tiny-tokenizer';
import { tempDir } from '../helpers/tiny-session';

const MAX_TOKENS = 600;
const KV_BUDGET_MB = 8;
const root = tempDir('kiln-sched-');
const modelDir = join(root, 'model');
let client: KilnClient;

before(async () => {
  ensureBuilt();
  writeTinyCodeModel(modelDir, { endless: true });
  const settings = { ...TEST_SETTINGS, modelPath: modelDir, completionMode: 'line', maxTokens: MAX_TOKENS, timeLimitMs: 60_000, kvBudgetMB: KV_BUDGET_MB };
  client = await KilnClient.start({ settings, initializationOptions: { cacheDir: join(root, 'cache') } });
  assert.equal(client.statuses.items.at(-1)?.state, 'ready', client.stderr);
});
after(async () => {
  await client?.dispose();
  rmSync(root, { recursive: true, force: true });
});

const text = 'def main():\n    values = [1, 2, 3]\n    total = ';
const at = { line: 2, character: '    total = '.length };
let docs = 0;

async function openFresh(content = text): Promise<string> {
  const uri = `file:///work/sched-${++docs}.py`;
  await client.open(uri, content);
  return uri;
}

/** A completion the server ran to the end: `maxTokens` of the endless model's '+'/'-'. */
function assertFull(list: InlineCompletionList | null): void {
  const [first] = insertTexts(list);
  assert.ok(first !== undefined && /^[+-]+$/.test(first) && first.length === MAX_TOKENS, `a full answer, got ${JSON.stringify(first?.slice(0, 40))}`);
}

describe('$/cancelRequest', () => {
  it('cancelled before dispatch: an empty answer and no model work', async () => {
    const uri = await openFresh();
    const before = await client.getStats();
    const source = new CancellationTokenSource();
    const pending = client.complete(uri, at, { token: source.token });
    source.cancel(); // reaches the server in the same read as the request
    assert.deepEqual(insertTexts(await pending), []);
    assert.equal((await client.getStats()).answers, before.answers);
  });

  it('cancelled while generating: the generation stops, nothing is recorded, the server keeps serving', async () => {
    const uri = await openFresh();
    const before = await client.getStats();
    const source = new CancellationTokenSource();
    const pending = client.complete(uri, at, { token: source.token });
    await client.getStats(); // answered after the completion request was dispatched: it is running now
    source.cancel();
    assert.deepEqual(insertTexts(await pending), []);
    assert.equal((await client.getStats()).answers, before.answers, 'the cancelled generation never finished');
    // Uncancelled, the same request runs to its token limit: the cancelled one was stopped, not short.
    assertFull(await client.complete(uri, at));
    const stats = await client.getStats();
    assert.equal(stats.answers, before.answers + 1);
    assert.equal(stats.last?.decodeTokens, MAX_TOKENS);
  });

  it('cancelled while queued behind another document: dropped before it is computed', async () => {
    const running = await openFresh();
    const queued = await openFresh(`# queued\n${text}`);
    const before = await client.getStats();
    const source = new CancellationTokenSource();
    const first = client.complete(running, at);
    const second = client.complete(queued, { line: 3, character: at.character }, { token: source.token });
    await client.getStats(); // both dispatched: the first runs, the second waits in the queue
    source.cancel();
    assert.deepEqual(insertTexts(await second), []);
    assertFull(await first);
    assert.equal((await client.getStats()).answers, before.answers + 1, 'only the uncancelled request was computed');
  });
});

describe('a typing storm of 100 keystrokes', () => {
  const KEYSTROKES = 100;
  let answers: (InlineCompletionList | null)[];
  let start: KilnStats;

  before(async () => {
    // A ~1,000-token document: every request that ran would prefill and decode hundreds of tokens.
    const uri = await openFresh(`${CODE_CORPUS}\nsteps = `);
    start = await client.getStats();
    let offset = client.document(uri).getText().length;
    const requests: Promise<InlineCompletionList | null>[] = [];
    for (let i = 0; i < KEYSTROKES; i++) {
      const position = await client.insert(uri, offset++, 'z'); // never what the model suggests
      requests.push(client.complete(uri, position));
    }
    answers = await Promise.all(requests);
  });

  it('answers the newest request in full and every older one empty (superseded)', () => {
    assertFull(answers.at(-1)!);
    const older = answers
      .slice(0, -1)
      .map((a, i) => [i, insertTexts(a)] as const)
      .filter(([, items]) => items.length > 0);
    assert.deepEqual(older, [], 'older requests come back empty');
  });

  it('computes only the newest request to the end: no backlog', async () => {
    const stats = await client.getStats();
    assert.equal(stats.answers, start.answers + 1, 'one answer recorded for the whole storm');
    assert.equal(stats.last?.source, 'model');
    assert.equal(stats.last?.decodeTokens, MAX_TOKENS);
  });

  it('keeps the KV memory within the budget', async () => {
    const memory = (await client.getStats()).memory;
    assert.ok(memory, 'kiln/getStats reports memory');
    assert.ok(memory.kvBytes > 0 && memory.kvBytes <= KV_BUDGET_MB * 2 ** 20, `${memory.kvBytes} KV bytes for a ${KV_BUDGET_MB} MB budget`);
  });
});

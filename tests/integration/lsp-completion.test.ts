// The real server over stdio with a real LSP client: inline completions after incremental edits
// equal the CLI's for the same text and position; a one-character edit at the cursor of a ~1,000-token
// prompt prefills only a few tokens and answers what a cold run answers; typing through a shown
// suggestion answers with no model work.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Position } from 'vscode-languageserver-protocol/node';
import type { CompletionTimings } from '../../server/src/telemetry/timings';
import { ensureBuilt, runKiln } from '../helpers/built-cli';
import { insertTexts, KilnClient } from '../helpers/lsp-client';
import { TEST_SETTINGS, writeTinyCodeModel } from '../helpers/tiny-code-model';
import { CODE_CORPUS } from '../helpers/tiny-tokenizer';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-lsp-');
const modelDir = join(root, 'model');
const cacheDir = join(root, 'cache');
let client: KilnClient;

before(async () => {
  ensureBuilt();
  writeTinyCodeModel(modelDir);
  client = await KilnClient.start({ settings: { ...TEST_SETTINGS, modelPath: modelDir }, initializationOptions: { cacheDir } });
  assert.equal(client.statuses.items.at(-1)?.state, 'ready', client.stderr);
});
after(async () => {
  await client?.dispose();
  rmSync(root, { recursive: true, force: true });
});

interface CliAnswer {
  completion: string;
  items: string[];
  timings: CompletionTimings;
}

/** `kiln complete` on `text` at a 0-based LSP position, in a fresh process (so with a cold KV cache). */
async function cliComplete(text: string, at: Position, ...flags: string[]): Promise<CliAnswer> {
  const file = join(root, `doc-${at.line}-${at.character}-${text.length}.ts`);
  writeFileSync(file, text);
  const r = await runKiln(
    'complete',
    file,
    '--line',
    String(at.line + 1),
    '--col',
    String(at.character + 1),
    '--model',
    modelDir,
    '--json',
    '--ep',
    'cpu',
    '--threads',
    '1',
    '--cache',
    cacheDir,
    ...flags,
  );
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as CliAnswer;
}

/** The timings of the server's most recent answer, from kiln/getStats. */
async function lastTimings(): Promise<CompletionTimings> {
  const stats = await client.getStats();
  assert.ok(stats.last, 'kiln/getStats reports the last answer');
  return stats.last;
}

/** A character to type at the cursor that does not continue `completion` (so it is not typed through). */
function divergingChar(completion: string): string {
  return completion.startsWith('x') ? 'y' : 'x';
}

describe('inline completion over LSP', () => {
  it('after incremental edits answers what `kiln complete` answers for the same text and position', async () => {
    const uri = 'file:///work/math.ts';
    await client.open(uri, 'export function add(a: number, b: number): number {\n  return a + b;\n}\n');
    await client.edit(uri, [{ range: { start: { line: 0, character: 16 }, end: { line: 0, character: 19 } }, text: 'sum' }]);
    let at = await client.insert(uri, client.document(uri).getText().length, '\nexport function sub(a: number, b: number): number {\n');
    at = await client.insert(uri, client.document(uri).offsetAt(at), '  retrun');
    await client.edit(uri, [{ range: { start: { line: at.line, character: 5 }, end: { line: at.line, character: 8 } }, text: 'urn a -' }]);
    at = { line: at.line, character: '  return a -'.length };
    await client.insert(uri, client.document(uri).getText().length, '\n}\n');
    const text = client.document(uri).getText();
    assert.ok(text.endsWith('export function sub(a: number, b: number): number {\n  return a -\n}\n'), text);

    const served = insertTexts(await client.complete(uri, at));
    const cli = await cliComplete(text, at);
    assert.ok(cli.completion.length > 0, 'a non-empty completion, so the comparison means something');
    assert.deepEqual(served, cli.items);

    // An explicit trigger decodes the configured candidates as one batch; the CLI's --candidates too.
    await client.configure({ candidates: 3 });
    const explicit = insertTexts(await client.complete(uri, at, { explicit: true }));
    const cliExplicit = await cliComplete(text, at, '--candidates', '3');
    assert.equal(explicit[0], cli.completion, 'the first candidate is the greedy answer');
    assert.deepEqual(explicit, cliExplicit.items);
  });

  describe('a one-character edit at the cursor of a ~1,000-token prompt', () => {
    const uri = 'file:///work/corpus.ts';
    const lines = CODE_CORPUS.split('\n');
    const cursorLine = 44; // inside the Python half: a long prefix and a suffix after the cursor
    let at: Position;
    let first: CompletionTimings;
    let edited: string[];

    before(async () => {
      await client.open(uri, CODE_CORPUS);
      at = { line: cursorLine, character: lines[cursorLine]!.length };
      const answer = insertTexts(await client.complete(uri, at));
      first = await lastTimings();
      at = await client.insert(uri, client.document(uri).offsetAt(at), divergingChar(answer[0] ?? ''));
      edited = insertTexts(await client.complete(uri, at));
    });

    it('prefills at most 4 tokens, reusing the rest from the KV cache', async () => {
      assert.equal(first.source, 'model');
      assert.ok(first.prefillComputed + first.prefillReused >= 900, `prompt of ${first.prefillComputed + first.prefillReused} tokens`);
      const t = await lastTimings();
      assert.equal(t.source, 'model');
      assert.ok(t.prefillComputed >= 1 && t.prefillComputed <= 4, `computed ${t.prefillComputed} prompt tokens`);
      assert.ok(t.prefillReused >= first.prefillComputed + first.prefillReused - 4, `reused ${t.prefillReused} prompt tokens`);
    });

    it('answers what a cold run answers (cached == uncached)', async () => {
      const cold = await cliComplete(client.document(uri).getText(), at);
      assert.equal(cold.timings.prefillReused, 0, 'the CLI starts from an empty KV cache');
      assert.ok(edited.length > 0 && edited[0]!.length > 0, 'a non-empty completion, so the comparison means something');
      assert.deepEqual(edited, cold.items);
    });

    it('typing the first character of the suggestion answers the rest with no model work', async () => {
      const before = await client.getStats();
      const suggestion = edited[0]!;
      const typed = Array.from(suggestion)[0]!;
      assert.ok(suggestion.length > typed.length, `a suggestion longer than one character: ${JSON.stringify(suggestion)}`);
      const next = await client.insert(uri, client.document(uri).offsetAt(at), typed);
      assert.deepEqual(insertTexts(await client.complete(uri, next)), [suggestion.slice(typed.length)]);
      const after = await client.getStats();
      assert.deepEqual(
        { source: after.last?.source, prefillComputed: after.last?.prefillComputed, prefillReused: after.last?.prefillReused, decodeTokens: after.last?.decodeTokens },
        { source: 'typing-through', prefillComputed: 0, prefillReused: 0, decodeTokens: 0 },
      );
      assert.equal(after.answersBySource.model, before.answersBySource.model, 'no model answer recorded');
      assert.equal(after.answersBySource['typing-through'], (before.answersBySource['typing-through'] ?? 0) + 1);
    });
  });
});

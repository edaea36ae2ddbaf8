// kiln/cursor over the real server and a real LSP client: after the client reports the cursor of a
// freshly opened ~1,000-token document, the server pre-warms the prompt there, and the first keystroke
// computes only its own few tokens; a document whose cursor was never reported computes its whole
// prompt; bad params are dropped and the server keeps serving.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { type CursorParams, KilnCursorNotification } from '../../server/src/protocol';
import { ensureBuilt } from '../helpers/built-cli';
import { KilnClient } from '../helpers/lsp-client';
import { TEST_SETTINGS, writeTinyCodeModel } from '../helpers/tiny-code-model';
import { CODE_CORPUS } from '../helpers/tiny-tokenizer';
import { tempDir } from '../helpers/tiny-session';
import { waitUntil } from '../helpers/wait';

const root = tempDir('kiln-lsp-prewarm-');
let client: KilnClient;

before(async () => {
  ensureBuilt();
  const modelDir = writeTinyCodeModel(join(root, 'model'));
  client = await KilnClient.start({ settings: { ...TEST_SETTINGS, modelPath: modelDir }, initializationOptions: { cacheDir: join(root, 'cache') } });
  assert.equal(client.statuses.items.at(-1)?.state, 'ready', client.stderr);
});
after(async () => {
  await client?.dispose();
  rmSync(root, { recursive: true, force: true });
});

/** ~1,000 prompt tokens of code with the cursor at the end of the last line. */
const TEXT = `${Array.from({ length: 8 }, (_, i) => CODE_CORPUS.replaceAll('count', `count${i}`)).join('\n')}\nconst total = `;

async function firstKeystroke(uri: string): Promise<{ computed: number; reused: number }> {
  const at = await client.insert(uri, TEXT.length, 'x');
  await client.complete(uri, at);
  const last = (await client.getStats()).last!;
  return { computed: last.prefillComputed, reused: last.prefillReused };
}

it('pre-warms the reported cursor, so the first keystroke reuses the prompt', async () => {
  const doc = await client.open('file:///warm.ts', TEXT);
  const end = doc.positionAt(TEXT.length);
  await client.connection.sendNotification(KilnCursorNotification.type, { textDocument: { uri: doc.uri }, position: end, reason: 'focus' } satisfies CursorParams);
  await waitUntil(
    'the pre-warm to finish',
    () => client.getStats(),
    (s) => (s.prewarm?.finished ?? 0) >= 1,
  );
  const warm = await firstKeystroke(doc.uri);
  assert.ok(warm.reused > 500 && warm.computed <= 3, `after a pre-warm: ${JSON.stringify(warm)}`);

  await client.open('file:///cold.ts', TEXT.replaceAll('count', 'tally')); // the same shape, never reported
  const cold = await firstKeystroke('file:///cold.ts');
  assert.ok(cold.computed > 500, `without one: ${JSON.stringify(cold)}`);
});

it('drops a kiln/cursor with bad params and keeps serving', async () => {
  await client.connection.sendNotification('kiln/cursor', { textDocument: { uri: 'file:///warm.ts' }, position: { line: -1, character: 0 }, reason: 'focus' });
  await client.connection.sendNotification('kiln/cursor', { textDocument: { uri: 'file:///never-opened.ts' }, position: { line: 0, character: 0 }, reason: 'move' });
  const stats = await client.getStats();
  assert.equal(stats.state, 'ready');
  assert.equal(stats.prewarm?.started, 1, 'neither started a warm');
});

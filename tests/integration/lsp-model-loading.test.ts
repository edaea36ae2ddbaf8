// Before the model is ready, the real server answers inline completions with an empty list (the old
// server failed every one of them) and kiln/status and kiln/getStats say why. The server is
// 'starting' until its workspace/configuration request is answered, so the test holds that answer
// back to ask in that phase. The 'loading' phase is too short to aim a request at while the load
// runs on the server's thread; the handler's answer without an engine is unit-tested.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NotificationMessage, RequestMessage } from 'vscode-languageserver-protocol/node';
import type { KilnStats, ServerStatus } from '../../server/src/protocol';
import { ensureBuilt } from '../helpers/built-cli';
import { RawServer } from '../helpers/lsp-raw';
import { TEST_SETTINGS, writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const MAX_TOKENS = 8;
const root = tempDir('kiln-loading-');
const modelDir = join(root, 'model');
const uri = 'file:///work/loading.py';
let server: RawServer;

before(() => {
  ensureBuilt();
  writeTinyCodeModel(modelDir, { endless: true });
  server = new RawServer();
});
after(async () => {
  await server.dispose();
  rmSync(root, { recursive: true, force: true });
});

function statuses(): ServerStatus[] {
  return server.notifications('kiln/status').map((n) => n.params as ServerStatus);
}

describe('inline completion before the model is ready', () => {
  let configurationRequest: RequestMessage;

  it("'starting' (settings not yet answered): an empty answer, and kiln/getStats says why", async () => {
    const init = await server.call('initialize', {
      processId: null,
      rootUri: null,
      capabilities: { workspace: { configuration: true } },
      initializationOptions: { cacheDir: join(root, 'cache') },
    });
    assert.ok(init.result);
    server.send(server.notification('initialized', {}));
    configurationRequest = await server.waitFor<RequestMessage>((m) => (m as RequestMessage).method === 'workspace/configuration', 'the configuration pull');
    const complete = server.request('textDocument/inlineCompletion', { textDocument: { uri }, position: { line: 0, character: 4 }, context: { triggerKind: 1 } });
    const stats = server.request('kiln/getStats');
    server.send(server.notification('textDocument/didOpen', { textDocument: { uri, languageId: 'python', version: 1, text: 'x = ' } }), complete, stats);
    assert.deepEqual((await server.response(complete.id)).result, { items: [] });
    const figures = (await server.response(stats.id)).result as KilnStats;
    assert.equal(figures.state, 'starting');
    assert.match(figures.message ?? '', /^Kiln is starting: the model loads once the settings arrive$/);
  });

  it("'loading': kiln/status says 'Loading model …' (a completion then answers empty: see lsp-inline-completion.test.ts)", async () => {
    const settings = { ...TEST_SETTINGS, modelPath: modelDir, maxTokens: MAX_TOKENS, completionMode: 'line' };
    server.send({ jsonrpc: '2.0', id: configurationRequest.id, result: [settings] });
    await server.waitFor(
      (m) =>
        (m as NotificationMessage).method === 'kiln/status' &&
        (m as NotificationMessage).params !== undefined &&
        ((m as NotificationMessage).params as ServerStatus).state !== 'loading',
      'the load to end',
    );
    const loading = statuses().filter((s) => s.state === 'loading');
    assert.deepEqual(
      loading.map((s) => s.message),
      [`Loading model ${modelDir}…`],
    );
  });

  it("'ready': the same request is answered by the model", async () => {
    await server.waitFor<NotificationMessage>(
      (m) =>
        (m as NotificationMessage).method === 'kiln/status' &&
        (m as NotificationMessage).params !== undefined &&
        ((m as NotificationMessage).params as ServerStatus).state === 'ready',
      'the model to load',
    );
    const answer = await server.call('textDocument/inlineCompletion', { textDocument: { uri }, position: { line: 0, character: 4 }, context: { triggerKind: 1 } });
    const items = (answer.result as { items: { insertText: string }[] }).items;
    assert.equal(items[0]?.insertText.length, MAX_TOKENS, JSON.stringify(answer));
    assert.equal(((await server.call('kiln/getStats')).result as KilnStats).message, undefined, 'no reason once ready');
  });
});

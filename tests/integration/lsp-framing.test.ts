// The real server over stdio, sent what a well-behaved client never sends. A broken frame (a wrong,
// missing or oversized Content-Length) ends the process with one line on stderr and a non-zero
// code, so the client restarts it; the old server stayed alive and never answered again. The LSP
// lifecycle holds: nothing is served before `initialize`, nothing after `shutdown`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ErrorCodes, type ResponseMessage, StreamMessageReader } from 'vscode-languageserver-protocol/node';
import { CLI, ensureBuilt } from '../helpers/built-cli';
import { frame, RawServer } from '../helpers/lsp-raw';
import { tempDir } from '../helpers/tiny-session';

const servers: RawServer[] = [];
before(() => ensureBuilt());
after(async () => {
  await Promise.all(servers.map((s) => s.dispose()));
});

/** Bounds for a process that should end: generous, since the old code never ended at all. */
const EXIT_WITHIN_MS = 10_000;
/** The reader gives an incomplete message 10 s; the bound leaves room for a loaded machine. */
const INCOMPLETE_EXIT_WITHIN_MS = 40_000;

const INITIALIZE = { processId: null, rootUri: null, capabilities: {} };

/** A server that has answered `initialize` (no `initialized`: no model is loaded). */
async function initializedServer(): Promise<RawServer> {
  const server = new RawServer();
  servers.push(server);
  const init = await server.call('initialize', INITIALIZE);
  assert.ok(init.result, `initialize answered: ${JSON.stringify(init)}`);
  return server;
}

function framingLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.includes('framing error'));
}

async function assertRestartable(server: RawServer, within: number, reason: RegExp): Promise<void> {
  const exit = await server.exitsWithin(within);
  assert.notEqual(exit.code, 0, `exit code ${exit.code}`);
  const lines = framingLines(server.stderr);
  assert.equal(lines.length, 1, `one framing error line on stderr:\n${server.stderr}`);
  assert.match(lines[0]!, /^kiln serve: protocol framing error: .+; exiting so that the client restarts the server$/);
  assert.match(lines[0]!, reason);
}

const getStats = (id: number) => ({ jsonrpc: '2.0', id, method: 'kiln/getStats' });

const BROKEN: [string, (next: Buffer) => Buffer[], RegExp][] = [
  ['a Content-Length shorter than the body', (next) => [Buffer.from(`Content-Length: 10\r\n\r\n${JSON.stringify(getStats(100))}`), next], /body is not JSON/],
  ['a Content-Length longer than the body, then another message', (next) => [Buffer.from(`Content-Length: 100\r\n\r\n${JSON.stringify(getStats(100))}`), next], /body is not JSON/],
  [
    'no Content-Length header',
    (next) => [Buffer.from(`Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n${JSON.stringify(getStats(100))}`), next],
    /no Content-Length/,
  ],
  [
    'a non-numeric Content-Length',
    (next) => [Buffer.from(`Content-Length: 12abc\r\n\r\n${JSON.stringify(getStats(100))}`), next],
    /Content-Length must be a byte count, got "12abc"/,
  ],
  [
    'Content-Length 3e9 (not buffered: refused at the header)',
    (next) => [Buffer.from('Content-Length: 3000000000\r\n\r\n{"jsonrpc":"2.0"'), next],
    /Content-Length 3000000000 is over the limit of 64 MiB/,
  ],
];

describe('framing errors end the server so the client restarts it', () => {
  for (const [label, bytes, reason] of BROKEN) {
    it(`${label}: exits non-zero with one line on stderr`, async () => {
      const server = await initializedServer();
      assert.equal((await server.call('kiln/getStats')).result !== undefined, true, 'served before the broken frame');
      server.write(...bytes(frame(getStats(101))));
      await assertRestartable(server, EXIT_WITHIN_MS, reason);
      assert.equal(
        server.received.some((m) => (m as { id?: number }).id === 101),
        false,
        'nothing after the broken frame was served',
      );
    });
  }

  it('a Content-Length longer than what follows, then silence: exits once the message stays incomplete', async () => {
    const server = await initializedServer();
    server.write(`Content-Length: 500\r\n\r\n${JSON.stringify(getStats(100))}`);
    await assertRestartable(server, INCOMPLETE_EXIT_WITHIN_MS, /stayed incomplete for \d+ ms \(\d+ of 500 announced bytes\)/);
  });

  it('a 1 MiB message is read whole (the cap is far above real messages)', async () => {
    const server = await initializedServer();
    const text = 'x'.repeat(2 ** 20);
    server.send(server.notification('textDocument/didOpen', { textDocument: { uri: 'file:///big.txt', languageId: 'plaintext', version: 1, text } }));
    const stats = await server.call('kiln/getStats');
    assert.ok(stats.result, JSON.stringify(stats.error));
    assert.equal(server.exit, undefined);
  });
});

describe('the input ending', () => {
  it('without shutdown: the server exits with 1', async () => {
    const server = await initializedServer();
    server.child.stdin!.end();
    assert.equal((await server.exitsWithin(EXIT_WITHIN_MS)).code, 1);
  });

  it('after shutdown: the server exits with 0', async () => {
    const server = await initializedServer();
    assert.equal((await server.call('shutdown')).result, null);
    server.child.stdin!.end();
    assert.equal((await server.exitsWithin(EXIT_WITHIN_MS)).code, 0);
  });
});

describe('the LSP lifecycle', () => {
  let server: RawServer;
  before(() => {
    server = new RawServer();
    servers.push(server);
  });

  it('every request before initialize: ServerNotInitialized naming the method', async () => {
    for (const [method, params] of [
      ['kiln/getStats', undefined],
      ['kiln/reloadModel', undefined],
      ['textDocument/inlineCompletion', { textDocument: { uri: 'file:///a.ts' }, position: { line: 0, character: 0 }, context: { triggerKind: 1 } }],
      ['workspace/unknownRequest', {}],
    ] as const) {
      const answer = await server.call(method, params);
      assert.equal(answer.error?.code, ErrorCodes.ServerNotInitialized, `${method}: ${JSON.stringify(answer)}`);
      assert.equal(answer.error?.message, `the server is not initialized: ${method} was sent before initialize`);
    }
  });

  it('a notification before initialize is dropped: a document opened then is not open afterwards', async () => {
    server.send(server.notification('textDocument/didOpen', { textDocument: { uri: 'file:///early.ts', languageId: 'typescript', version: 1, text: 'x = ' } }));
    const init = await server.call('initialize', INITIALIZE);
    assert.ok((init.result as { capabilities: { inlineCompletionProvider?: unknown } }).capabilities.inlineCompletionProvider);
    const answer = await server.call('textDocument/inlineCompletion', {
      textDocument: { uri: 'file:///early.ts' },
      position: { line: 0, character: 4 },
      context: { triggerKind: 1 },
    });
    assert.equal(answer.error?.code, ErrorCodes.InvalidParams);
    assert.match(answer.error!.message, /no open document file:\/\/\/early\.ts/);
  });

  it('after initialize: requests are served; a second initialize is an InvalidRequest', async () => {
    assert.ok((await server.call('kiln/getStats')).result);
    const again = await server.call('initialize', INITIALIZE);
    assert.equal(again.error?.code, ErrorCodes.InvalidRequest);
    assert.match(again.error!.message, /initialize was already received/);
  });

  it('after shutdown: requests are an InvalidRequest, and exit ends the process with 0', async () => {
    assert.equal((await server.call('shutdown')).result, null);
    const late = await server.call('kiln/getStats');
    assert.equal(late.error?.code, ErrorCodes.InvalidRequest);
    assert.match(late.error!.message, /kiln\/getStats was sent after shutdown/);
    server.send(server.notification('exit'));
    assert.equal((await server.exitsWithin(EXIT_WITHIN_MS)).code, 0);
  });
});

describe('--pipe: the same bounded reader on a socket', () => {
  it('answers over the pipe, and a framing error ends the process with one line', async () => {
    const dir = tempDir('kiln-pipe-');
    const path = join(dir, 'lsp.sock');
    const listener = createServer();
    listener.listen(path);
    await once(listener, 'listening');
    const child = spawn(process.execPath, [CLI, 'serve', `--pipe=${path}`], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KILN_DEBUG: '' } });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = once(child, 'exit') as Promise<[number | null]>;
    try {
      const [socket] = (await once(listener, 'connection')) as [Socket];
      const responses: ResponseMessage[] = [];
      const answered = new Promise<void>((resolve) => new StreamMessageReader(socket).listen((m) => (responses.push(m as ResponseMessage), resolve())));
      socket.write(frame({ jsonrpc: '2.0', id: 1, method: 'initialize', params: INITIALIZE }));
      await answered;
      assert.equal(responses[0]?.id, 1);
      assert.ok(responses[0]?.result, JSON.stringify(responses[0]));
      socket.write('Content-Length: 70000000\r\n\r\n');
      const [code] = await Promise.race([exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still running; stderr: ${stderr}`)), EXIT_WITHIN_MS))]);
      assert.equal(code, 1);
      assert.deepEqual(
        framingLines(stderr).map((l) => /Content-Length 70000000 is over the limit of 64 MiB/.test(l)),
        [true],
      );
    } finally {
      child.kill('SIGKILL');
      listener.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

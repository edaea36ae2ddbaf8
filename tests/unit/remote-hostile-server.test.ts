// A remote server that misbehaves in ways the fake inference server does not script: it drops the
// connection after part of an answer (a retry then would stream the text twice), or reflects the
// Authorization header into its error text (the key must not reach a status line or log), or
// reports a failure the way llama-server does mid-stream, as an SSE `error:` field rather than `data:`.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createTextBackend } from '../../server/src/remote/backend-settings';
import { RemoteError } from '../../server/src/remote/http-stream';
import type { InfillRequest, RemoteKind } from '../../server/src/remote/text-backend';

const KEY = 'sk-hostile-test-key-0123456789';
const REQUEST: InfillRequest = { prefix: 'a', suffix: '', prompt: 'a', extra: [], maxTokens: 4, timeLimitMs: 1000, indent: 0, temperature: 0, topP: 1 };

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
let handler: Handler = (_req, res) => res.end();
let requests = 0;
let server: Server;
let url: string;

before(async () => {
  server = createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => handler(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const backend = (kind: RemoteKind) =>
  createTextBackend({ kind, url, model: 'm', fallbackToLocal: false }, { apiKey: KEY, limits: { headersTimeoutMs: 2000, idleTimeoutMs: 2000, retries: 1, retryDelayMs: 10 } })!;

/** The request's failure, and every text the caller saw streamed before it. */
async function failure(kind: RemoteKind): Promise<{ err: RemoteError; seen: string[] }> {
  const seen: string[] = [];
  const err = await backend(kind)
    .complete(REQUEST, {
      signal: new AbortController().signal,
      onText: (text) => {
        seen.push(text);
        return true;
      },
    })
    .then(
      () => assert.fail('the request succeeded'),
      (e: unknown) => e,
    );
  assert.ok(err instanceof RemoteError, String(err));
  return { err, seen };
}

describe('a hostile or failing remote server', () => {
  test('a connection dropped after part of the answer is not retried: the text is never streamed twice', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"content":"AB","stop":false}\n\n');
      setTimeout(() => res.socket?.destroy(), 30);
    };
    requests = 0;
    const { seen } = await failure('llamacpp');
    assert.deepEqual(seen, ['AB'], 'the caller saw the first piece once');
    assert.equal(requests, 1, 'no second request after an answer had started');
  });

  for (const kind of ['openai', 'llamacpp', 'ollama'] as const) {
    test(`${kind}: a server that echoes the Authorization header never gets the key into a message`, async () => {
      handler = (req, res) => res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `invalid key: ${req.headers.authorization}` } }));
      const http = await failure(kind);
      assert.ok(!http.err.message.includes(KEY), http.err.message);
      assert.match(http.err.message, /HTTP 401: invalid key: Bearer …/);
      // the key where the message is shortened: no prefix of it survives the cut either
      handler = (req, res) => res.writeHead(401).end(`${'x'.repeat(180)} ${req.headers.authorization}`);
      const cut = await failure(kind);
      assert.ok(!cut.err.message.includes(KEY.slice(0, 6)), cut.err.message);
      handler = (req, res) => {
        res.writeHead(200, { 'content-type': kind === 'ollama' ? 'application/x-ndjson' : 'text/event-stream' });
        const event = JSON.stringify({ error: `rejected ${req.headers.authorization}` });
        res.end(kind === 'ollama' ? `${event}\n` : `data: ${event}\n\n`);
      };
      const streamed = await failure(kind);
      assert.ok(!streamed.err.message.includes(KEY), streamed.err.message);
      assert.match(streamed.err.message, /reported an error: rejected Bearer …/);
    });
  }

  test("llama.cpp's mid-stream `error:` event is reported with the server's message", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('error: {"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}\n\n');
    };
    const { err } = await failure('llamacpp');
    assert.match(err.message, /reported an error: the request exceeds the available context size/);
  });
});

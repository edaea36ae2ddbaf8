// The transport's refusals: a server whose certificate does not verify is never talked to (TLS
// verification is Node's default and nothing turns it off), and a redirect is not followed (it could
// carry the Authorization header to another host).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createTextBackend } from '../../server/src/remote/backend-settings';
import { RemoteError } from '../../server/src/remote/http-stream';
import { tempDir } from '../helpers/tiny-session';

const dir = tempDir('kiln-remote-tls-');
after(() => rmSync(dir, { recursive: true, force: true }));

const REQUEST = { prefix: 'a', suffix: '', prompt: 'a', extra: [], maxTokens: 4, timeLimitMs: 1000, indent: 0, temperature: 0, topP: 1 };
const ANSWER = 'data: {"content":"ok","stop":false}\n\ndata: {"content":"","stop":true}\n\n';

const listen = (server: Server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
const close = (server: Server) => new Promise((resolve) => server.close(resolve));

describe('remote transport', () => {
  test('a self-signed certificate is refused before any request is sent; the same server verified by its CA answers', async () => {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    const made = spawnSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(made.status, 0, `openssl (Debian's openssl package) makes the test certificate: ${made.error?.message ?? made.stderr}`);
    let requests = 0;
    const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => {
      requests++;
      res.writeHead(200, { 'content-type': 'text/event-stream' }).end(ANSWER);
    });
    const port = await listen(server);
    try {
      const backend = createTextBackend({ kind: 'llamacpp', url: `https://127.0.0.1:${port}`, model: '', fallbackToLocal: false }, { limits: { retries: 0 } })!;
      const err = await backend.complete(REQUEST, { signal: new AbortController().signal }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof RemoteError && err.kind === 'unreachable', String(err));
      assert.match(err.message, /SELF_SIGNED|CERT|certificate/i);
      assert.equal(requests, 0, 'no request reached the server');
      // control: the server itself works for a client that trusts its certificate
      const status = await new Promise<number | undefined>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, method: 'POST', path: '/infill', ca: readFileSync(cert) }, (res) => {
          res.resume();
          resolve(res.statusCode);
        });
        req.on('error', reject);
        req.end('{}');
      });
      assert.equal(status, 200);
    } finally {
      await close(server);
    }
  });

  test('a redirect is not followed: the key never reaches the other host', async () => {
    let elsewhere = 0;
    const other = createHttpServer((_req, res) => {
      elsewhere++;
      res.writeHead(200, { 'content-type': 'text/event-stream' }).end(ANSWER);
    });
    const otherPort = await listen(other);
    const redirecting = createHttpServer((_req, res) => res.writeHead(307, { location: `http://127.0.0.1:${otherPort}/infill` }).end());
    const port = await listen(redirecting);
    try {
      const backend = createTextBackend(
        { kind: 'llamacpp', url: `http://127.0.0.1:${port}`, model: '', fallbackToLocal: false },
        { apiKey: 'secret-key', limits: { retries: 0 } },
      )!;
      await assert.rejects(backend.complete(REQUEST, { signal: new AbortController().signal }), (e: unknown) => e instanceof RemoteError && !e.message.includes('secret-key'));
      assert.equal(elsewhere, 0);
    } finally {
      await close(redirecting);
      await close(other);
    }
  });
});

// `kiln.backend.*` parsing and the backend it builds: bad values are named and the previous ones
// kept, URLs carry no credentials, and each kind posts to its API's path under the configured URL.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSettings } from '../../server/src/lsp/settings';
import { createTextBackend, DEFAULT_BACKEND_SETTINGS, parseBackendSettings } from '../../server/src/remote/backend-settings';

describe('kiln.backend settings', () => {
  it('defaults to local: nothing leaves the machine unless the user chose a remote backend', () => {
    assert.equal(parseSettings({}).settings.backend.kind, 'local');
    assert.equal(createTextBackend(DEFAULT_BACKEND_SETTINGS), undefined);
  });

  it('names each bad field and keeps the previous value', () => {
    const previous = { kind: 'openai', url: 'http://a:1', model: 'm', fallbackToLocal: true } as const;
    const { settings, problems } = parseBackendSettings({ kind: 'grpc', url: 'ftp://x', model: 3, fallbackToLocal: 'yes' }, previous);
    assert.deepEqual(settings, previous);
    assert.equal(problems.length, 4);
    assert.match(problems[0]!, /^kiln\.backend\.kind: must be one of local, openai, llamacpp, ollama/);
    assert.match(problems[1]!, /^kiln\.backend\.url: must be an http:\/\/ or https:\/\/ URL/);
  });

  it('refuses a URL with a user name or password (the key has its own store)', () => {
    const { problems } = parseBackendSettings({ url: 'https://user:secret@gpu-box/v1' }, DEFAULT_BACKEND_SETTINGS);
    assert.equal(problems.length, 1);
    assert.ok(!problems[0]!.includes('secret'), `the password is not echoed: ${problems[0]}`);
    assert.match(problems[0]!, /must not contain a user name or password/);
  });

  it('posts to each API path under the base URL', async () => {
    const seen: string[] = [];
    const original = globalThis.fetch;
    globalThis.fetch = (async (url: URL) => {
      seen.push(String(url));
      throw new Error('not sent');
    }) as typeof fetch;
    try {
      for (const [kind, url] of [
        ['openai', 'http://h:8000'],
        ['openai', 'http://h:8000/v1/'],
        ['llamacpp', 'http://h:8080'],
        ['ollama', 'http://h:11434/'],
      ] as const) {
        const backend = createTextBackend({ kind, url, model: 'm', fallbackToLocal: false }, { limits: { retries: 0 } })!;
        await backend
          .complete({ prefix: '', suffix: '', prompt: '', extra: [], maxTokens: 1, timeLimitMs: 100, indent: 0, temperature: 0, topP: 1 }, { signal: new AbortController().signal })
          .catch(() => {});
      }
    } finally {
      globalThis.fetch = original;
    }
    assert.deepEqual(seen, ['http://h:8000/v1/completions', 'http://h:8000/v1/completions', 'http://h:8080/infill', 'http://h:11434/api/generate']);
  });

  it('says what is missing for a remote kind that cannot work', () => {
    assert.throws(() => createTextBackend({ kind: 'ollama', url: '', model: 'm', fallbackToLocal: false }), /kiln\.backend\.url" is empty/);
    assert.throws(() => createTextBackend({ kind: 'openai', url: 'http://h', model: '', fallbackToLocal: false }), /needs "kiln\.backend\.model"/);
    assert.ok(createTextBackend({ kind: 'llamacpp', url: 'http://h', model: '', fallbackToLocal: false }), 'llama-server needs no model name');
  });
});

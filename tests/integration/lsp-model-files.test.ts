// Hostile and slow model folders against the real server over stdio: validation and graph building run
// in the model worker, so while a model whose safetensors header takes seconds to check is loading,
// kiln/getStats still answers promptly; hostile config.json values are refused naming their field and
// file; kiln/validateModel on a FIFO config.json answers instead of blocking the server; and the same
// server answers completions again once kiln.modelPath points back at a good model.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { KilnValidateModelRequest, type ServerStatus } from '../../server/src/protocol';
import { ensureBuilt, REPO } from '../helpers/built-cli';
import { insertTexts, KilnClient } from '../helpers/lsp-client';
import { writeSlowToValidate } from '../helpers/slow-model';
import { TEST_SETTINGS, writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const MAX_TOKENS = 8;
/** The most a kiln/getStats request may wait while a model loads (the old server waited seconds). */
const STATS_BOUND_MS = 1_000;

const root = tempDir('kiln-model-files-lsp-');
const cacheDir = join(root, 'cache');
const goodDir = join(root, 'good');
const clients: KilnClient[] = [];

function withConfig(name: string, fields: Record<string, unknown>): string {
  const dir = join(root, name);
  cpSync(goodDir, dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, ...fields }));
  return dir;
}

before(async () => {
  ensureBuilt();
  writeTinyCodeModel(goodDir, { endless: true }); // every answer is exactly maxTokens of '+'/'-'
});
after(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
  rmSync(root, { recursive: true, force: true });
});

async function startServer(): Promise<KilnClient> {
  const client = await KilnClient.start({ settings: { ...TEST_SETTINGS, modelPath: goodDir, maxTokens: MAX_TOKENS, completionMode: 'line' }, initializationOptions: { cacheDir } });
  clients.push(client);
  assert.equal(client.statuses.items.at(-1)?.state, 'ready', client.stderr);
  return client;
}

/** Points kiln.modelPath at `dir` and, until the load ends, times kiln/getStats requests one after another. */
async function loadWhileAskingForStats(client: KilnClient, dir: string): Promise<{ status: ServerStatus; latencies: number[] }> {
  const from = client.statuses.items.length;
  const ended = client.statuses.waitFor((s) => s.state === 'ready' || s.state === 'error', `the load of ${dir} to end`, 120_000, from);
  let done: ServerStatus | undefined;
  void ended.then((s) => (done = s));
  await client.configure({ modelPath: dir });
  const latencies: number[] = [];
  while (done === undefined) {
    const t0 = performance.now();
    await client.getStats();
    latencies.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { status: await ended, latencies };
}

/** Resolves to `promise`'s value, or rejects when it takes longer than `ms` (a hang, not a timing). */
function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function answersCompletions(client: KilnClient, uri: string): Promise<void> {
  await client.open(uri, 'total = ');
  assert.equal(insertTexts(await client.complete(uri, { line: 0, character: 8 }))[0]?.length, MAX_TOKENS);
}

describe('the model worker bundle', () => {
  it('is built beside the server and never loads onnxruntime (sessions stay on the server thread)', () => {
    const bundle = readFileSync(join(REPO, 'dist', 'model-worker.js'), 'utf8');
    assert.ok(!bundle.includes('require("onnxruntime-node")'), 'dist/model-worker.js requires onnxruntime-node');
  });
});

describe('loading and validating off the server thread', () => {
  let client: KilnClient;
  before(async () => {
    client = await startServer();
  });

  it('while a model that takes seconds to validate loads, kiln/getStats answers within the bound', async () => {
    const slow = writeSlowToValidate(goodDir, join(root, 'slow'));
    const { status, latencies } = await loadWhileAskingForStats(client, slow);
    const worst = Math.max(...latencies);
    assert.ok(worst < STATS_BOUND_MS, `the slowest kiln/getStats during the load took ${worst.toFixed(0)} ms (bound ${STATS_BOUND_MS} ms)`);
    assert.ok(latencies.length >= 2, `stats were asked during the load (${latencies.length} times)`);
    assert.equal(status.state, 'ready', status.message);
    await answersCompletions(client, 'file:///work/slow.py');
  });

  for (const [name, fields, problem] of [
    ['rope-theta-zero', { rope_theta: 0 }, /config\.json: rope_theta must be a number from 1 to 1000000000000 \(got 0\)/],
    ['billion-layers', { num_hidden_layers: 1e9 }, /config\.json: num_hidden_layers must be an integer from 1 to 1024 \(got 1000000000\)/],
    ['negative-eps', { rms_norm_eps: -1 }, /config\.json: rms_norm_eps must be a number from 1e-12 to 1 \(got -1\)/],
  ] as const) {
    it(`a hostile config.json (${name}) is refused naming its field; the same server then answers from a good model`, async () => {
      const dir = withConfig(name, fields);
      const { status, latencies } = await loadWhileAskingForStats(client, dir);
      assert.equal(status.state, 'error');
      assert.ok(status.message?.includes(join(dir, 'config.json')), status.message);
      assert.match(status.message!, problem);
      assert.ok(Math.max(...latencies) < STATS_BOUND_MS, `kiln/getStats waited ${Math.max(...latencies).toFixed(0)} ms`);
      const from = client.statuses.items.length;
      await client.configure({ modelPath: goodDir });
      await client.statuses.waitFor((s) => s.state === 'ready', 'the good model to load', 30_000, from);
      await answersCompletions(client, `file:///work/${name}.py`);
    });
  }

  it('an adapter folder that does not exist: the base model loads, and the ready status names kiln.adapterPath', async () => {
    const gone = join(root, 'adapter-that-was-deleted');
    const from = client.statuses.items.length;
    await client.configure({ adapterPath: gone });
    const status = await client.statuses.waitFor((s) => s.state === 'ready' || s.state === 'error', 'the reload without the adapter', 30_000, from);
    assert.equal(status.state, 'ready', status.message);
    assert.equal(status.adapter, undefined);
    assert.match(status.message ?? '', new RegExp(`${gone.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} set in "kiln\\.adapterPath" does not exist; completions use the base model`));
    await answersCompletions(client, 'file:///work/no-adapter.py');
    const reset = client.statuses.items.length;
    await client.configure({ adapterPath: '' });
    await client.statuses.waitFor((s) => s.state === 'ready', 'the reload with no adapter set', 30_000, reset);
  });

  it('kiln/validateModel on a folder whose config.json is a FIFO answers, and the server keeps answering', async () => {
    const dir = join(root, 'fifo');
    cpSync(goodDir, dir, { recursive: true });
    unlinkSync(join(dir, 'config.json'));
    assert.equal(spawnSync('mkfifo', [join(dir, 'config.json')]).status, 0);
    const validated = client.connection.sendRequest(KilnValidateModelRequest.type, { path: dir });
    await within(10_000, client.getStats(), 'kiln/getStats while kiln/validateModel runs');
    const result = await within(15_000, validated, 'kiln/validateModel');
    assert.equal(result.ok, false);
    assert.match(result.message, new RegExp(`${join(dir, 'config.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: is not a regular file \\(a FIFO\\)`));
    assert.equal((await client.getStats()).state, 'ready');
    await answersCompletions(client, 'file:///work/after-fifo.py');
  });
});

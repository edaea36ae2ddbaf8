// `kiln model download` and the downloader under it, against a stand-in Hub on 127.0.0.1 (real HTTP,
// never an outside host): a full download that Kiln then completes with, resumption after an
// interrupted transfer and after a cancelled run, a 404, a corrupted file, a sharded checkpoint,
// a private repository's token (kept from the CDN), and a repository with only .bin weights.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { downloadModel, MANIFEST_FILE, modelFolder, PARTIAL_DIR, type DownloadManifest, type DownloadProgress } from '../../server/src/model/download/download-model';
import { HubError } from '../../server/src/model/download/hub';
import { ensureBuilt, runKiln as kiln } from '../helpers/built-cli';
import { type HubServer, readFolder, startHubServer } from '../helpers/hub-server';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { makeTinyWeights, TINY_LLAMA, writeTinyCheckpoint } from '../helpers/tiny-model';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer';
import { tempDir } from '../helpers/tiny-session';

for (const name of ['HF_TOKEN', 'KILN_HUB_URL', 'HF_ENDPOINT']) delete process.env[name]; // the CLI inherits the env

const root = tempDir('kiln-download-');
const single = join(root, 'single');
const sharded = join(root, 'sharded');
const SINGLE = 'kiln-test/tiny-coder';
const KILN_FILES = ['config.json', 'kiln.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
let hub: HubServer;
let storageCount = 0;
const freshStorage = () => join(root, `storage-${++storageCount}`);
const quick = { retryDelayMs: 5 };

before(async () => {
  ensureBuilt();
  writeTinyCodeModel(single);
  writeTinyCheckpoint(sharded, makeTinyWeights(TINY_LLAMA, 3), { shards: 2 });
  writeTinyTokenizer(sharded, { vocabSize: TINY_LLAMA.vocabSize });
  const singleFiles = readFolder(single);
  const extras = { 'README.md': Buffer.from('# tiny\n'), 'pytorch_model.bin': Buffer.alloc(64, 1) };
  const binOnly = new Map([...singleFiles].filter(([p]) => p !== 'model.safetensors'));
  binOnly.set('pytorch_model.bin', Buffer.alloc(64, 1));
  hub = await startHubServer({
    [SINGLE]: { files: new Map([...singleFiles, ...Object.entries(extras)]) },
    'kiln-test/tiny-sharded': { files: readFolder(sharded) },
    'kiln-test/private-coder': { files: singleFiles, token: 'hf_secret' },
    'kiln-test/bin-only': { files: binOnly },
  });
});
after(async () => {
  await hub?.close();
  rmSync(root, { recursive: true, force: true });
});

const download = (storage: string, ...args: string[]) => kiln('model', 'download', ...args, '--dest', storage, '--base-url', hub.url);

function assertSameFiles(dir: string, source: string, names: string[]): void {
  for (const name of names) assert.ok(readFileSync(join(dir, name)).equals(readFileSync(join(source, name))), `${name} differs from the source`);
}

function assertOneLineFailure(r: { code: number | null; stderr: string }, problem: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.match(lines.at(-1)!, /^kiln model download: /);
  assert.match(lines.at(-1)!, problem);
}

const modelBytes = () => statSync(join(single, 'model.safetensors')).size;
const cdnRanges = () => hub.requests.filter((r) => r.origin === 'cdn' && r.range).map((r) => r.range!);

describe('kiln model download', () => {
  it('fetches the files Kiln needs, verifies them, and `kiln complete` runs on the result', async () => {
    const storage = freshStorage();
    const r = await download(storage, SINGLE, '--json');
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { dir: string; manifest: DownloadManifest; validation: { ok: boolean; message: string }; alreadyComplete: boolean };
    const dir = modelFolder(storage, SINGLE);
    assert.equal(report.dir, dir);
    assert.deepEqual(report.validation.ok, true, report.validation.message);
    assert.equal(report.alreadyComplete, false);
    assert.deepEqual(readdirSync(dir).sort(), [...KILN_FILES, MANIFEST_FILE].sort(), 'no README, no .bin, no .partial left');
    assertSameFiles(dir, single, KILN_FILES);
    const manifest = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as DownloadManifest;
    assert.equal(manifest.repo, SINGLE);
    assert.match(manifest.commit ?? '', /^[0-9a-f]{40}$/);
    assert.deepEqual(manifest.files.map((f) => f.path).sort(), KILN_FILES);
    for (const f of manifest.files) assert.equal(f.size, statSync(join(dir, f.path)).size);
    assert.match(r.stderr, /model\.safetensors \(\d\/5\)/, 'progress on stderr');

    const again = await download(storage, SINGLE, '--json');
    assert.equal(again.code, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { alreadyComplete: boolean }).alreadyComplete, true);

    const code = join(root, 'sample.ts');
    writeFileSync(code, 'function add(a: number, b: number) {\n  return a + b;\n}\n\nfunction sub(a: number, b: number) {\n  \n}\n');
    const complete = (model: string) =>
      kiln('complete', code, '--line', '6', '--col', '3', '--model', model, '--json', '--ep', 'cpu', '--threads', '1', '--cache', join(root, 'cache'));
    const [fromDownload, fromSource] = await Promise.all([complete(dir), complete(single)]);
    assert.equal(fromDownload.code, 0, fromDownload.stderr);
    assert.deepEqual((JSON.parse(fromDownload.stdout) as { items: string[] }).items, (JSON.parse(fromSource.stdout) as { items: string[] }).items);
  });

  it('resumes a transfer cut mid-file with a Range request and verifies the whole file', async () => {
    const storage = freshStorage();
    const cutAt = Math.floor(modelBytes() / 3);
    hub.faults.cutOnce = { path: 'model.safetensors', afterBytes: cutAt };
    const before = hub.requests.length;
    const r = await download(storage, SINGLE);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /model\.safetensors: download interrupted.*retry 1/);
    const ranges = hub.requests
      .slice(before)
      .filter((q) => q.origin === 'cdn' && q.range)
      .map((q) => q.range);
    assert.deepEqual(ranges, [`bytes=${cutAt}-`]);
    assertSameFiles(modelFolder(storage, SINGLE), single, KILN_FILES);
  });

  it('fails with a clear message for a repository that does not exist, and creates nothing', async () => {
    const storage = freshStorage();
    const r = await download(storage, 'kiln-test/no-such-model');
    assertOneLineFailure(r, /model kiln-test\/no-such-model not found on http:\/\/127\.0\.0\.1:\d+ \(404\)/);
    assert.equal(existsSync(storage), false);
  });

  it('rejects a file whose bytes differ from the advertised sha256, naming it, and installs nothing', async () => {
    const storage = freshStorage();
    hub.faults.corrupt = 'model.safetensors';
    try {
      const r = await download(storage, SINGLE);
      assertOneLineFailure(r, /model\.safetensors from kiln-test\/tiny-coder is corrupt: its sha256 is [0-9a-f]{64}, the Hub lists [0-9a-f]{64}/);
    } finally {
      hub.faults.corrupt = undefined;
    }
    const dir = modelFolder(storage, SINGLE);
    assert.equal(existsSync(join(dir, 'model.safetensors')), false, 'not moved into place');
    assert.equal(existsSync(join(dir, PARTIAL_DIR, 'model.safetensors')), false, 'the bad partial is deleted');
    assert.equal(existsSync(join(dir, MANIFEST_FILE)), false);
    const retry = await download(storage, SINGLE);
    assert.equal(retry.code, 0, retry.stderr);
  });

  it('downloads a sharded checkpoint: the index and every shard it names', async () => {
    const storage = freshStorage();
    const r = await download(storage, 'kiln-test/tiny-sharded', '--json');
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { dir: string; manifest: DownloadManifest; validation: { ok: boolean; message: string } };
    assert.equal(report.validation.ok, true, report.validation.message);
    const shards = readdirSync(sharded)
      .filter((f) => f.endsWith('.safetensors'))
      .sort();
    assert.equal(shards.length, 2);
    const names = ['config.json', 'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json', ...shards];
    assert.deepEqual(report.manifest.files.map((f) => f.path).sort(), names.sort());
    assertSameFiles(report.dir, sharded, names);
  });

  it('sends the token to the Hub but never to the CDN, and says a private repository needs one', async () => {
    const denied = await download(freshStorage(), 'kiln-test/private-coder');
    assertOneLineFailure(denied, /not found .*give a token \(--token, HF_TOKEN/);
    const before = hub.requests.length;
    const r = await download(freshStorage(), 'kiln-test/private-coder', '--token', 'hf_secret');
    assert.equal(r.code, 0, r.stderr);
    const seen = hub.requests.slice(before);
    assert.ok(
      seen.some((q) => q.origin === 'cdn'),
      'LFS files came from the CDN',
    );
    for (const q of seen) assert.equal(q.authorization, q.origin === 'hub' ? 'Bearer hf_secret' : undefined, `${q.origin} ${q.path}`);
  });

  it('refuses a repository with only .bin weights', async () => {
    const storage = freshStorage();
    const r = await download(storage, 'kiln-test/bin-only');
    assertOneLineFailure(r, /only PyTorch \.bin weights \(pytorch_model\.bin\); Kiln reads safetensors only/);
    assert.equal(existsSync(storage), false);
  });

  it('answers a malformed id with the usage (exit 2)', async () => {
    const r = await kiln('model', 'download', 'not-a-repo-id');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not a Hub model id of the form owner\/name[\s\S]*usage: kiln model download/);
  });
});

describe('downloadModel', () => {
  it('keeps the partial of an interrupted run and resumes it on the next run', async () => {
    const storage = freshStorage();
    const cutAt = Math.floor(modelBytes() / 2);
    hub.faults.cutOnce = { path: 'model.safetensors', afterBytes: cutAt };
    await assert.rejects(downloadModel({ repo: SINGLE, storageDir: storage, baseUrl: hub.url, retries: 0 }), (err: unknown) => {
      assert.ok(err instanceof HubError && err.kind === 'transient', String(err));
      assert.match(err.message, /^model\.safetensors: download interrupted/);
      return true;
    });
    const dir = modelFolder(storage, SINGLE);
    assert.equal(statSync(join(dir, PARTIAL_DIR, 'model.safetensors')).size, cutAt);
    assert.equal(existsSync(join(dir, MANIFEST_FILE)), false);
    const before = cdnRanges().length;
    const result = await downloadModel({ repo: SINGLE, storageDir: storage, baseUrl: hub.url, ...quick });
    assert.deepEqual(cdnRanges().slice(before), [`bytes=${cutAt}-`]);
    assert.equal(result.fetchedBytes, modelBytes() - cutAt, 'only the rest of the cut file is fetched again');
    assertSameFiles(dir, single, KILN_FILES);
  });

  it('stops on its AbortSignal, keeping what it fetched, and reports progress up to the total', async () => {
    const storage = freshStorage();
    const abort = new AbortController();
    const cancelAt = { path: 'model.safetensors', afterBytes: 1000 };
    hub.faults.cutOnce = cancelAt; // a stalled transfer the user gives up on: abort once bytes arrived
    const first = downloadModel({
      repo: SINGLE,
      storageDir: storage,
      baseUrl: hub.url,
      signal: abort.signal,
      progressIntervalMs: 0,
      onProgress: (p) => p.file === 'model.safetensors' && p.fileBytes > 0 && abort.abort(),
    });
    await assert.rejects(first, (err: unknown) => (err as Error).name === 'AbortError');
    hub.faults.cutOnce = undefined;
    const partial = join(modelFolder(storage, SINGLE), PARTIAL_DIR, 'model.safetensors');
    assert.ok(statSync(partial).size > 0, 'the partial stays for the next run');
    const events: DownloadProgress[] = [];
    const result = await downloadModel({ repo: SINGLE, storageDir: storage, baseUrl: hub.url, progressIntervalMs: 0, onProgress: (p) => events.push(p) });
    assert.ok(result.resumedBytes > 0);
    const last = events.at(-1)!;
    const total = result.manifest.files.reduce((n, f) => n + f.size, 0);
    assert.equal(last.phase, 'done');
    assert.equal(last.bytes, total);
    assert.ok(events.every((e) => e.total === undefined || e.total === total));
    for (let i = 1; i < events.length; i++) assert.ok(events[i]!.bytes >= events[i - 1]!.bytes, 'overall bytes never go back');
  });

  it('starts a file over when the server ignores the Range header', async () => {
    const storage = freshStorage();
    hub.faults.cutOnce = { path: 'model.safetensors', afterBytes: 500 };
    hub.faults.ignoreRange = true;
    try {
      const result = await downloadModel({ repo: SINGLE, storageDir: storage, baseUrl: hub.url, ...quick });
      assert.equal(result.resumedBytes, 0);
      assertSameFiles(result.dir, single, KILN_FILES);
    } finally {
      hub.faults.ignoreRange = false;
    }
  });

  it('stops reading a file that runs past its listed size, and deletes it', async () => {
    const storage = freshStorage();
    hub.faults.grow = 'tokenizer.json';
    try {
      await assert.rejects(
        downloadModel({ repo: SINGLE, storageDir: storage, baseUrl: hub.url, ...quick }),
        /^HubError: tokenizer\.json from kiln-test\/tiny-coder is corrupt: more bytes than the \d+ the Hub lists/,
      );
    } finally {
      hub.faults.grow = undefined;
    }
    assert.equal(existsSync(join(modelFolder(storage, SINGLE), PARTIAL_DIR, 'tokenizer.json')), false);
  });

  it('retries transient server errors but not a 404', async () => {
    hub.faults.fail = { path: '/revision/main', status: 503, times: 2 };
    const result = await downloadModel({ repo: SINGLE, storageDir: freshStorage(), baseUrl: hub.url, ...quick });
    assert.equal(hub.faults.fail.times, 0);
    assert.equal(result.manifest.files.length, KILN_FILES.length);
    const before = hub.requests.length;
    await assert.rejects(downloadModel({ repo: 'kiln-test/missing', storageDir: freshStorage(), baseUrl: hub.url, ...quick }), /not found/);
    assert.equal(hub.requests.length - before, 1, 'a 404 is asked once');
  });
});

// The downloader against a hostile stand-in Hub on 127.0.0.1: endless and gzip-bomb listings, a
// listing that never answers (with a caller's signal, under forced GC), files without a listed size
// or hash, a 1-byte trickle, and shard names that point into dot-folders or out of the model folder.
// Each case must end within a generous bound (limits set small through options), with nothing
// written outside the model folder; the capped reads are what keep memory bounded.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, afterEach, before, describe, it } from 'node:test';
import { downloadModel, type DownloadManifest, type DownloadOptions, modelFolder } from '../../server/src/model/download/download-model';
import { HubError } from '../../server/src/model/download/hub';
import { ensureBuilt, runKiln as kiln } from '../helpers/built-cli';
import { type HubServer, readFolder, startHubServer } from '../helpers/hub-server';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { makeTinyWeights, TINY_LLAMA, writeTinyCheckpoint } from '../helpers/tiny-model';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer';
import { tempDir } from '../helpers/tiny-session';

for (const name of ['HF_TOKEN', 'KILN_HUB_URL', 'HF_ENDPOINT']) delete process.env[name];

const root = tempDir('kiln-download-hostile-');
const SINGLE = 'kiln-test/tiny-coder';
/** Shard names a hostile index may give; each must be refused before anything is fetched. */
const HOSTILE_SHARDS = [
  '.partial/model-00001-of-00001.safetensors',
  '.git/model-00001-of-00001.safetensors',
  'sub/.hidden/model.safetensors',
  '.model.safetensors',
  '../model-00001-of-00001.safetensors',
  'sub/../../model.safetensors',
  '/tmp/model.safetensors',
  'sub\\..\\..\\model.safetensors',
  'model\0.safetensors',
];
const BOUND_MS = 30_000; // where the old code hung forever; every case here ends in a few seconds
let hub: HubServer;
let storageCount = 0;
const freshStorage = () => join(root, `storage-${++storageCount}`);
/** Small limits so every hostile case ends fast; the defaults are the same rules, only larger. */
const small: Partial<DownloadOptions> = {
  retryDelayMs: 5,
  retries: 2,
  maxListingBytes: 256 * 1024,
  maxSmallFileBytes: 256 * 1024,
  throughputWindowMs: 400,
  minBytesPerSecond: 4096,
};

before(async () => {
  ensureBuilt();
  const single = join(root, 'source-single');
  const sharded = join(root, 'source-sharded');
  writeTinyCodeModel(single);
  writeTinyCheckpoint(sharded, makeTinyWeights(TINY_LLAMA, 5), { shards: 1 });
  writeTinyTokenizer(sharded, { vocabSize: TINY_LLAMA.vocabSize });
  const shardedFiles = readFolder(sharded);
  const shard = [...shardedFiles].find(([p]) => p.endsWith('.safetensors'))!;
  const repos: Parameters<typeof startHubServer>[0] = { [SINGLE]: { files: readFolder(single) } };
  HOSTILE_SHARDS.forEach((name, i) => {
    const files = new Map([...shardedFiles].filter(([p]) => !p.endsWith('.safetensors')));
    files.set('model.safetensors.index.json', Buffer.from(JSON.stringify({ metadata: {}, weight_map: { 'model.embed_tokens.weight': name } })));
    files.set(name, shard[1]);
    repos[`kiln-test/hostile-shard-${i}`] = { files };
  });
  hub = await startHubServer(repos);
});
afterEach(() => {
  for (const key of Object.keys(hub.faults)) delete (hub.faults as Record<string, unknown>)[key];
});
after(async () => {
  await hub?.close();
  rmSync(root, { recursive: true, force: true });
});

/** Every file and link under `storage` (folders are walked, not listed). */
function filesUnder(storage: string): string[] {
  if (!existsSync(storage)) return [];
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (lstatSync(path).isDirectory()) walk(path);
      else found.push(path);
    }
  };
  walk(storage);
  return found;
}

/** Nothing was written anywhere in the test's temp root except inside the model folder of `repo`. */
function assertNothingOutside(storage: string, repo: string): void {
  const target = modelFolder(storage, repo) + sep;
  for (const top of readdirSync(root)) {
    const path = join(root, top);
    if (path === storage || top.startsWith('source-')) continue;
    if (!top.startsWith('storage-')) assert.fail(`unexpected ${path} in the temp root`);
  }
  for (const file of filesUnder(storage)) assert.ok(file.startsWith(target), `${relative(root, file)} is outside ${relative(root, target)}`);
}

async function refused(o: Partial<DownloadOptions> & { repo?: string }, problem: RegExp): Promise<HubError> {
  const storage = freshStorage();
  const repo = o.repo ?? SINGLE;
  let caught: unknown;
  await downloadModel({ ...small, ...o, repo, storageDir: storage, baseUrl: hub.url }).then(
    () => assert.fail('the download should have been refused'),
    (err: unknown) => (caught = err),
  );
  assert.ok(caught instanceof HubError, String(caught));
  assert.match(caught.message, problem);
  assertNothingOutside(storage, repo);
  return caught;
}

describe('downloads from a hostile hub', () => {
  it('refuses an endless listing at the cap, naming the URL and the cap', { timeout: BOUND_MS }, async () => {
    hub.faults.hostileListing = 'endless';
    await refused({}, /the listing at http:\/\/127\.0\.0\.1:\d+\/api\/models\/kiln-test\/tiny-coder\/revision\/main\?blobs=true is larger than 256\.0 KiB/);
  });

  it('refuses a gzip-bomb listing at the cap on its decompressed size', { timeout: BOUND_MS }, async () => {
    hub.faults.hostileListing = 'gzip-bomb';
    await refused({}, /the listing at http:\/\/127\.0\.0\.1:\d+\/api\/\S+ is larger than 256\.0 KiB/);
  });

  it('times the listing out even with a caller signal and garbage collection running (Node 20)', { timeout: BOUND_MS }, async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const collect = setInterval(gc, 20); // nodejs/node#57736: AbortSignal.any lost its timeout to GC
    hub.faults.hostileListing = 'hang';
    try {
      await refused(
        { signal: new AbortController().signal, listingTimeoutMs: 300, retries: 1 },
        /listing kiln-test\/tiny-coder on http:\/\/127\.0\.0\.1:\d+: no answer within 0\.3 s/,
      );
    } finally {
      clearInterval(collect);
    }
  });

  it('caps a file the listing gives no size for, and deletes what it wrote', { timeout: BOUND_MS }, async () => {
    hub.faults.editListing = (siblings) => {
      for (const s of siblings) if (s.rfilename === 'tokenizer.json') delete s.size, delete s.blobId;
    };
    hub.faults.endless = 'tokenizer.json';
    await refused({}, /tokenizer\.json of kiln-test\/tiny-coder is larger than the 256\.0 KiB cap on files the Hub lists without a size/);
  });

  it('refuses a config file listed larger than the cap before fetching it', { timeout: BOUND_MS }, async () => {
    hub.faults.editListing = (siblings) => {
      for (const s of siblings) if (s.rfilename === 'tokenizer.json') s.size = 2 ** 40;
    };
    const before = hub.requests.length;
    await refused({}, /tokenizer\.json of kiln-test\/tiny-coder: the Hub lists 1024\.00 GiB, more than the 256\.0 KiB cap/);
    assert.ok(!hub.requests.slice(before).some((r) => r.path.endsWith('/tokenizer.json')), 'never requested');
  });

  it('refuses weights whose size neither the listing nor the Hub gives', { timeout: BOUND_MS }, async () => {
    hub.faults.editListing = (siblings) => {
      for (const s of siblings) if (s.rfilename === 'model.safetensors') delete s.size, delete s.lfs, delete s.blobId;
    };
    hub.faults.noLinkedHeaders = true;
    await refused({}, /model\.safetensors of kiln-test\/tiny-coder: the Hub gives no size for these weights/);
  });

  it('aborts a 1-byte trickle below the throughput floor and gives up after the retries', { timeout: BOUND_MS }, async () => {
    hub.faults.trickle = { path: 'model.safetensors', intervalMs: 50 };
    const before = hub.requests.length;
    await refused({}, /model\.safetensors: slower than 4\.0 KiB\/s over 0\.4 s .*gave up after 2 retries/);
    const attempts = hub.requests.slice(before).filter((r) => r.origin === 'cdn');
    assert.equal(attempts.length, 3, 'the first attempt and 2 retries, although every attempt got a few bytes');
  });

  it('ends a trickle at the overall deadline when no throughput floor is set', { timeout: BOUND_MS }, async () => {
    hub.faults.trickle = { path: 'model.safetensors', intervalMs: 50 };
    await refused({ minBytesPerSecond: 0, deadlineMs: 1500 }, /downloading kiln-test\/tiny-coder did not finish within 1\.5 s/);
  });

  for (const [i, name] of HOSTILE_SHARDS.entries()) {
    it(`refuses the shard name ${JSON.stringify(name)} and writes nothing outside the model folder`, { timeout: BOUND_MS }, async () => {
      const repo = `kiln-test/hostile-shard-${i}`;
      const before = hub.requests.length;
      await refused({ repo }, /model\.safetensors\.index\.json of kiln-test\/hostile-shard-\d+ names a shard .* that is not a safetensors file inside the repository/);
      assert.ok(!hub.requests.slice(before).some((r) => r.origin === 'cdn'), 'no shard was requested');
    });
  }
});

describe('kiln model download summary', () => {
  it('says "unverified" for every file the Hub gives no size or no hash for', { timeout: BOUND_MS }, async () => {
    hub.faults.editListing = (siblings) => {
      for (const s of siblings) {
        if (s.rfilename === 'tokenizer_config.json') delete s.size, delete s.blobId;
        if (s.rfilename === 'model.safetensors') delete s.lfs, delete s.blobId;
      }
    };
    hub.faults.noLinkedHeaders = true;
    const storage = freshStorage();
    const r = await kiln('model', 'download', SINGLE, '--dest', storage, '--base-url', hub.url);
    assert.equal(r.code, 0, r.stderr);
    const line = r.stdout.split('\n').find((l) => l.startsWith('files'))!;
    assert.doesNotMatch(line, /sizes and sha256 verified/);
    assert.match(line, /unverified: model\.safetensors \(no hash\), tokenizer_config\.json \(no size, no hash\); the other 3 verified by size and hash/);
    const manifest = JSON.parse(readFileSync(join(modelFolder(storage, SINGLE), 'kiln-download.json'), 'utf8')) as DownloadManifest;
    const by = Object.fromEntries(manifest.files.map((f) => [f.path, f.verifiedBy]));
    assert.deepEqual(by, { 'config.json': 'git-blob', 'kiln.json': 'git-blob', 'model.safetensors': 'size', 'tokenizer.json': 'git-blob', 'tokenizer_config.json': 'nothing' });
    assertNothingOutside(storage, SINGLE);
  });

  it('says every file was verified when the Hub lists every size and hash', { timeout: BOUND_MS }, async () => {
    const r = await kiln('model', 'download', SINGLE, '--dest', freshStorage(), '--base-url', hub.url);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^files .*, size and hash of every file verified$/m);
  });
});

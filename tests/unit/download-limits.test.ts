// The downloader's bounds at their own layer: paths that must never be written, a timeout that
// survives garbage collection on Node 20, the throughput floor, the capped body reader, the limits'
// defaults, and the honest "unverified" wording of the summary.
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, it } from 'node:test';
import { describeVerification, type ManifestFile } from '../../server/src/model/download/download-model';
import { HubError, readCappedBody } from '../../server/src/model/download/hub';
import { DEFAULT_LIMITS, resolveLimits } from '../../server/src/model/download/limits';
import { isSafeRelativePath, shardsFromIndex } from '../../server/src/model/download/plan';
import { linkedAbort, ThroughputWatch } from '../../server/src/model/download/watchdogs';

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

describe('isSafeRelativePath', () => {
  it('accepts the names checkpoints use', () => {
    for (const path of ['model.safetensors', 'model-00001-of-00002.safetensors', 'weights/model-1.safetensors', 'tokenizer.json']) assert.ok(isSafeRelativePath(path), path);
  });

  it('refuses dot-folders, escapes, absolute paths, backslashes, control characters and devices', () => {
    const refused = [
      '',
      '.partial/model.safetensors',
      '.git/x.safetensors',
      'sub/.cache/x.safetensors',
      '.x.safetensors',
      '..',
      '../x',
      'a/../../x',
      'a/./x',
      '/etc/x',
      'C:/x',
      'C:x',
      'a\\b',
      'a\0b',
      'a\nb',
      'a//b',
      'a/',
      'x.',
      'x ',
      'NUL',
      'com1.safetensors',
      'a/aux.json',
      'x'.repeat(256),
    ];
    for (const path of refused) assert.equal(isSafeRelativePath(path), false, JSON.stringify(path));
  });
});

describe('shardsFromIndex', () => {
  const listed = (...paths: string[]) => paths.map((path) => ({ path, size: 1 }));
  const index = (names: string[]) => JSON.stringify({ weight_map: Object.fromEntries(names.map((n, i) => [`w${i}`, n])) });

  it('refuses a shard under .partial/ even when the listing has it', () => {
    const name = '.partial/model-00001-of-00001.safetensors';
    assert.throws(
      () => shardsFromIndex('o/r', index([name]), listed(name)),
      /names a shard "\.partial\/model-00001-of-00001\.safetensors" that is not a safetensors file inside the repository/,
    );
  });

  it('refuses two shards that differ only in case (one file on macOS and Windows)', () => {
    const names = ['Model-1.safetensors', 'model-1.safetensors'];
    assert.throws(() => shardsFromIndex('o/r', index(names), listed(...names)), /differ only in case/);
  });

  it('returns the listed shards of a sound index', () => {
    const names = ['model-00002-of-00002.safetensors', 'model-00001-of-00002.safetensors'];
    assert.deepEqual(
      shardsFromIndex('o/r', index(names), listed(...names)).map((f) => f.path),
      [...names].sort(),
    );
  });
});

describe('linkedAbort', () => {
  it('times out with a caller signal while garbage collection runs (AbortSignal.any did not on Node 20)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const caller = new AbortController();
    const fired = new Promise<unknown>((done) => {
      const a = linkedAbort(caller.signal, { ms: 100, reason: () => new Error('timed out') });
      a.signal.addEventListener('abort', () => done(a.signal.reason));
    });
    const collect = setInterval(gc, 10);
    try {
      const outcome = await Promise.race([fired, sleep(5000).then(() => 'never fired')]);
      assert.equal((outcome as Error).message, 'timed out');
    } finally {
      clearInterval(collect);
    }
  });

  it("follows the caller's signal with its reason, and stops after dispose", async () => {
    const caller = new AbortController();
    const a = linkedAbort(caller.signal, { ms: 50, reason: () => new Error('timed out') });
    caller.abort(new Error('cancelled'));
    assert.equal((a.signal.reason as Error).message, 'cancelled');
    a.dispose();

    const b = linkedAbort(undefined, { ms: 30, reason: () => new Error('timed out') });
    b.dispose();
    await sleep(100);
    assert.equal(b.signal.aborted, false, 'a disposed timer never fires');

    const gone = new AbortController();
    gone.abort(new Error('already'));
    assert.equal((linkedAbort(gone.signal).signal.reason as Error).message, 'already');
  });
});

describe('ThroughputWatch', () => {
  const watch = (minBytesPerSecond: number, onSlow: (err: HubError) => void) => new ThroughputWatch({ minBytesPerSecond, windowMs: 200, what: 'model.safetensors', onSlow });

  it('trips once when a whole window brings fewer bytes than the floor, naming the file and the floor', async () => {
    const slow: HubError[] = [];
    const w = watch(1024, (err) => slow.push(err));
    const drip = setInterval(() => w.add(1), 20); // ~50 B/s, far below 1 KiB/s
    try {
      for (let i = 0; i < 100 && !slow.length; i++) await sleep(50);
    } finally {
      clearInterval(drip);
      w.stop();
    }
    assert.equal(slow.length, 1);
    assert.equal(w.tripped, slow[0]);
    assert.equal(slow[0]!.kind, 'transient');
    assert.match(slow[0]!.message, /^model\.safetensors: slower than 1\.0 KiB\/s over 0\.2 s \(\d+ bytes arrived\)$/);
  });

  it('leaves a transfer well above the floor alone, and does nothing when the floor is 0', async () => {
    const slow: HubError[] = [];
    const fast = watch(1024, (err) => slow.push(err));
    const off = watch(0, (err) => slow.push(err));
    const feed = setInterval(() => fast.add(1024), 10); // ~100 KiB/s
    await sleep(700);
    clearInterval(feed);
    fast.stop();
    off.stop();
    assert.deepEqual(slow, []);
  });
});

describe('readCappedBody', () => {
  const refuse = (what: string) => new HubError(`the body ${what}`, 'limit');

  it('stops an endless body at the cap, having pulled only about the cap', async () => {
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 1024;
        controller.enqueue(new Uint8Array(1024));
      },
    });
    await assert.rejects(readCappedBody(new Response(endless), 64 * 1024, refuse), /^HubError: the body is larger than 64\.0 KiB, the cap$/);
    assert.ok(pulled <= 80 * 1024, `pulled ${pulled} bytes`);
  });

  it('refuses a Content-Length over the cap before reading, and returns a body within it', async () => {
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.close();
      },
    });
    const big = new Response(body, { headers: { 'content-length': String(2 ** 30) } });
    await assert.rejects(readCappedBody(big, 1024, refuse), /declares 1\.00 GiB in its Content-Length, more than the 1\.0 KiB cap/);
    assert.ok(pulled <= 1, 'nothing read');
    assert.equal((await readCappedBody(new Response('{"siblings":[]}'), 1024, refuse)).toString(), '{"siblings":[]}');
  });
});

describe('download limits', () => {
  it('defaults every limit and takes the given ones', () => {
    assert.deepEqual(resolveLimits({}), DEFAULT_LIMITS);
    assert.equal(DEFAULT_LIMITS.maxListingBytes, 16 * 2 ** 20);
    const given = resolveLimits({ maxListingBytes: 1, minBytesPerSecond: 0, deadlineMs: Number.NaN });
    assert.equal(given.maxListingBytes, 1);
    assert.equal(given.minBytesPerSecond, 0, '0 turns the floor off');
    assert.equal(given.deadlineMs, DEFAULT_LIMITS.deadlineMs, 'NaN is no limit');
  });
});

describe('describeVerification', () => {
  const file = (path: string, verifiedBy?: ManifestFile['verifiedBy']): ManifestFile => ({ path, size: 1, sha256: '0'.repeat(64), verifiedBy });

  it('says verified only when every file had a size and a hash', () => {
    assert.equal(describeVerification([file('config.json', 'git-blob'), file('model.safetensors', 'sha256')]), 'size and hash of every file verified');
  });

  it('names every file without a hash or a size as unverified', () => {
    const files = [file('model.safetensors', 'size'), file('config.json', 'git-blob'), file('tokenizer.json', 'nothing'), file('old.json')];
    assert.equal(
      describeVerification(files),
      'unverified: model.safetensors (no hash), old.json (not recorded), tokenizer.json (no size, no hash); the other 1 verified by size and hash',
    );
    const many = Array.from({ length: 6 }, (_, i) => file(`f${i}.json`, 'nothing'));
    assert.match(describeVerification(many), /^unverified: f0\.json \(no size, no hash\), .*f3\.json \(no size, no hash\) and 2 more$/);
  });
});

// The graph cache as a whole: listing (graphs, their adapter graphs, leftovers), pruning to a size
// cap least recently used first (never the kept or recently used graph), the prune after a real
// build, and `kiln model cache` listing and cleaning.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runModelCache } from '../../server/src/commands/model-cache';
import { expectedTensors } from '../../server/src/model/checkpoint';
import { listGraphCache, pruneGraphCache } from '../../server/src/model/graph/graph-cache';
import { parameterCount } from '../../server/src/model/model-size';
import { prepareGraph } from '../../server/src/runtime/prepare-graph';
import { AUTO_QUANTIZE_MIN_PARAMETERS, automaticPrecision } from '../../server/src/runtime/quantization-choice';
import { makeTinyWeights, TINY_LLAMA, TINY_LLAMA_GQA, TINY_QWEN2, writeTinyCheckpoint } from '../helpers/tiny-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-graph-cache-');
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `cache-${n++}`);
const HOUR = 3600_000;

/** A fake cache folder: `bytes` of data, a build record, last used `ageMs` ago. */
function fakeGraph(cacheDir: string, key: string, bytes: number, ageMs: number, now: number): string {
  const dir = join(cacheDir, 'graphs', key);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx.data'), new Uint8Array(bytes));
  writeFileSync(join(dir, 'kiln-build.json'), JSON.stringify({ modelDir: `/models/${key}`, weightType: 'float32' }));
  const t = new Date(now - ageMs);
  utimesSync(dir, t, t);
  return dir;
}

describe('graph cache pruning', () => {
  it('removes least recently used first until under the cap, and never a kept or recent graph', () => {
    const cache = fresh();
    const now = Date.now();
    const oldest = fakeGraph(cache, 'a', 4000, 5 * HOUR, now);
    const kept = fakeGraph(cache, 'b', 4000, 4 * HOUR, now);
    const middle = fakeGraph(cache, 'c', 4000, 3 * HOUR, now);
    const newer = fakeGraph(cache, 'd', 4000, 2 * HOUR, now);
    const recent = fakeGraph(cache, 'e', 4000, 60_000, now);
    const listing = listGraphCache(cache, now);
    assert.deepEqual(
      listing.graphs.map((g) => g.key),
      ['a', 'b', 'c', 'd', 'e'],
      'least recently used first',
    );
    assert.ok(listing.totalBytes >= 20_000);
    // a cap of two and a half graphs: a, c and d go (b is kept although older), e stays as recent
    const result = pruneGraphCache(cache, { limitBytes: 2.5 * 4000, keep: [kept], now });
    assert.deepEqual(
      result.removed.map((g) => g.key),
      ['a', 'c', 'd'],
    );
    for (const gone of [oldest, middle, newer]) assert.equal(existsSync(gone), false);
    assert.equal(existsSync(kept), true, 'the kept graph stays although it is older');
    assert.equal(existsSync(recent), true, 'a graph used a minute ago stays');
    assert.ok(result.totalBytes <= 2.5 * 4000, `${result.totalBytes}`);
    assert.deepEqual(readdirSync(join(cache, 'graphs')).sort(), ['b', 'e'], 'no set-aside folder left behind');
  });

  it('everything may go under a zero cap, except recent use; crashed builds older than an hour always go', () => {
    const cache = fresh();
    const now = Date.now();
    fakeGraph(cache, 'old', 100, 2 * HOUR, now);
    fakeGraph(cache, 'recent', 100, 1000, now);
    const crashed = join(cache, 'graphs', 'f00.tmp-1-x');
    const building = join(cache, 'graphs', 'f01.tmp-2-y');
    for (const [dir, age] of [
      [crashed, 2 * HOUR],
      [building, 1000],
    ] as const) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'model.onnx.data'), new Uint8Array(10));
      utimesSync(dir, new Date(now - age), new Date(now - age));
    }
    assert.equal(listGraphCache(cache, now).leftovers.length, 2);
    const oldTmp = join(cache, 'graphs', 'recent', 'lora-ab.onnx.data.tmp-1-z');
    const newTmp = join(cache, 'graphs', 'recent', 'lora-cd.onnx.data.tmp-2-w');
    writeFileSync(oldTmp, new Uint8Array(10));
    writeFileSync(newTmp, new Uint8Array(10));
    utimesSync(oldTmp, new Date(now - 2 * HOUR), new Date(now - 2 * HOUR));
    utimesSync(join(cache, 'graphs', 'recent'), new Date(now - 1000), new Date(now - 1000));
    pruneGraphCache(cache, { limitBytes: 0, now });
    assert.deepEqual(readdirSync(join(cache, 'graphs')).sort(), ['f01.tmp-2-y', 'recent'], 'a build in progress and a recent graph stay');
    assert.equal(existsSync(oldTmp), false, "a crashed adapter build's temporary file goes");
    assert.equal(existsSync(newTmp), true, 'an adapter build in progress keeps its file');
    pruneGraphCache(cache, { limitBytes: 0, recentMs: 0, now });
    assert.deepEqual(readdirSync(join(cache, 'graphs')), ['f01.tmp-2-y']);
  });

  it('a real build prunes older graphs past the cap and keeps the one it built; adapters are listed with their base', () => {
    const cache = fresh();
    const model = join(root, 'model');
    writeTinyCheckpoint(model, makeTinyWeights(TINY_LLAMA, 3));
    const first = prepareGraph(model, { cacheDir: cache });
    const old = new Date(Date.now() - 2 * HOUR);
    utimesSync(first.graphDir, old, old);
    const second = prepareGraph(model, { cacheDir: cache, quantization: 8, cacheLimitBytes: 1 });
    assert.equal(existsSync(first.graphDir), false, 'the older fp32 graph was pruned');
    assert.equal(existsSync(second.modelPath), true, 'the graph just built is kept');
    const listing = listGraphCache(cache);
    assert.equal(listing.graphs.length, 1);
    assert.equal(listing.graphs[0]!.precision, 'int8');
    assert.equal(listing.graphs[0]!.modelDir, model);
  });
});

describe('kiln model cache', () => {
  it('lists the graphs and cleans them (recent ones only with --force)', async () => {
    const cache = fresh();
    const now = Date.now();
    fakeGraph(cache, 'aaa', 2 ** 20, 3 * HOUR, now);
    fakeGraph(cache, 'bbb', 2 ** 20, 1000, now);
    const lines: string[] = [];
    const out = (t: string) => lines.push(t);
    assert.equal(await runModelCache(['--cache', cache], out), 0);
    assert.match(lines.join('\n'), /2 graph\(s\)/);
    assert.match(lines.join('\n'), /aaa .*\/models\/aaa/);
    lines.length = 0;
    assert.equal(await runModelCache(['--cache', cache, '--json'], out), 0);
    assert.deepEqual(
      JSON.parse(lines[0]!).graphs.map((g: { key: string }) => g.key),
      ['aaa', 'bbb'],
    );
    lines.length = 0;
    assert.equal(await runModelCache(['--cache', cache, '--clean'], out), 0);
    assert.match(lines[0]!, /removed 1 graph/);
    assert.deepEqual(readdirSync(join(cache, 'graphs')), ['bbb']);
    assert.equal(await runModelCache(['--cache', cache, '--clean', '--force'], out), 0);
    assert.deepEqual(readdirSync(join(cache, 'graphs')), []);
    await assert.rejects(runModelCache(['--cache', cache, '--max-gb', 'lots'], out), /--max-gb must be/);
    await assert.rejects(runModelCache(['--cache', cache, '--clean', '--max-gb', '1'], out), /do not go together/);
  });
});

describe('the automatic precision', () => {
  it('parameterCount equals the checkpoint tensors it expects, for every tiny shape', () => {
    for (const c of [TINY_LLAMA, TINY_LLAMA_GQA, TINY_QWEN2, { ...TINY_QWEN2, tieWordEmbeddings: false }]) {
      const expected = expectedTensors(c).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
      assert.equal(parameterCount(c), expected);
    }
  });

  it('a measured recommendation wins; else int8 above ~100M parameters and unquantized below', () => {
    const never = () => assert.fail('parameters are not needed when a recommendation exists');
    assert.equal(automaticPrecision('int4', never), 'int4');
    assert.equal(automaticPrecision('none', never), 'none');
    assert.equal(
      automaticPrecision(undefined, () => AUTO_QUANTIZE_MIN_PARAMETERS + 1),
      'int8',
    );
    assert.equal(
      automaticPrecision(undefined, () => 4e6),
      'none',
    );
    // Qwen2.5-Coder-0.5B's published shape: 494M parameters
    const qwen05 = { ...TINY_QWEN2, hiddenSize: 896, numLayers: 24, numHeads: 14, numKvHeads: 2, headDim: 64, intermediateSize: 4864, vocabSize: 151936 };
    assert.ok(Math.abs(parameterCount(qwen05) - 494e6) < 1e6, `${parameterCount(qwen05)}`);
    assert.equal(
      automaticPrecision(undefined, () => parameterCount(qwen05)),
      'int8',
    );
  });
});

describe('loaded weight bytes from the config', () => {
  it('equal the bytes the built graph holds, at every precision', async () => {
    const { loadedWeightBytes } = await import('../../server/src/model/model-size');
    const { loadModel } = await import('../../server/src/runtime/load-model');
    const cache = fresh();
    for (const c of [TINY_LLAMA, TINY_QWEN2]) {
      const dir = join(root, `size-${c.modelType}`);
      writeTinyCheckpoint(dir, makeTinyWeights(c, 4));
      for (const [p, o] of [
        ['fp32', {}],
        ['fp16', { weightType: 'float16' }],
        ['int8', { quantization: 8 }],
        ['int4', { quantization: 4 }],
      ] as const) {
        const model = await loadModel(dir, { executionProvider: 'cpu', threads: 1, cacheDir: cache, ...o });
        assert.equal(loadedWeightBytes(c, p), model.session.weightBytes, `${c.modelType} ${p}`);
        await model.session.release();
      }
    }
  });
});

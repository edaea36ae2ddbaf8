// The on-disk cache of built graphs: a second load is a hit and identical; new weights are a new key
// even when size and mtime are unchanged; a damaged build folder or hash index is rebuilt, never used;
// writers that race to publish the same build never fail or delete the other's finished folder.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BUILD_META_FILE, isCompleteBuild, writeBuildMeta } from '../../server/src/model/graph/build-cache';
import { GraphBuilder } from '../../server/src/model/graph/onnx-graph';
import { DATA_FILE, MODEL_FILE, writeModel } from '../../server/src/model/graph/write-model';
import { referenceForward } from '../helpers/reference-forward';
import { makeTinyWeights, TINY_LLAMA, type TinyWeights, writeTinyCheckpoint } from '../helpers/tiny-model';
import { forwardRows, loadOnCpu, maxAbsDiff, tempDir } from '../helpers/tiny-session';

const TOKENS = [7, 1, 250, 33, 33, 90];
const root = tempDir('kiln-build-cache-');
after(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;

const flat = (rows: ArrayLike<number>[]) => Float64Array.from(rows.flatMap((r) => Array.from(r)));

/** A fresh checkpoint folder and an empty cache of its own. */
function setup(seed: number): { modelDir: string; cacheDir: string; weights: TinyWeights } {
  const dir = join(root, `case-${folders++}`);
  const weights = makeTinyWeights(TINY_LLAMA, seed);
  writeTinyCheckpoint(join(dir, 'model'), weights);
  return { modelDir: join(dir, 'model'), cacheDir: join(dir, 'cache'), weights };
}

/** Loads, runs TOKENS, releases; returns whether the graph came from the cache, and the logits. */
async function loadAndRun(modelDir: string, cacheDir: string): Promise<{ cacheHit: boolean; logits: Float64Array }> {
  const model = await loadOnCpu(modelDir, { cacheDir });
  try {
    return { cacheHit: model.cacheHit, logits: flat(await forwardRows(model, TOKENS)) };
  } finally {
    await model.session.release();
  }
}

/** The one complete build folder in a cache. */
function graphDir(cacheDir: string): string {
  const dirs = readdirSync(join(cacheDir, 'graphs')).filter((n) => !n.includes('.tmp-'));
  assert.equal(dirs.length, 1, `one build in the cache: ${dirs.join(', ')}`);
  return join(cacheDir, 'graphs', dirs[0]!);
}

function assertMatchesReference(logits: Float64Array, weights: TinyWeights): void {
  const diff = maxAbsDiff(logits, flat(referenceForward(weights, TOKENS)));
  assert.ok(diff <= 1e-4, `max abs diff to the reference of these weights: ${diff}`);
}

describe('graph build cache', () => {
  it('a second load of the same checkpoint is a cache hit and numerically identical', async () => {
    const { modelDir, cacheDir, weights } = setup(1);
    const first = await loadAndRun(modelDir, cacheDir);
    assert.equal(first.cacheHit, false);
    assertMatchesReference(first.logits, weights);
    const second = await loadAndRun(modelDir, cacheDir);
    assert.equal(second.cacheHit, true);
    assert.equal(maxAbsDiff(first.logits, second.logits), 0);
  });

  it('new weights are a new key, even with the same size and modification time', async () => {
    const { modelDir, cacheDir } = setup(2);
    const weightsFile = join(modelDir, 'model.safetensors');
    const sameTime = 1_700_000_000; // whole seconds: exact on every file system
    utimesSync(weightsFile, sameTime, sameTime);
    assert.equal((await loadAndRun(modelDir, cacheDir)).cacheHit, false);

    const other = makeTinyWeights(TINY_LLAMA, 3);
    writeTinyCheckpoint(modelDir, other); // same config, so the same file size
    utimesSync(weightsFile, sameTime, sameTime); // as cp -p, rsync -t or tar would leave it
    const rebuilt = await loadAndRun(modelDir, cacheDir);
    assert.equal(rebuilt.cacheHit, false, 'the changed weights are rebuilt, not served from the old build');
    assertMatchesReference(rebuilt.logits, other);
    assert.equal((await loadAndRun(modelDir, cacheDir)).cacheHit, true);
  });

  const DAMAGE: [string, (dir: string) => void][] = [
    ['model.onnx.data deleted', (dir) => unlinkSync(join(dir, DATA_FILE))],
    ['model.onnx.data truncated', (dir) => truncateSync(join(dir, DATA_FILE), 4096)],
    [`${BUILD_META_FILE} deleted`, (dir) => unlinkSync(join(dir, BUILD_META_FILE))],
    [`${BUILD_META_FILE} not JSON`, (dir) => writeFileSync(join(dir, BUILD_META_FILE), '{"weightBytes": ')],
    [`${BUILD_META_FILE} from an older build (no file sizes)`, (dir) => writeFileSync(join(dir, BUILD_META_FILE), '{"weightBytes": 1}')],
  ];
  for (const [label, damage] of DAMAGE) {
    it(`a damaged build folder is rebuilt rather than loaded: ${label}`, async () => {
      const { modelDir, cacheDir, weights } = setup(4);
      const built = await loadAndRun(modelDir, cacheDir);
      damage(graphDir(cacheDir));
      const rebuilt = await loadAndRun(modelDir, cacheDir);
      assert.equal(rebuilt.cacheHit, false);
      assert.equal(maxAbsDiff(built.logits, rebuilt.logits), 0);
      assertMatchesReference(rebuilt.logits, weights);
      assert.equal((await loadAndRun(modelDir, cacheDir)).cacheHit, true, 'the rebuilt folder is complete');
      graphDir(cacheDir); // and the only one
    });
  }

  it('a damaged hashes.json is rehashed and rewritten, and the build is still found', async () => {
    const { modelDir, cacheDir, weights } = setup(5);
    const built = await loadAndRun(modelDir, cacheDir);
    const index = join(cacheDir, 'hashes.json');
    const good = JSON.parse(readFileSync(index, 'utf8')) as Record<string, string>;
    const [id] = Object.keys(good);
    for (const damaged of ['{"truncated', 'null', '[]', '42', JSON.stringify({ [id!]: 12 }), JSON.stringify({ [id!]: 'not-a-hash' })]) {
      writeFileSync(index, damaged);
      const again = await loadAndRun(modelDir, cacheDir);
      assert.equal(again.cacheHit, true, `hashes.json = ${damaged}`);
      assert.equal(maxAbsDiff(built.logits, again.logits), 0);
      assert.deepEqual(JSON.parse(readFileSync(index, 'utf8')), good, 'the index is rewritten whole');
    }
    assertMatchesReference(built.logits, weights);
  });

  /** A one-weight graph: y = x + w. */
  function addGraph(value: number): GraphBuilder {
    const g = new GraphBuilder('add');
    const x = g.input('x', 'float32', [2]);
    g.output(g.op('Add', [x, g.weight('w', 'float32', [2], () => Float32Array.of(value, value))]), 'y', 'float32', [2]);
    return g;
  }
  /** Publishes `graph` at `dir` the way the decoder cache does; `whilePublishing` runs between writing and renaming. */
  const publish = (graph: GraphBuilder, dir: string, whilePublishing: () => void = () => {}) =>
    writeModel(
      graph,
      dir,
      { '': 23 },
      {
        finish: (tmp, bytes) => {
          writeBuildMeta(tmp, bytes, { writer: graph.initializers.length });
          whilePublishing();
        },
        isComplete: isCompleteBuild,
      },
    );
  const siblings = (dir: string) => readdirSync(join(dir, '..')).sort();

  it('another process publishing the same build first: its folder is kept, no error, no temporary left', () => {
    const dir = join(root, 'race-won', 'graphs', 'key');
    const otherWriter = () => publish(addGraph(1), dir);
    const mine = publish(addGraph(1), dir, otherWriter);
    assert.equal(mine.dir, dir);
    assert.ok(isCompleteBuild(dir));
    assert.deepEqual(siblings(dir), ['key']);
  });

  it('an incomplete folder in the way (a crashed or older build) is replaced by the finished one', () => {
    const dir = join(root, 'race-stale', 'graphs', 'key');
    const leaveDebris = () => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, MODEL_FILE), 'half a model');
    };
    publish(addGraph(2), dir, leaveDebris);
    assert.ok(isCompleteBuild(dir), 'the finished build is in place');
    assert.notEqual(readFileSync(join(dir, MODEL_FILE), 'utf8'), 'half a model');
    assert.deepEqual(siblings(dir), ['key'], 'the debris was moved aside and removed');
  });

  it('a build folder only counts as complete once its record is written, and the record is inside before it is published', () => {
    const dir = join(root, 'record-first', 'graphs', 'key');
    publish(addGraph(3), dir, () => assert.equal(isCompleteBuild(dir), false, 'nothing at the target while publishing'));
    assert.ok(isCompleteBuild(dir));
  });
});

// Tokenizing the dataset on worker threads gives exactly the dataset one thread gives (same report,
// same packed sequences, whatever the number of workers) and the same token ids, reports its
// progress, and a cancellation or a worker that cannot start ends the build with a clear error
// instead of hanging.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ContextSourceName } from '../../server/src/context/snippet';
import { buildDataset, type Dataset, type DatasetOptions } from '../../server/src/dataset/build-dataset';
import { encodeDocuments } from '../../server/src/dataset/tokenize-pool';
import { resolveFimTemplate, type FimTemplate } from '../../server/src/model/fim';
import { Tokenizer } from '../../server/src/model/tokenizer';
import { writeDatasetRepo } from '../fixtures/dataset-repo';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-ds-parallel-');
after(() => rmSync(root, { recursive: true, force: true }));
const tokDir = join(root, 'tokenizer');
writeTinyTokenizer(tokDir, { vocabSize: 512 });
const tokenizer = Tokenizer.load(tokDir);
const template = resolveFimTemplate(tokenizer) as FimTemplate;
const repo = join(root, 'repo');
writeDatasetRepo(repo, { git: false });

/** Small batches and no size floor, so the fixture's few files spread over every worker. */
const onWorkers = (workers: number, dir = tokDir) => ({ tokenizerDir: dir, workers, minParallelChars: 0, batchChars: 200 });
const build = (options: Partial<DatasetOptions> = {}) => buildDataset(repo, tokenizer, template, { seqLen: 128, seed: 3, ...options });

function assertSameDataset(actual: Dataset, expected: Dataset): void {
  assert.deepEqual(actual.report, expected.report);
  assert.deepEqual(actual.validationFiles, expected.validationFiles);
  for (const split of ['train', 'validation'] as const) {
    assert.equal(actual[split].length, expected[split].length, `${split} sequences`);
    actual[split].forEach((s, i) => {
      assert.deepEqual([...s.inputIds], [...expected[split][i]!.inputIds], `${split} ${i} inputs`);
      assert.deepEqual([...s.labels], [...expected[split][i]!.labels], `${split} ${i} labels`);
    });
  }
}

describe('dataset tokenizing on worker threads', () => {
  it('gives the same dataset as one thread, for 2 and 3 workers, and reports every document', async () => {
    const single = await build();
    assert.ok(single.report.files.length >= 6, `${single.report.files.length} files: enough for several batches`);
    for (const workers of [2, 3]) {
      const done: number[] = [];
      const parallel = await build({ parallel: onWorkers(workers), onProgress: (p) => p.phase === 'tokenize' && done.push(p.done) });
      assertSameDataset(parallel, single);
      assert.ok(
        done.every((d, i) => i === 0 || d >= done[i - 1]!),
        `progress never goes back: ${done.join(',')}`,
      );
      assert.equal(done.at(-1), single.report.files.length);
    }
  });

  it("with context blocks too: each worker builds the documents' repository context and asks it at every cursor, as one thread does", async () => {
    // two packages of files that share names: every document finds windows like its own lines
    const corpus = join(root, 'corpus');
    for (const pkg of ['alpha', 'beta'])
      for (let f = 0; f < 4; f++) {
        const lines = Array.from({ length: 30 }, (_, i) => `  total_${pkg} += ledger${(i + f) % 5}.amount(order${i % 7}, ${pkg}Rate);`);
        mkdirSync(join(corpus, pkg, 'src'), { recursive: true });
        writeFileSync(join(corpus, pkg, 'src', `part${f}.ts`), `${f > 0 ? "import { run0 } from './part0';\n" : ''}export function run${f}() {\n${lines.join('\n')}\n}\n`);
      }
    for (const repositories of ['root', 'folders'] as const) {
      const options = { seqLen: 512, seed: 3, useGit: false, context: { sources: ['imports', 'similar'] as ContextSourceName[], maxTokens: 512, rate: 0.8, repositories } };
      const single = await buildDataset(corpus, tokenizer, template, options);
      assert.ok(single.report.context.documents >= 4, `${repositories}: ${JSON.stringify(single.report.context)}`);
      for (const workers of [2, 3]) assertSameDataset(await buildDataset(corpus, tokenizer, template, { ...options, parallel: onWorkers(workers) }), single);
    }
  });

  it('one worker, or less text than the floor, tokenizes in this thread (no worker is needed)', async () => {
    const single = await build();
    const missing = join(root, 'no-tokenizer-here');
    assertSameDataset(await build({ parallel: { ...onWorkers(1, missing) } }), single);
    assertSameDataset(await build({ parallel: { ...onWorkers(4, missing), minParallelChars: 1e9 } }), single);
  });

  it('a worker that cannot load the tokenizer fails the build with a message naming the problem', async () => {
    const missing = join(root, 'no-tokenizer-here');
    await assert.rejects(build({ parallel: onWorkers(2, missing) }), /tokenizing worker failed: .*no-tokenizer-here/);
  });

  it("token ids alone (the n-gram baseline's corpus): the same ids as encoding each text here, in order", async () => {
    const texts = Array.from({ length: 9 }, (_, i) => ({ path: `f${i}.ts`, text: `const v${i} = ${'[1, 2]'.repeat(i * 7)};\n// ${'é'.repeat(i)} ✓\n` }));
    const ids = await encodeDocuments(texts, tokenizer, { parallel: onWorkers(3) });
    assert.deepEqual(
      ids,
      texts.map((t) => tokenizer.encode(t.text)),
    );
  });

  it('a cancellation during tokenizing rejects with its reason and stops the workers', async () => {
    const abort = new AbortController();
    const reason = new Error('cancelled by the test');
    const built = build({ parallel: onWorkers(2), signal: abort.signal, onProgress: (p) => p.phase === 'tokenize' && p.done > 0 && abort.abort(reason) });
    await assert.rejects(built, (err) => err === reason);
  });
});

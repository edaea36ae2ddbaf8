import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { Tokenizer } from '../../server/src/model/tokenizer';
import { resolveFimTemplate, type FimTemplate } from '../../server/src/model/fim';
import { buildDataset, type Dataset, type DatasetOptions } from '../../server/src/dataset/build-dataset';
import { formatDryRun } from '../../server/src/dataset/dry-run';
import { IGNORE_INDEX } from '../../server/src/dataset/pack';
import { isSecretPath } from '../../server/src/dataset/path-rules';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer';
import { tempDir } from '../helpers/tiny-session';
import { CONTENT_EXCLUDED, EXPECTED_SOURCES, PLANTED, SCAN_EXCLUDED, writeDatasetRepo } from '../fixtures/dataset-repo';

const tokDir = tempDir('kiln-ds-tok-');
writeTinyTokenizer(tokDir, { vocabSize: 512 });
const tokenizer = Tokenizer.load(tokDir);
const template = resolveFimTemplate(tokenizer) as FimTemplate;

async function build(root: string, options: Partial<DatasetOptions> = {}): Promise<{ ds: Dataset; reads: string[] }> {
  const reads: string[] = [];
  const ds = await buildDataset(root, tokenizer, template, {
    seqLen: 256,
    seed: 1,
    readFile: async (path) => {
      reads.push(path);
      return readFile(path);
    },
    ...options,
  });
  return { ds, reads };
}

function decodedBatches(ds: Dataset): string[] {
  return [...ds.train, ...ds.validation].map((s) => tokenizer.decode([...s.inputIds]));
}

function containsRun(haystack: ArrayLike<number>, needle: readonly number[]): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** Every `width`-character window of `secret`: a secret cut by FIM into three parts still leaves one whole. */
function windows(secret: string, width: number): string[] {
  return Array.from({ length: secret.length - width + 1 }, (_, i) => secret.slice(i, i + width));
}

for (const git of [true, false]) {
  const mode = git ? 'git' : 'walk';

  test(`${mode}: planted secrets never reach a batch, and secret files are never read`, async () => {
    const root = tempDir('kiln-ds-');
    writeDatasetRepo(root, { git });
    const { ds, reads } = await build(root, { useGit: git });
    const texts = [...decodedBatches(ds), ...ds.validationFiles.map((f) => f.text)];
    assert.ok(ds.train.length > 0 && ds.validation.length > 0);

    for (const secret of [PLANTED.awsKey, PLANTED.apiToken, PLANTED.privateKeyBody]) {
      for (const w of windows(secret, 7)) for (const t of texts) assert.ok(!t.includes(w), `fragment ${w} of ${secret}`);
      for (const ids of [tokenizer.encode(secret), tokenizer.encode(`"${secret}"`), tokenizer.encode(` ${secret}`)]) {
        for (const s of [...ds.train, ...ds.validation]) {
          assert.ok(!containsRun(s.inputIds, ids) && !containsRun(s.labels, ids), `token ids of ${secret}`);
        }
      }
    }
    for (const marker of [PLANTED.envMarker, PLANTED.rsaMarker, PLANTED.credentialsMarker, PLANTED.ignoredMarker, PLANTED.outsideMarker]) {
      for (const w of windows(marker, 10)) for (const t of texts) assert.ok(!t.includes(w), `fragment ${w} of ${marker}`);
    }

    // The reader saw exactly the scanned candidates: no secret, ignored, vendored, symlinked or oversized path.
    const read = reads.map((p) => relative(ds.report.root, p).split('\\').join('/')).sort();
    assert.deepEqual(read, [...EXPECTED_SOURCES, ...Object.keys(CONTENT_EXCLUDED)].sort());
    assert.ok(read.every((p) => !isSecretPath(p) && !(p in SCAN_EXCLUDED)));

    // The scrubbed file is still trained on, with its secret lines blank.
    const app = ds.validationFiles.find((f) => f.path === 'src/app.ts')?.text ?? texts.join('\n');
    assert.ok(app.includes("const region = 'us-east-1';"));
    assert.equal(ds.report.files.find((f) => f.path === 'src/app.ts')?.scrubbedLines, 2);
    assert.equal(ds.report.files.find((f) => f.path === 'src/keys.py')?.scrubbedLines, 4);
    assert.equal(ds.report.scrubbedLines, 6);
  });

  test(`${mode}: every exclusion is reported with its reason; duplicates are dropped`, async () => {
    const root = tempDir('kiln-ds-');
    writeDatasetRepo(root, { git });
    const { ds } = await build(root, { useGit: git });
    const reasons = new Map(ds.report.excluded.map((e) => [e.path, e.reason]));
    for (const [path, reason] of Object.entries({ ...SCAN_EXCLUDED, ...CONTENT_EXCLUDED })) assert.equal(reasons.get(path), reason, path);
    assert.equal(ds.report.excluded.find((e) => e.path === 'src/util_copy.ts')?.detail, 'same as src/util.ts');
    assert.deepEqual(
      ds.report.files.map((f) => f.path),
      EXPECTED_SOURCES,
    );
    const held = ds.report.files.filter((f) => f.split === 'validation').map((f) => f.path);
    assert.deepEqual(
      ds.validationFiles.map((f) => f.path),
      held,
    );
    assert.ok(held.length >= 1 && held.length < EXPECTED_SOURCES.length);
  });
}

test('the dataset is deterministic for a seed; the hold-out does not depend on the seed', async () => {
  const root = tempDir('kiln-ds-');
  writeDatasetRepo(root, { git: false });
  const a = (await build(root, { useGit: false })).ds;
  const b = (await build(root, { useGit: false })).ds;
  const c = (await build(root, { useGit: false, seed: 2 })).ds;
  const ids = (ds: Dataset) => ds.train.map((s) => [...s.inputIds]);
  assert.deepEqual(ids(a), ids(b));
  assert.deepEqual(
    a.train.map((s) => [...s.labels]),
    b.train.map((s) => [...s.labels]),
  );
  assert.notDeepEqual(ids(a), ids(c));
  assert.deepEqual(a.validationFiles, c.validationFiles);
});

test('packed batches hold whole, well-formed FIM examples in the counts reported', async () => {
  const root = tempDir('kiln-ds-');
  writeDatasetRepo(root, { git: false });
  const { ds } = await build(root, { useGit: false, fimRate: 0.5, spmRate: 0.5 });
  const { psm, spm, plain } = ds.report.examples;
  assert.ok(psm > 0 && spm > 0 && plain > 0, JSON.stringify(ds.report.examples));
  let prefixes = 0;
  let ends = 0;
  for (const s of [...ds.train, ...ds.validation]) {
    assert.equal(s.inputIds.length, 256);
    assert.equal(s.labels.length, 256);
    for (let i = 0; i < 256; i++) {
      if (s.inputIds[i] === template.prefixId) {
        prefixes++;
        const spmOrder = s.inputIds[i + 1] === template.suffixId;
        const mid = s.inputIds.indexOf(template.middleId, i);
        assert.ok(mid > i, 'a <mid> follows every <pre>');
        if (!spmOrder) assert.ok(s.inputIds.indexOf(template.suffixId, i) < mid, 'PSM: <suf> before <mid>');
      }
      if (s.inputIds[i] === tokenizer.eosId && s.labels[i - 1] === tokenizer.eosId) ends++;
      if (s.labels[i] !== IGNORE_INDEX) assert.equal(s.labels[i], s.inputIds[i + 1]);
    }
  }
  assert.equal(prefixes, psm + spm);
  assert.equal(ends, psm + spm + plain, 'every example ends with EOS, which is a target');
});

test('the dry run lists files with token counts, totals, and exclusions with reasons', async () => {
  const root = tempDir('kiln-ds-');
  writeDatasetRepo(root, { git: true });
  const { ds } = await build(root);
  const text = formatDryRun(ds.report);
  const appTokens = ds.report.files.find((f) => f.path === 'src/app.ts')!.tokens;
  assert.match(text, new RegExp(`${appTokens.toLocaleString('en-US')} tokens  src/app\\.ts  \\(2 secret lines blanked\\)`));
  assert.match(text, /secret-file\s+\.env\n/);
  assert.match(text, /vendored\s+node_modules\//);
  assert.match(text, /duplicate\s+src\/util_copy\.ts {2}\(same as src\/util\.ts\)/);
  assert.match(text, /oversized\s+data\/big\.ts/);
  assert.match(text, /by reason: .*secret-file 5/);
  assert.match(text, /secrets\s+6 lines blanked \(by rule below\)/);
  const table = /Secret lines blanked, by rule:\n((?: {2}.*\n)+)/.exec(text)?.[1] ?? '';
  const rows = table
    .trimEnd()
    .split('\n')
    .slice(1)
    .map((row) => row.trim().split(/\s+/));
  const expected = Object.entries(ds.report.scrubbedByKind).map(([rule, n]) => [rule, String(n)]);
  assert.deepEqual([...rows].sort(), [...expected].sort(), table);
  assert.equal(
    rows.reduce((sum, [, n]) => sum + Number(n), 0),
    6,
  );
  assert.deepEqual(
    rows[0],
    [Object.entries(ds.report.scrubbedByKind).sort(([, a], [, b]) => (b ?? 0) - (a ?? 0))[0]![0], String(Math.max(...Object.values(ds.report.scrubbedByKind).map(Number)))],
    'most blanked first',
  );
  assert.deepEqual(ds.report.scrubbedByKind, { 'aws-access-key': 1, 'keyed-secret': 1, 'secretlint/privatekey': 4 });
  for (const marker of Object.values(PLANTED)) assert.ok(!text.includes(marker));
});

test('kept examples are exactly the tokens packed: every non-padding position comes from one of them', async () => {
  const root = tempDir('kiln-ds-');
  writeDatasetRepo(root, { git: false });
  const { ds } = await build(root, { useGit: false, keepExamples: true });
  const examples = ds.examples ?? [];
  assert.ok(examples.length > 0);
  assert.equal(ds.report.examples.plain + ds.report.examples.psm + ds.report.examples.spm, examples.length);
  const positions = (ds.train.length + ds.validation.length) * 256;
  assert.equal(
    examples.reduce((n, e) => n + e.tokens.length, 0),
    positions - ds.report.paddingTokens,
  );
  assert.deepEqual(
    [...new Set(examples.map((e) => e.path))].sort(),
    ds.report.files.map((f) => f.path),
  );
  assert.equal((await build(root, { useGit: false })).ds.examples, undefined, 'kept only when asked');
});

test('building stops when cancelled', async () => {
  const root = tempDir('kiln-ds-');
  writeDatasetRepo(root, { git: false });
  await assert.rejects(build(root, { useGit: false, signal: AbortSignal.abort() }), { name: 'AbortError' });
});

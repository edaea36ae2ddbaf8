import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scanWorkspace, type ScanResult } from '../../server/src/dataset/scan';
import { tempDir } from '../helpers/tiny-session';
import { CONTENT_EXCLUDED, EXPECTED_SOURCES, SCAN_EXCLUDED, writeDatasetRepo } from '../fixtures/dataset-repo';

function reasons(scan: ScanResult): Map<string, string> {
  return new Map(scan.excluded.map((e) => [e.path, e.reason]));
}

for (const git of [true, false]) {
  test(`${git ? 'git' : 'walk'} scan: every path-rule exclusion has its reason, sources are listed`, async () => {
    const root = tempDir('kiln-scan-');
    writeDatasetRepo(root, { git });
    const scan = await scanWorkspace(root, { useGit: git });
    assert.equal(scan.mode, git ? 'git' : 'walk');
    const got = reasons(scan);
    for (const [path, reason] of Object.entries(SCAN_EXCLUDED)) assert.equal(got.get(path), reason, path);
    const expected = [...EXPECTED_SOURCES, ...Object.keys(CONTENT_EXCLUDED)].sort();
    assert.deepEqual(
      scan.files.map((f) => f.path),
      expected,
    );
    assert.equal(scan.truncated, false);
    // Vendored folders are reported once, not file by file.
    assert.equal(scan.excluded.filter((e) => e.path.startsWith('node_modules')).length, 1);
  });
}

test('git scan ignores GIT_DIR and GIT_INDEX_FILE from the environment (as inside a git hook)', async () => {
  const root = tempDir('kiln-scan-');
  writeDatasetRepo(root, { git: true });
  const saved = { dir: process.env.GIT_DIR, index: process.env.GIT_INDEX_FILE };
  process.env.GIT_DIR = join(root, 'no-such-git-dir');
  process.env.GIT_INDEX_FILE = join(root, 'no-such-index');
  try {
    const scan = await scanWorkspace(root);
    assert.equal(scan.mode, 'git');
    assert.ok(scan.files.some((f) => f.path === 'src/app.ts'));
  } finally {
    if (saved.dir === undefined) delete process.env.GIT_DIR;
    else process.env.GIT_DIR = saved.dir;
    if (saved.index === undefined) delete process.env.GIT_INDEX_FILE;
    else process.env.GIT_INDEX_FILE = saved.index;
  }
});

test('walk never follows a symlinked folder out of the root', async () => {
  const root = tempDir('kiln-scan-');
  const outside = tempDir('kiln-outside-');
  writeFileSync(join(outside, 'leak.ts'), 'export const leak = 1;\n');
  mkdirSync(join(root, 'src'));
  writeFileSync(join(root, 'src', 'a.ts'), 'export const a = 1;\n');
  symlinkSync(outside, join(root, 'src', 'linked'));
  const scan = await scanWorkspace(root, { useGit: false });
  assert.deepEqual(
    scan.files.map((f) => f.path),
    ['src/a.ts'],
  );
  assert.ok(scan.excluded.some((e) => e.path === 'src/linked'));
  assert.ok(!scan.excluded.some((e) => e.path.includes('leak')));
});

test('a nested .gitignore overrides its parent in a walk, as in git', async () => {
  const root = tempDir('kiln-scan-');
  writeFileSync(join(root, '.gitignore'), '*.gen.ts\nsub/private/\n');
  mkdirSync(join(root, 'sub', 'private'), { recursive: true });
  writeFileSync(join(root, 'sub', '.gitignore'), '!keep.gen.ts\nlocal.ts\n');
  for (const f of ['a.gen.ts', 'sub/keep.gen.ts', 'sub/drop.gen.ts', 'sub/local.ts', 'sub/ok.ts', 'sub/private/p.ts', 'local.ts']) {
    writeFileSync(join(root, f), 'export {};\n');
  }
  const scan = await scanWorkspace(root, { useGit: false });
  assert.deepEqual(
    scan.files.map((f) => f.path),
    ['local.ts', 'sub/keep.gen.ts', 'sub/ok.ts'],
  );
  const ignored = scan.excluded.filter((e) => e.reason === 'ignored').map((e) => e.path);
  assert.deepEqual(ignored.sort(), ['a.gen.ts', 'sub/drop.gen.ts', 'sub/local.ts', 'sub/private/']);
});

test('scan bounds: past maxFiles the rest are excluded as limit and the scan says it was cut short', async () => {
  const root = tempDir('kiln-scan-');
  for (let i = 0; i < 6; i++) writeFileSync(join(root, `f${i}.ts`), `export const v${i} = ${i};\n`);
  const scan = await scanWorkspace(root, { useGit: false, maxFiles: 4 });
  assert.equal(scan.files.length, 4);
  assert.deepEqual(
    scan.excluded.map((e) => [e.path, e.reason]),
    [
      ['f4.ts', 'limit'],
      ['f5.ts', 'limit'],
    ],
  );
  assert.equal(scan.truncated, true);
  const walked = await scanWorkspace(root, { useGit: false, maxEntries: 3 });
  assert.equal(walked.files.length, 3);
  assert.equal(walked.truncated, true);
});

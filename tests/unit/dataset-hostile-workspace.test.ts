// A workspace written by an attacker: a .git/config that names programs for git to run, FIFOs
// where git and the walk read ignore rules, files swapped for links between scan and read, hard
// links to files outside the workspace, files that grow past the bound after the scan.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, existsSync, linkSync, mkdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cleanGitEnv } from '../../server/src/dataset/git-files';
import { readSources } from '../../server/src/dataset/read-sources';
import { scanWorkspace, type ScanResult } from '../../server/src/dataset/scan';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-hostile-');
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => {
  const dir = join(root, `${name}-${n++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
};
const marker = () => `MARK_${randomBytes(8).toString('hex')}`;

function write(dir: string, path: string, text: string): void {
  mkdirSync(dirname(join(dir, path)), { recursive: true });
  writeFileSync(join(dir, path), text);
}

function git(dir: string, ...args: string[]): void {
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: dir, env: cleanGitEnv(), stdio: 'pipe' });
}

function reasonOf(scan: ScanResult, path: string): string | undefined {
  return scan.excluded.find((e) => e.path === path)?.reason;
}

test('a .git/config that names programs (fsmonitor, hooks, pager, filters, external diff) never runs one during a scan', async () => {
  const ws = fresh('ws');
  write(ws, 'src/app.py', 'def main():\n    return 1\n');
  write(ws, 'README.md', '# hostile\n');
  git(ws, 'init', '-q');
  git(ws, 'add', '-A');
  git(ws, 'commit', '-qm', 'init');
  write(ws, 'src/new.py', 'x = 1\n'); // untracked: the --others listing runs too

  const touched = join(root, `ran-${n++}`);
  const program = join(ws, '.git', 'evil.sh');
  writeFileSync(program, `#!/bin/sh\necho "$0 $*" >> '${touched}'\nexit 0\n`);
  chmodSync(program, 0o755);
  const hooks = join(ws, '.git', 'evil-hooks');
  mkdirSync(hooks);
  for (const hook of ['post-index-change', 'pre-commit', 'post-checkout', 'reference-transaction', 'fsmonitor-watchman']) {
    writeFileSync(join(hooks, hook), `#!/bin/sh\necho hook-${hook} >> '${touched}'\n`);
    chmodSync(join(hooks, hook), 0o755);
  }
  const settings: [string, string][] = [
    ['core.fsmonitor', program],
    ['core.hooksPath', hooks],
    ['core.pager', program],
    ['pager.ls-files', program],
    ['diff.external', program],
    ['filter.evil.clean', program],
    ['filter.evil.smudge', program],
    ['filter.evil.process', program],
    ['diff.evil.textconv', program],
    ['core.sshCommand', program],
    ['core.askPass', program],
    ['credential.helper', `!${program}`],
  ];
  for (const [key, value] of settings) git(ws, 'config', key, value);
  write(ws, '.gitattributes', '* filter=evil diff=evil\n');

  const scan = await scanWorkspace(ws);
  assert.equal(scan.mode, 'git');
  assert.deepEqual(
    scan.files.map((f) => f.path),
    ['README.md', 'src/app.py', 'src/new.py'],
  );
  assert.equal(existsSync(touched), false, `git ran a program from the workspace's config: ${existsSync(touched) ? 'see the marker file' : ''}`);
});

test('git mode: a FIFO named .gitignore does not hang the scan; git is stopped and the folder is walked', { timeout: 60_000 }, async () => {
  const ws = fresh('ws');
  write(ws, 'src/a.py', 'a = 1\n');
  write(ws, 'sub/b.py', 'b = 2\n');
  git(ws, 'init', '-q');
  git(ws, 'add', '-A');
  execFileSync('mkfifo', [join(ws, '.gitignore')]);
  execFileSync('mkfifo', [join(ws, 'sub', '.gitignore')]);
  const started = Date.now();
  const scan = await scanWorkspace(ws, { gitTimeoutMs: 1_000 });
  assert.ok(Date.now() - started < 30_000, 'the scan ends within its bound');
  assert.equal(scan.mode, 'walk');
  assert.match(scan.warnings.join('\n'), /did not finish within 1 s.*was stopped/);
  assert.deepEqual(
    scan.files.map((f) => f.path),
    ['src/a.py', 'sub/b.py'],
  );
  for (const fifo of ['.gitignore', 'sub/.gitignore']) {
    const e = scan.excluded.find((x) => x.path === fifo);
    assert.deepEqual(e && [e.reason, e.detail], ['unreadable', 'not a regular file'], fifo);
  }
});

test('walk mode: FIFOs (as .gitignore, as .git/info/exclude, as a source file) never block and are reported', { timeout: 60_000 }, async () => {
  const ws = fresh('ws');
  write(ws, 'src/a.ts', 'export const a = 1;\n');
  mkdirSync(join(ws, '.git', 'info'), { recursive: true });
  for (const fifo of ['.gitignore', '.git/info/exclude', 'src/.gitignore', 'src/pipe.ts']) execFileSync('mkfifo', [join(ws, fifo)]);
  const scan = await scanWorkspace(ws, { useGit: false });
  assert.deepEqual(
    scan.files.map((f) => f.path),
    ['src/a.ts'],
  );
  for (const fifo of ['.gitignore', 'src/.gitignore', 'src/pipe.ts']) {
    const e = scan.excluded.find((x) => x.path === fifo);
    assert.deepEqual(e && [e.reason, e.detail], ['unreadable', 'not a regular file'], fifo);
  }
  const read = await readSources(scan.root, scan.files, { maxFileBytes: 1 << 20 });
  assert.deepEqual(
    read.sources.map((s) => s.path),
    ['src/a.ts'],
  );
});

for (const useGit of [true, false]) {
  const mode = useGit ? 'git' : 'walk';

  test(`${mode}: a file swapped for a symlink (or another file, or a linked folder) after the scan is not read`, async () => {
    const ws = fresh('ws');
    const outside = fresh('outside');
    const secret = marker();
    write(outside, 'secret.ts', `export const s = '${secret}';\n`);
    write(outside, 'dir/b.ts', `export const b = '${secret}';\n`);
    write(ws, 'a.ts', 'export const a = 1;\n');
    write(ws, 'dir/b.ts', 'export const b = 2;\n');
    write(ws, 'c.ts', 'export const c = 3;\n');
    write(ws, 'keep.ts', 'export const keep = 4;\n');
    if (useGit) {
      git(ws, 'init', '-q');
      git(ws, 'add', '-A');
    }
    const scan = await scanWorkspace(ws, { useGit });
    assert.deepEqual(
      scan.files.map((f) => f.path),
      ['a.ts', 'c.ts', 'dir/b.ts', 'keep.ts'],
    );

    unlinkSync(join(ws, 'a.ts'));
    symlinkSync(join(outside, 'secret.ts'), join(ws, 'a.ts')); // the file itself becomes a link
    renameSync(join(ws, 'dir'), join(ws, 'dir-moved'));
    symlinkSync(join(outside, 'dir'), join(ws, 'dir')); // a parent folder becomes a link
    write(ws, 'c.next', `export const c = '${secret}';\n`);
    renameSync(join(ws, 'c.next'), join(ws, 'c.ts')); // another file takes the path

    const read = await readSources(scan.root, scan.files, { maxFileBytes: 1 << 20 });
    assert.deepEqual(
      read.sources.map((s) => s.path),
      ['keep.ts'],
    );
    for (const s of read.sources) assert.ok(!s.text.includes(secret));
    const why = new Map(read.excluded.map((e) => [e.path, `${e.reason} ${e.detail ?? ''}`.trim()]));
    assert.equal(why.get('a.ts'), 'symlink');
    assert.equal(why.get('dir/b.ts'), 'unreadable changed since the scan');
    assert.equal(why.get('c.ts'), 'unreadable changed since the scan');
  });

  test(`${mode}: a hard link to a file outside the workspace is not read${useGit ? ' unless git tracks it' : ''}`, async () => {
    const ws = fresh('ws');
    const outside = fresh('outside');
    const secret = marker();
    write(outside, 'token.ts', `export const token = '${secret}';\n`);
    write(ws, 'a.ts', 'export const a = 1;\n');
    write(ws, 'shared.ts', 'export const shared = 1;\n');
    if (useGit) {
      linkSync(join(ws, 'shared.ts'), join(outside, 'shared-copy.ts')); // tracked and hard-linked
      git(ws, 'init', '-q');
      git(ws, 'add', '-A');
    }
    linkSync(join(outside, 'token.ts'), join(ws, 'linked.ts')); // untracked
    const scan = await scanWorkspace(ws, { useGit });
    assert.equal(reasonOf(scan, 'linked.ts'), 'hard-link');
    assert.match(scan.excluded.find((e) => e.path === 'linked.ts')?.detail ?? '', /2 links, not tracked by git/);
    assert.deepEqual(
      scan.files.map((f) => f.path),
      ['a.ts', 'shared.ts'],
    );
    const read = await readSources(scan.root, [...scan.files, { path: 'linked.ts', bytes: 10 }], { maxFileBytes: 1 << 20 });
    assert.equal(read.excluded.find((e) => e.path === 'linked.ts')?.reason, 'hard-link', 'the reader refuses it too');
    for (const s of read.sources) assert.ok(!s.text.includes(secret));
    if (!useGit) {
      linkSync(join(ws, 'shared.ts'), join(outside, 'late-link.ts')); // a hard link made after the scan
      const again = await readSources(scan.root, scan.files, { maxFileBytes: 1 << 20 });
      assert.equal(again.excluded.find((e) => e.path === 'shared.ts')?.reason, 'hard-link');
    }
  });
}

test('a file that grew past the size bound after the scan is not read whole', async () => {
  const ws = fresh('ws');
  write(ws, 'grow.ts', 'export const g = 1;\n');
  const scan = await scanWorkspace(ws, { useGit: false, maxFileBytes: 4096 });
  assert.deepEqual(
    scan.files.map((f) => f.path),
    ['grow.ts'],
  );
  appendFileSync(join(ws, 'grow.ts'), `// ${'x'.repeat(64 * 1024)}\n`);
  const read = await readSources(scan.root, scan.files, { maxFileBytes: 4096 });
  assert.deepEqual(read.sources, []);
  assert.equal(read.excluded[0]?.reason, 'oversized');
});

test('the read itself is bounded: a file longer than its measured size is cut at the bound and refused', { skip: !existsSync('/proc/self/maps') }, async () => {
  const { readRegularFile } = await import('../../server/src/dataset/safe-read');
  // /proc files are regular files whose stat size is 0 and whose reads return more
  const r = await readRegularFile('/proc/self/maps', { maxBytes: 64 });
  assert.deepEqual(r, { reason: 'oversized', detail: 'more than 64 bytes when read' });
});

test('the checked reader refuses devices without blocking or reading them', async () => {
  const { readRegularFile } = await import('../../server/src/dataset/safe-read');
  for (const device of ['/dev/null', '/dev/zero', '/dev/stdin']) {
    if (!existsSync(device)) continue;
    const r = await readRegularFile(device, { maxBytes: 1024 });
    assert.ok(!('bytes' in r), device);
  }
});

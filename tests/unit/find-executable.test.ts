// Programs Kiln starts (git, nvidia-smi) are resolved through PATH's absolute entries only, so a
// workspace's own `git` (found first in the current folder on Windows, or through an empty or
// relative PATH entry anywhere) is never the one run.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { findExecutable } from '../../server/src/find-executable';
import { tempDir } from '../helpers/tiny-session';

function program(dir: string, name: string, mode = 0o755): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, '#!/bin/sh\nexit 0\n');
  chmodSync(path, mode);
  return path;
}

test('skips empty and relative PATH entries (the current folder) and takes the first absolute one', () => {
  const root = tempDir('kiln-exe-');
  const real = program(join(root, 'bin'), 'git');
  program(join(root, 'workspace'), 'git');
  const cwd = process.cwd();
  process.chdir(join(root, 'workspace'));
  try {
    const path = ['', '.', 'workspace', join(root, 'bin')].join(delimiter);
    assert.equal(findExecutable('git', { path, platform: 'linux' }), real);
  } finally {
    process.chdir(cwd);
  }
});

test('passes over files that are not executable or are folders, and answers undefined when none is found', () => {
  const root = tempDir('kiln-exe-');
  program(join(root, 'a'), 'tool', 0o644);
  mkdirSync(join(root, 'b', 'tool'), { recursive: true });
  const found = program(join(root, 'c'), 'tool');
  const path = [join(root, 'a'), join(root, 'b'), join(root, 'c')].join(delimiter);
  assert.equal(findExecutable('tool', { path, platform: 'linux' }), found);
  assert.equal(findExecutable('tool', { path: [join(root, 'a'), join(root, 'b')].join(delimiter), platform: 'linux' }), undefined);
});

test('on Windows, tries PATHEXT extensions in their order within each absolute entry', () => {
  const root = tempDir('kiln-exe-');
  const exe = program(join(root, 'bin'), 'git.EXE');
  assert.equal(findExecutable('git', { path: join(root, 'bin'), pathExt: '.COM;.EXE', platform: 'win32' }), exe);
});

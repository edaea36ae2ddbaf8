import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pathFraction, splitByPath } from '../../server/src/dataset/split';

test('hold-out is by path hash: stable, order- and seed-independent, about the fraction asked', () => {
  const files = Array.from({ length: 2000 }, (_, i) => ({ path: `src/dir${i % 13}/file${i}.ts` }));
  const a = splitByPath(files, 0.1);
  const b = splitByPath([...files].reverse(), 0.1);
  assert.deepEqual(a.validation.map((f) => f.path).sort(), b.validation.map((f) => f.path).sort());
  assert.ok(Math.abs(a.validation.length / files.length - 0.1) < 0.02, `${a.validation.length}`);
  assert.equal(a.train.length + a.validation.length, files.length);
  assert.ok(a.validation.every((f) => pathFraction(f.path) < 0.1));
});

test('hold-out keeps at least one file on each side once there are two', () => {
  const two = [{ path: 'a.ts' }, { path: 'b.ts' }];
  for (const fraction of [0.01, 0.5, 1]) {
    const s = splitByPath(two, fraction);
    assert.equal(s.validation.length, 1, `fraction ${fraction}`);
    assert.equal(s.train.length, 1);
  }
  assert.deepEqual(splitByPath([{ path: 'only.ts' }], 0.1).validation.length + splitByPath([{ path: 'only.ts' }], 0.1).train.length, 1);
  assert.equal(splitByPath(two, 0).validation.length, 0);
  assert.throws(() => splitByPath(two, 1.5), RangeError);
});

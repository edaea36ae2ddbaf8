// The end of an `npm test` run: the reporter turns node:test events into one line per leaf test, and
// the summary lists what failed (file › suite › test — reason) above the plain counts.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import testResultsReporter, { type TestEvent } from '../../scripts/test-results-reporter.mjs';
import { formatTestSummary, readTestResults, type TestResult } from '../../scripts/test-summary.mjs';
import { tempDir } from '../helpers/tiny-session';

const ROOT = '/repo';
const FILE = `${ROOT}/tests/unit/a.test.ts`;

const start = (name: string, nesting: number, file = FILE): TestEvent => ({ type: 'test:start', data: { name, nesting, file } });
const pass = (name: string, nesting: number, details: Record<string, unknown> = {}): TestEvent => ({ type: 'test:pass', data: { name, nesting, file: FILE, details } });
const fail = (name: string, nesting: number, error: unknown, file = FILE): TestEvent => ({ type: 'test:fail', data: { name, nesting, file, details: { error } } });
const codeFailure = (message: string) => ({ failureType: 'testCodeFailure', cause: { message } });

async function report(events: TestEvent[]): Promise<TestResult[]> {
  async function* source() {
    yield* events;
  }
  const lines: TestResult[] = [];
  for await (const line of testResultsReporter(source())) lines.push(JSON.parse(line) as TestResult);
  return lines;
}

describe('test results reporter', () => {
  it('reports leaves with their suite path; suites and parents of subtests are not counted', async () => {
    // the order node 20 emits for: describe('group', { ok, bad }), test('nested', t => t.test('inner')), test.skip('later')
    const results = await report([
      start('group', 0),
      start('ok', 1),
      pass('ok', 1),
      start('bad', 1),
      fail('bad', 1, codeFailure('Expected values to be strictly equal:\n\n2 !== 3\n')),
      { type: 'test:fail', data: { name: 'group', nesting: 0, file: FILE, details: { type: 'suite', error: { failureType: 'subtestsFailed' } } } },
      start('nested', 0),
      start('inner', 1),
      pass('inner', 1),
      pass('nested', 0),
      start('later', 0),
      { type: 'test:pass', data: { name: 'later', nesting: 0, file: FILE, skip: true, details: {} } },
      { type: 'test:diagnostic', data: { message: 'tests 4', nesting: 0 } },
    ]);
    assert.deepEqual(results, [
      { outcome: 'pass', file: FILE, path: ['group', 'ok'] },
      { outcome: 'fail', file: FILE, path: ['group', 'bad'], reason: 'Expected values to be strictly equal: 2 !== 3' },
      { outcome: 'pass', file: FILE, path: ['nested', 'inner'] },
      { outcome: 'skip', file: FILE, path: ['later'] },
    ]);
  });

  it('reports a file that failed outside any test, and tests cancelled with their parent', async () => {
    const broken = `${ROOT}/tests/unit/broken.test.ts`;
    const results = await report([
      start(broken, 0, broken),
      fail(broken, 0, codeFailure('test failed'), broken),
      start('slow', 0),
      fail('slow', 0, { failureType: 'cancelledByParent' }),
    ]);
    assert.equal(results[0]!.reason, 'the file failed outside any test (its error output is above)');
    assert.equal(results[1]!.reason, 'cancelled (its parent failed or timed out)');
  });
});

describe('test summary', () => {
  const dir = tempDir('kiln-summary-');
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lists the failures relative to the repository, then the counts', () => {
    const results: TestResult[] = [
      { outcome: 'pass', file: FILE, path: ['group', 'ok'] },
      { outcome: 'fail', file: FILE, path: ['group', 'bad'], reason: '2 !== 3' },
      { outcome: 'fail', file: `${ROOT}/tests/unit/broken.test.ts`, path: [`${ROOT}/tests/unit/broken.test.ts`], reason: 'the file failed' },
      { outcome: 'skip', file: FILE, path: ['later'] },
    ];
    assert.equal(
      formatTestSummary(results, ROOT),
      ['Failed tests (2):', '  tests/unit/a.test.ts › group › bad — 2 !== 3', '  tests/unit/broken.test.ts — the file failed', '1 passed, 2 failed, 1 skipped'].join('\n'),
    );
    assert.equal(formatTestSummary([{ outcome: 'pass', file: FILE, path: ['ok'] }], ROOT), '1 passed, 0 failed');
  });

  it('reads what a crashed run left: a missing file is no results, a cut-off last line is dropped', () => {
    assert.deepEqual(readTestResults(join(dir, 'missing.jsonl')), []);
    const file = join(dir, 'results.jsonl');
    writeFileSync(file, `${JSON.stringify({ outcome: 'pass', file: FILE, path: ['ok'] })}\n{"outcome":"fa`);
    assert.deepEqual(readTestResults(file), [{ outcome: 'pass', file: FILE, path: ['ok'] }]);
  });
});

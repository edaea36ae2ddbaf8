// Evaluation: line sampling, the per-line comparator and edit distance as pure functions, and on a
// seeded tiny code model the validation loss against the independent reference forward pass and the
// next-line figures against cold, one-line-at-a-time completions from the real engine.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CompletionModel, loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { DEFAULT_SETTINGS } from '../../server/src/lsp/settings';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import {
  compareLine,
  editSimilarity,
  type EvalFile,
  evaluateModel,
  evaluateModelPerLine,
  evenShares,
  isNonTrivialLine,
  levenshtein,
  lineTask,
  sampleLines,
  spreadOverFiles,
  sequenceLoss,
} from '../../server/src/evaluation/evaluate';
import { logSoftmax, referenceForward } from '../helpers/reference-forward';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { makeTinyWeights, TINY_LLAMA } from '../helpers/tiny-model';
import { tempDir } from '../helpers/tiny-session';

const SOURCE = `import { readFileSync } from 'node:fs';

export function total(values: number[]): number {
  let sum = 0;
  for (const value of values) sum += value;
  return sum;
}
// ----------------------------------
/* */
}

const names = ['alpha', 'beta', 'gamma'];
`;

const PYTHON = 'def greet(name):\r\n    message = "hello " + name\r\n    return message\r\n\r\nprint(greet("world"))\r\n';

function manyLines(path: string, count: number): EvalFile {
  return { path, text: Array.from({ length: count }, (_, i) => `  const item${i} = compute(${i});`).join('\n') };
}

describe('line sampling', () => {
  it('keeps lines with at least 6 characters and 3 letters or digits', () => {
    const cases: [string, boolean][] = [
      ['  return sum;', true],
      ['let x = 1;', true],
      ['});', false],
      ['  }  ', false],
      ['// ------------------', false],
      ['/* */', false],
      ['   ', false],
      ['a = b', false], // 5 characters
      ['x(y);', false],
      ['#endif', true],
      ['x'.repeat(401), false], // data or minified code
    ];
    for (const [line, expected] of cases) assert.equal(isNonTrivialLine(line), expected, JSON.stringify(line));
  });

  it('is deterministic for a seed, non-trivial, capped and shared evenly over files', () => {
    const files = [manyLines('a.ts', 50), manyLines('b.ts', 50), manyLines('c.ts', 3), { path: 'd.ts', text: SOURCE }];
    const first = sampleLines(files, 20, 7);
    assert.deepEqual(sampleLines(files, 20, 7), first);
    assert.notDeepEqual(
      sampleLines(files, 20, 8).map((l) => l.line),
      first.map((l) => l.line),
    );
    assert.equal(first.length, 20);
    const perFile = [0, 1, 2, 3].map((f) => first.filter((l) => l.file === f).length);
    assert.deepEqual(perFile, [6, 6, 3, 5]); // c.ts has 3 candidates: the rest is shared by the others
    for (const l of first) {
      const text = files[l.file]!.text;
      const content = text.split('\n')[l.line - 1]!;
      assert.ok(isNonTrivialLine(content), content);
      assert.equal(text.slice(l.cursor, l.end), content.trim());
    }
    for (let i = 1; i < first.length; i++) {
      const [p, q] = [first[i - 1]!, first[i]!];
      assert.ok(p.file < q.file || (p.file === q.file && p.line < q.line), 'in file order');
    }
    assert.deepEqual(sampleLines(files, 0, 7), []);
    assert.equal(sampleLines(files, 1000, 7).length, 50 + 50 + 3 + 6);
  });

  it('shares a total evenly within capacities', () => {
    assert.deepEqual(evenShares([10, 10, 10], 9), [3, 3, 3]);
    assert.deepEqual(evenShares([1, 10, 10], 9), [1, 4, 4]);
    assert.deepEqual(evenShares([2, 0, 3], 100), [2, 0, 3]);
    assert.deepEqual(evenShares([5, 5], 3), [2, 1]);
    assert.deepEqual(evenShares([], 3), []);
  });

  it('removes the line from its first non-blank character and puts the cursor there', () => {
    const [line] = sampleLines([{ path: 'p.py', text: PYTHON }], 10, 0).filter((l) => l.line === 2);
    assert.ok(line);
    const task = lineTask(PYTHON, line);
    assert.equal(task.expected, 'message = "hello " + name');
    assert.equal(task.offset, 'def greet(name):\r\n    '.length);
    assert.equal(task.text, 'def greet(name):\r\n    \r\n    return message\r\n\r\nprint(greet("world"))\r\n');
  });
});

describe('comparison', () => {
  it('computes Levenshtein distances over code points, cut at 400', () => {
    const cases: [string, string, number][] = [
      ['kitten', 'sitting', 3],
      ['flaw', 'lawn', 2],
      ['', 'abc', 3],
      ['abc', '', 3],
      ['same', 'same', 0],
      ['😀a', 'a', 1], // one code point, two UTF-16 units
      ['a'.repeat(500), 'b'.repeat(600), 400],
    ];
    for (const [a, b, d] of cases) assert.equal(levenshtein(a, b), d, `${a.slice(0, 10)} / ${b.slice(0, 10)}`);
  });

  it('edit similarity is 1 - distance / longer length', () => {
    assert.equal(editSimilarity('abc', 'abc'), 1);
    assert.equal(editSimilarity('', ''), 1);
    assert.equal(editSimilarity('abc', ''), 0);
    assert.equal(editSimilarity('kitten', 'sitting'), 1 - 3 / 7);
    assert.equal(editSimilarity('😀😀', '😀x'), 0.5);
  });

  it('compares the trimmed completion with the trimmed rest of the line', () => {
    const cases: [string, string, boolean, number][] = [
      ['return sum;', 'return sum;', true, 1],
      ['return sum;  ', '  return sum;\n', true, 1],
      ['return sum;', 'return sum', false, 1 - 1 / 11],
      ['return sum;', '', false, 0],
      ['', '   ', true, 1],
      ['const a = 1;', 'const b = 2;', false, 1 - 2 / 12],
    ];
    for (const [expected, got, exact, similarity] of cases) {
      const r = compareLine(expected, got);
      assert.equal(r.exact, exact, `${expected} / ${got}`);
      assert.ok(Math.abs(r.similarity - similarity) < 1e-12, `${expected} / ${got}: ${r.similarity}`);
    }
  });
});

describe('evaluateModel on a tiny code model', () => {
  const root = tempDir('kiln-eval-');
  const config = { ...TINY_LLAMA, maxPositions: 2048 }; // what writeTinyCodeModel writes
  const weights = makeTinyWeights(config, 3);
  let model: CompletionModel;
  before(async () => {
    writeTinyCodeModel(join(root, 'model'), { seed: 3 });
    model = await loadCompletionModel(join(root, 'model'), { fimOrder: 'auto', quantization: 'none' }, { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') });
  });
  after(async () => {
    await model?.loaded.session.release();
    rmSync(root, { recursive: true, force: true });
  });

  /** Mean cross-entropy of the reference forward pass over windows starting every `stride` tokens. */
  function referenceLoss(tokens: number[], context: number): number {
    const stride = Math.floor(context / 2);
    let nll = 0;
    let count = 0;
    for (let start = 0, scored = 1; scored < tokens.length; start += stride) {
      const end = Math.min(start + context, tokens.length);
      const rows = referenceForward(weights, tokens.slice(start, end)).map(logSoftmax);
      for (let t = Math.max(scored, start + 1); t < end; t++) nll -= rows[t - start - 1]![tokens[t]!]!;
      count += end - Math.max(scored, start + 1);
      scored = end;
    }
    return nll / count;
  }

  it('validation loss equals the reference mean cross-entropy, in one window and sliding', async () => {
    const tokens = model.tokenizer.encode(SOURCE.slice(0, 160));
    assert.ok(tokens.length > 20, `${tokens.length} tokens`);
    for (const context of [512, 12]) {
      const { nll, count } = await sequenceLoss(model.loaded.session, tokens, context);
      assert.equal(count, tokens.length - 1);
      const expected = referenceLoss(tokens, context);
      assert.ok(Math.abs(nll / count - expected) <= 1e-4, `context ${context}: ${nll / count} vs ${expected}`);
    }
    const report = await evaluateModel(model, [{ path: 's.ts', text: SOURCE.slice(0, 160) }], { maxLines: 0 });
    assert.equal(report.tokens, tokens.length - 1);
    assert.ok(Math.abs(report.validationLoss - referenceLoss(tokens, 512)) <= 1e-4);
    assert.ok(Number.isNaN(report.exactMatch) && report.lines === 0);
  });

  it('scores every sampled line as a cold single-line completion would, deterministically', async () => {
    const files = [
      { path: 'a.ts', text: SOURCE },
      { path: 'b.py', text: PYTHON },
    ];
    const progress: string[] = [];
    const report = await evaluateModel(model, files, { maxLines: 6, seed: 1, onProgress: (p) => progress.push(`${p.phase}:${p.done}/${p.total}`) });
    assert.equal(report.files, 2);
    assert.equal(report.lines, 6);
    assert.equal(report.samples.length, 6);
    assert.deepEqual(progress, ['loss:1/2', 'loss:2/2', ...[1, 2, 3, 4, 5, 6].map((i) => `lines:${i}/6`)]);
    const settings = { ...DEFAULT_SETTINGS, completionMode: 'line' as const, speculate: false, candidates: 1, timeLimitMs: 60_000 };
    let exact = 0;
    let similarity = 0;
    const lines = sampleLines(files, 6, 1);
    for (const [i, line] of lines.entries()) {
      const task = lineTask(files[line.file]!.text, line);
      const cold = new CompletionEngine(model, settings, new LatencyStats());
      const got = (await cold.complete({ uri: `cold-${i}`, text: task.text, offset: task.offset })).items[0] ?? '';
      assert.deepEqual(report.samples[i], { path: line.path, line: line.line, expected: task.expected.trim(), got: got.trim() });
      const score = compareLine(task.expected, got);
      exact += score.exact ? 1 : 0;
      similarity += score.similarity;
    }
    assert.equal(report.exactMatch, exact / 6);
    assert.ok(Math.abs(report.editSimilarity - similarity / 6) < 1e-12);
    assert.ok(report.editSimilarity >= 0 && report.editSimilarity < 1, `a random model does not know these lines: ${report.editSimilarity}`);
    assert.ok(Number.isFinite(report.validationLoss) && report.validationLoss > 0);
    assert.deepEqual(await evaluateModel(model, files, { maxLines: 6, seed: 1 }), report);
  });

  it('a time bound scores two lines spread over the files and a loss sized to it; the same lines and tokens score again alike', async () => {
    const files = [
      { path: 'a.ts', text: SOURCE },
      { path: 'b.py', text: PYTHON },
    ];
    const unbounded = await evaluateModelPerLine(model, files, { maxLines: 6, seed: 1 });
    const bounded = await evaluateModelPerLine(model, files, { maxLines: 6, seed: 1, maxSeconds: 0 });
    // spent at once: only the two lines every bounded run scores, one from each file
    assert.deepEqual(
      bounded.scoredLines.map((l) => l.path),
      ['a.ts', 'b.py'],
    );
    assert.equal(bounded.report.lines, 2);
    assert.ok(bounded.report.tokens > 0 && bounded.report.tokens <= unbounded.report.tokens, `${bounded.report.tokens} of ${unbounded.report.tokens} loss tokens`);
    const byLine = new Map(unbounded.scoredLines.map((l, i) => [`${l.path}:${l.line}`, unbounded.perLine[i]]));
    assert.deepEqual(
      bounded.perLine,
      bounded.scoredLines.map((l) => byLine.get(`${l.path}:${l.line}`)),
    );
    const again = await evaluateModelPerLine(model, files, { lines: bounded.scoredLines, maxLossTokens: bounded.report.tokens });
    assert.deepEqual(again.perLine, bounded.perLine);
    assert.deepEqual(again.report, bounded.report);
  });

  it('stops when its signal is aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(evaluateModel(model, [{ path: 'a.ts', text: SOURCE }], { signal: controller.signal }), { name: 'AbortError' });
  });
});

describe('spreadOverFiles', () => {
  const line = (file: number, n: number) => ({ file, path: `f${file}`, line: n, cursor: 0, end: 0 });
  const cases: [string, number[][], string[]][] = [
    ['one file keeps its order', [[1, 5, 9]], ['0:1', '0:5', '0:9']],
    [
      'files take turns',
      [
        [1, 2, 3],
        [7, 8],
      ],
      ['0:1', '1:7', '0:2', '1:8', '0:3'],
    ],
    ['a file with one line joins the first round only', [[4], [1, 2, 3], [6]], ['0:4', '1:1', '2:6', '1:2', '1:3']],
    ['nothing', [], []],
  ];
  for (const [name, files, expected] of cases) {
    it(name, () => {
      const lines = files.flatMap((ns, f) => ns.map((n) => line(f, n)));
      assert.deepEqual(
        spreadOverFiles(lines).map((l) => `${l.file}:${l.line}`),
        expected,
      );
    });
  }
});

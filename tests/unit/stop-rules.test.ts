import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStopRules, type StopMode, type StopReason } from '../../server/src/completion/stop-rules';

const CURSOR = '█';

interface Row {
  name: string;
  /** The document, with the cursor marked by █. */
  text: string;
  /** What the model generates, fed one char (= one token) at a time. */
  output: string;
  mode: StopMode;
  expected: string;
  /** Undefined: generation ended on its own (finish) without a rule firing. */
  reason?: StopReason;
  maxTokens?: number;
}

const ROWS: Row[] = [
  // line mode
  { name: 'line: the first newline ends it', text: 'const x = █', output: 'compute(1);\nconst y = 2;', mode: 'line', expected: 'compute(1);', reason: 'line-end' },
  { name: 'line: a leading newline gives nothing', text: 'foo();█', output: '\nbar();', mode: 'line', expected: '', reason: 'line-end' },
  { name: 'line: CRLF', text: 'x = █', output: '1;\r\ny = 2;', mode: 'line', expected: '1;', reason: 'line-end' },
  { name: 'line: repeats the rest of the line', text: 'foo(█);\nbar();', output: 'a, b);\n', mode: 'line', expected: 'a, b', reason: 'suffix-overlap' },
  { name: 'line: its own closer is not an overlap', text: 'foo(█)', output: 'bar(1))', mode: 'line', expected: 'bar(1)', reason: 'suffix-overlap' },
  { name: 'line: a closer inside a string is not an overlap', text: 'log(█)', output: '"a)", b)', mode: 'line', expected: '"a)", b', reason: 'suffix-overlap' },
  { name: 'line: immediate overlap keeps nothing', text: 'foo(█)', output: ')', mode: 'line', expected: '', reason: 'suffix-overlap' },
  { name: 'line: ends on its own', text: 'x = █', output: '42', mode: 'line', expected: '42' },
  { name: 'line: token limit keeps the partial line', text: 'x = █', output: 'abcdefgh', mode: 'line', expected: 'abcd', reason: 'max-tokens', maxTokens: 4 },
  {
    name: 'line: a loop is cut after its first copy',
    text: 'const d = █',
    output: 'Math.floor(0, 0, 0, 0, 0, 0, 0, 0);',
    mode: 'line',
    expected: 'Math.floor(0, ',
    reason: 'repetition',
  },
  { name: 'line: a run of one char is a loop', text: "return '█", output: "naaaaaaaaaaaaaaaaaaaa';", mode: 'line', expected: 'na', reason: 'repetition' },
  { name: 'line: four zeros in an array are code, not a loop', text: 'const v = █', output: '[0, 0, 0, 0];', mode: 'line', expected: '[0, 0, 0, 0];' },
  { name: 'line: a rule without letters or digits is kept', text: '// █', output: '========================', mode: 'line', expected: '========================' },
  { name: 'line: long numbers are kept', text: 'const big = █', output: '0x00000000 + 1000000000;', mode: 'line', expected: '0x00000000 + 1000000000;' },
  // block mode
  {
    name: 'block: a later line that loops is dropped with the rest',
    text: 'function f() {\n  █\n}\n',
    output: 'const a = 1;\n  return [a, a, a, a, a, a, a, a, a];\n}\n',
    mode: 'block',
    expected: 'const a = 1;',
    reason: 'repetition',
  },
  {
    name: 'block: a loop on the cursor line is cut like in line mode',
    text: 'x = █',
    output: 'f(1, 1, 1, 1, 1, 1, 1, 1)\ny = 2\n',
    mode: 'block',
    expected: 'f(1, ',
    reason: 'repetition',
  },
  {
    name: 'block: an opened block ends with its closer at base indentation',
    text: 'if (ok) {█',
    output: '\n  run();\n}\nnext();',
    mode: 'block',
    expected: '\n  run();\n}',
    reason: 'block-end',
  },
  {
    name: 'block: the closer the document already has is not repeated',
    text: 'if (ok) {█\n}\n',
    output: '\n  run();\n}\n',
    mode: 'block',
    expected: '\n  run();',
    reason: 'suffix-overlap',
  },
  {
    name: 'block: a dedent below the cursor line ends it',
    text: 'function f() {\n  █\n}\n',
    output: 'return 1;\n}\n\nfunction g() {',
    mode: 'block',
    expected: 'return 1;',
    reason: 'block-end',
  },
  {
    name: 'block: python body ends at a blank line and a dedent',
    text: 'def f():█',
    output: '\n    x = 1\n    return x\n\ndef g():\n',
    mode: 'block',
    expected: '\n    x = 1\n    return x',
    reason: 'block-end',
  },
  {
    name: 'block: python else continues, the next statement ends it',
    text: 'def f(ok):\n    if ok:█',
    output: '\n        a()\n    else:\n        b()\n    c()\n',
    mode: 'block',
    expected: '\n        a()\n    else:\n        b()',
    reason: 'block-end',
  },
  {
    name: 'block: statements at one level run until a dedent, trailing blank lines dropped',
    text: 'function f() {\n  █',
    output: 'a();\n  b();\n\n}\n',
    mode: 'block',
    expected: 'a();\n  b();',
    reason: 'block-end',
  },
  { name: 'block: two blank lines end it', text: '█', output: 'x = 1\ny = 2\n\n\nz = 3\n', mode: 'block', expected: 'x = 1\ny = 2', reason: 'block-end' },
  {
    name: 'block: an object literal opened on the cursor line closes',
    text: '  const o = {█',
    output: '\n    a: 1,\n  };\n  next();\n',
    mode: 'block',
    expected: '\n    a: 1,\n  };',
    reason: 'block-end',
  },
  {
    name: 'block: } else { keeps the block open',
    text: '  if (a) {█',
    output: '\n    x();\n  } else {\n    y();\n  }\n  z();\n',
    mode: 'block',
    expected: '\n    x();\n  } else {\n    y();\n  }',
    reason: 'block-end',
  },
  {
    name: 'block: a generated line equal to the next document line stops it',
    text: 'function f() {\n  █\n  return total;\n}\n',
    output: 'total += 1;\n  return total;\n}\n',
    mode: 'block',
    expected: 'total += 1;',
    reason: 'suffix-overlap',
  },
  {
    name: 'block: its own closer equal to the next document line is kept',
    text: '█\n}\n',
    output: 'if (a) {\n  b();\n}\nc();\n',
    mode: 'block',
    expected: 'if (a) {\n  b();\n}',
    reason: 'block-end',
  },
  { name: 'block: token limit keeps whole lines', text: '█', output: 'a();\nb();\nc();\n', mode: 'block', expected: 'a();\nb();', reason: 'max-tokens', maxTokens: 12 },
  { name: 'block: ends on its own with the last line complete', text: 'if (x) {█', output: '\n  y();', mode: 'block', expected: '\n  y();' },
];

/** Feeds the output one char per step, as a decode loop would, and returns the final decision. */
function run(row: Row, now?: () => number) {
  const at = row.text.indexOf(CURSOR);
  const before = row.text.slice(0, at);
  const rules = createStopRules({
    mode: row.mode,
    lineBefore: before.slice(before.lastIndexOf('\n') + 1),
    textAfter: row.text.slice(at + CURSOR.length),
    maxTokens: row.maxTokens ?? 1000,
    deadline: 1000,
    now: now ?? (() => 0),
  });
  for (let i = 1; i <= row.output.length; i++) {
    const decision = rules.check(row.output.slice(0, i), i);
    if (decision.stop) return decision;
  }
  return rules.finish(row.output);
}

for (const row of ROWS) {
  test(row.name, () => {
    const decision = run(row);
    assert.equal(decision.text, row.expected);
    assert.equal(decision.reason, row.reason);
    assert.equal(decision.stop, true);
  });
}

test('time: the deadline stops generation (block mode keeps whole lines)', () => {
  let clock = 995;
  const row: Row = { name: 'time', text: '█', output: 'a();\nb();\nc();\n', mode: 'block', expected: '' };
  const decision = run(row, () => clock++);
  assert.equal(decision.reason, 'time');
  assert.equal(decision.text, 'a();', 'stopped at the sixth step, "a();\\nb"');
});

test('before any rule fires, check keeps everything and does not stop', () => {
  const rules = createStopRules({ mode: 'block', lineBefore: '', textAfter: '', maxTokens: 10, deadline: Infinity });
  assert.deepEqual(rules.check('a();\nb', 2), { stop: false, text: 'a();\nb' });
  assert.throws(() => createStopRules({ mode: 'lines' as StopMode, lineBefore: '', textAfter: '', maxTokens: 1, deadline: 0 }), RangeError);
});

test('time: a deadline already past when decoding starts cuts nothing shorter than minTokensBeforeDeadline', () => {
  const floor = createStopRules({ mode: 'line', lineBefore: '', textAfter: '', maxTokens: 64, deadline: 0, minTokensBeforeDeadline: 3, now: () => 1 });
  assert.deepEqual(floor.check('ab', 2), { stop: false, text: 'ab' }, 'two tokens: the floor holds');
  assert.deepEqual(floor.check('abc', 3), { stop: true, reason: 'time', text: 'abc' });
  const none = createStopRules({ mode: 'line', lineBefore: '', textAfter: '', maxTokens: 64, deadline: 0, now: () => 1 });
  assert.equal(none.check('a', 1).reason, 'time', 'without a floor the first token is cut');
});

// Params parsed at the LSP boundary: a bad field is InvalidParams naming it, never a NaN offset.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCodes, ResponseError } from 'vscode-languageserver/node';
import { parseCursorParams, parseFineTuneParams, parseInlineCompletionParams, parseValidateModelParams } from '../../server/src/lsp/params';

function invalid(message: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof ResponseError);
    assert.equal(err.code, ErrorCodes.InvalidParams);
    assert.match(err.message, message);
    return true;
  };
}

const good = { textDocument: { uri: 'file:///a.ts' }, position: { line: 3, character: 7 }, context: { triggerKind: 2 } };

describe('inline completion params', () => {
  it('parses good params (an invoked trigger is explicit)', () => {
    assert.deepEqual(parseInlineCompletionParams(good), { uri: 'file:///a.ts', position: { line: 3, character: 7 }, explicit: false });
    assert.equal(parseInlineCompletionParams({ ...good, context: { triggerKind: 1 } }).explicit, true);
    assert.deepEqual(parseInlineCompletionParams({ ...good, position: { line: 0, character: 2 ** 31 - 1 } }).position, { line: 0, character: 2 ** 31 - 1 });
  });

  for (const value of [0.5, '1', null, -1, 1e300, Number.NaN, 2 ** 31, undefined, true, [1]]) {
    it(`position.line ${String(value)} and position.character ${String(value)}: InvalidParams naming the field`, () => {
      assert.throws(
        () => parseInlineCompletionParams({ ...good, position: { line: value, character: 0 } }),
        invalid(/^position\.line must be an integer from 0 to 2147483647, got /),
      );
      assert.throws(
        () => parseInlineCompletionParams({ ...good, position: { line: 0, character: value } }),
        invalid(/^position\.character must be an integer from 0 to 2147483647, got /),
      );
    });
  }

  const cases: [string, unknown, RegExp][] = [
    ['no params', undefined, /^params must be an object, got nothing/],
    ['params an array', [good], /^params must be an object, got \[/],
    ['no textDocument', { ...good, textDocument: undefined }, /^textDocument must be an object/],
    ['no textDocument.uri', { ...good, textDocument: {} }, /^textDocument\.uri must be a non-empty string, got nothing/],
    ['a numeric uri', { ...good, textDocument: { uri: 7 } }, /^textDocument\.uri must be a non-empty string, got 7/],
    ['position a string', { ...good, position: '3:7' }, /^position must be an object, got "3:7"/],
    ['context a string', { ...good, context: 'auto' }, /^context must be an object, got "auto"/],
    ['no context', { ...good, context: undefined }, /^context must be an object, got nothing/],
    ['an unknown triggerKind', { ...good, context: { triggerKind: 3 } }, /^context\.triggerKind must be 1 \(invoked\) or 2 \(automatic\), got 3/],
  ];
  for (const [label, params, message] of cases) {
    it(`${label}: InvalidParams`, () => assert.throws(() => parseInlineCompletionParams(params), invalid(message)));
  }

  it('shows a long value shortened', () => {
    assert.throws(() => parseInlineCompletionParams({ ...good, position: { line: 'x'.repeat(500), character: 0 } }), invalid(/got "x{59}…$/));
  });
});

describe('kiln/cursor params', () => {
  const good = { textDocument: { uri: 'file:///a.ts' }, position: { line: 3, character: 7 }, reason: 'move' };
  it('accepts a cursor place and its reason', () => {
    assert.deepEqual(parseCursorParams(good), good);
    assert.equal(parseCursorParams({ ...good, reason: 'focus', extra: 1 }).reason, 'focus');
  });
  for (const [label, params, message] of [
    ['no uri', { ...good, textDocument: {} }, /^textDocument\.uri must be a non-empty string/],
    ['a negative line', { ...good, position: { line: -1, character: 0 } }, /^position\.line must be an integer/],
    ['an unknown reason', { ...good, reason: 'typed' }, /^reason must be "focus" or "move", got "typed"/],
  ] as const) {
    it(`${label}: InvalidParams`, () => assert.throws(() => parseCursorParams(params), invalid(message)));
  }
});

describe('kiln/validateModel and kiln/fineTune params', () => {
  it('validateModel needs a path string', () => {
    assert.deepEqual(parseValidateModelParams({ path: '/models/a' }), { path: '/models/a' });
    assert.throws(() => parseValidateModelParams({}), invalid(/^path must be a non-empty string, got nothing/));
    assert.throws(() => parseValidateModelParams({ path: 3 }), invalid(/^path must be a non-empty string, got 3/));
    assert.throws(() => parseValidateModelParams(null), invalid(/^params must be an object, got null/));
  });

  it('fineTune: good params pass through unchanged (fields other slices add included)', () => {
    const params = { workspace: '/w', mode: 'full', maxSteps: 5, maxFiles: 10, rank: 4, learningRate: 1e-4, extra: true };
    assert.equal(parseFineTuneParams(params), params);
    assert.deepEqual(parseFineTuneParams({ workspace: '/w' }), { workspace: '/w' });
  });

  const cases: [string, unknown, RegExp][] = [
    ['no workspace', {}, /^workspace must be a non-empty string, got nothing/],
    ['an unknown mode', { workspace: '/w', mode: 'half' }, /^mode must be "lora" or "full", got "half"/],
    ['maxSteps 0.5', { workspace: '/w', maxSteps: 0.5 }, /^maxSteps must be a positive integer, got 0\.5/],
    ['maxFiles "10"', { workspace: '/w', maxFiles: '10' }, /^maxFiles must be a positive integer, got "10"/],
    ['rank 0', { workspace: '/w', rank: 0 }, /^rank must be a positive integer, got 0/],
    ['learningRate -1', { workspace: '/w', learningRate: -1 }, /^learningRate must be a positive number, got -1/],
    ['learningRate null', { workspace: '/w', learningRate: null }, /^learningRate must be a positive number, got null/],
  ];
  for (const [label, params, message] of cases) {
    it(`fineTune with ${label}: InvalidParams`, () => assert.throws(() => parseFineTuneParams(params), invalid(message)));
  }
});

// The context block: its repo-level and comment-header layouts against a reference built here from
// the format's definition, budget trimming (never over, cut by whole lines, left out when not even
// two lines fit), a block order that does not depend on the candidates' order or scores, and
// hysteresis (a snippet in the block stays against a slightly better newcomer, not a much better one).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildContextBlock, STICKY_BONUS } from '../../server/src/context/block';
import { ContextBlockKeeper } from '../../server/src/context/block-keeper';
import { prefixFor, splitTokenBudget } from '../../server/src/context/budget';
import type { ContextSnippet } from '../../server/src/context/snippet';
import { resolveFimTemplate } from '../../server/src/model/fim';
import { Tokenizer } from '../../server/src/model/tokenizer';
import { seededRandom } from '../helpers/random';
import { makeTinyTokenizerJson } from '../helpers/tiny-tokenizer';

const tok = Tokenizer.fromJson(makeTinyTokenizerJson({ vocabSize: 1000 }));
const template = resolveFimTemplate(tok)!;
const encode = (s: string) => tok.encode(s);

function snippet(source: ContextSnippet['source'], path: string, startLine: number, lines: string[], score = 1): ContextSnippet {
  return { source, path, startLine, endLine: startLine + lines.length, text: lines.join('\n'), score };
}

const parse = snippet('imports', 'src/parse.ts', 0, ['export function parse(text: string): Node[] { … }', 'export interface Node {', '  kind: string;', '}']);
const edit = snippet('edits', 'src/app.ts', 40, ['  const tree = parse(source);', '  render(tree);']);
const similar = snippet('similar', 'lib/util.py', 12, ['def load(path):', '    with open(path) as f:', '        return f.read()', 'def save(path, text):', '    pass'], 0.4);

describe('block layout', () => {
  it("writes Qwen2.5-Coder's repo-level format: <|repo_name|>name, then <|file_sep|>path + code per snippet, then <|file_sep|> and the current path", () => {
    const block = buildContextBlock({ candidates: [similar, edit, parse], currentPath: 'src/main.ts', repoName: 'demo', maxTokens: 10_000, encode, template });
    const expected = [
      tok.tokenToId('<|repo_name|>')!,
      ...encode('demo\n'),
      ...[parse, edit, similar].flatMap((s) => [tok.tokenToId('<|file_sep|>')!, ...encode(`${s.path}\n${s.text}\n`)]),
      tok.tokenToId('<|file_sep|>')!,
      ...encode('src/main.ts\n'),
    ];
    assert.deepEqual(block.tokens, expected);
    assert.deepEqual(
      block.snippets.map((s) => s.source),
      ['imports', 'edits', 'similar'],
    );
  });

  it('writes comment headers naming each path, in the language of the snippet, for a model without a repo-level format', () => {
    const block = buildContextBlock({ candidates: [similar, parse], currentPath: 'src/main.ts', repoName: 'demo', maxTokens: 10_000, encode, template, format: 'comment' });
    const text = `// src/parse.ts\n${parse.text}\n\n# lib/util.py\n${similar.text}\n\n// src/main.ts\n`;
    assert.deepEqual(block.tokens, encode(`// src/parse.ts\n${parse.text}\n\n`).concat(encode(`# lib/util.py\n${similar.text}\n\n`), encode('// src/main.ts\n')));
    assert.equal(tok.decode(block.tokens), text);
  });

  it('is empty (no tokens at all) when nothing is found or the budget is zero, so a prompt without context is unchanged', () => {
    assert.deepEqual(buildContextBlock({ candidates: [], currentPath: 'a.ts', repoName: 'r', maxTokens: 100, encode, template }).tokens, []);
    assert.deepEqual(buildContextBlock({ candidates: [parse], currentPath: 'a.ts', repoName: 'r', maxTokens: 0, encode, template }).tokens, []);
  });
});

describe('budget trimming', () => {
  const full = buildContextBlock({ candidates: [parse, edit, similar], currentPath: 'src/main.ts', repoName: 'demo', maxTokens: 10_000, encode, template }).tokens.length;
  for (const budget of [8, 20, 40, 60, 80, 100, full - 1, full, full + 50]) {
    it(`never exceeds ${budget} tokens; a snippet that does not fit is cut to its first lines or left out`, () => {
      const block = buildContextBlock({ candidates: [parse, edit, similar], currentPath: 'src/main.ts', repoName: 'demo', maxTokens: budget, encode, template });
      assert.ok(block.tokens.length <= budget, `${block.tokens.length} > ${budget}`);
      for (const s of block.snippets) {
        const original = [parse, edit, similar].find((o) => o.path === s.path)!;
        const lines = s.text.split('\n');
        assert.ok(lines.length >= 2, 'at least two lines');
        assert.deepEqual(lines, original.text.split('\n').slice(0, lines.length), 'whole lines from the start');
        assert.equal(s.endLine - s.startLine, lines.length);
      }
      if (budget >= full) assert.equal(block.snippets.length, 3);
    });
  }

  it("the embedded model's split: context ≤ 176, suffix 66, prefix what the block leaves (198–374) of 512 − 64 − 8", () => {
    const b = splitTokenBudget({ modelTokens: 512, completionTokens: 64, maxContext: 512, maxPrefix: 1024, maxSuffix: 256 });
    assert.deepEqual([b.context, b.suffix, prefixFor(b, b.context), prefixFor(b, 0)], [176, 66, 198, 374]);
    const off = splitTokenBudget({ modelTokens: 512, completionTokens: 64, maxContext: 0, maxPrefix: 1024, maxSuffix: 256 });
    assert.deepEqual([off.context, off.suffix, prefixFor(off, 0)], [0, 110, 330], 'without context: the split the engine always had');
  });
});

describe('stable order and hysteresis', () => {
  it('gives the same tokens whatever the order of the candidates or their scores, when the same snippets are chosen', () => {
    const rand = seededRandom(5);
    const base = buildContextBlock({ candidates: [parse, edit, similar], currentPath: 'x.ts', repoName: 'r', maxTokens: 10_000, encode, template });
    for (let i = 0; i < 20; i++) {
      const shuffled = [parse, edit, similar].map((s) => ({ ...s, score: rand() })).sort(() => rand() - 0.5);
      assert.deepEqual(buildContextBlock({ candidates: shuffled, currentPath: 'x.ts', repoName: 'r', maxTokens: 10_000, encode, template }).tokens, base.tokens);
    }
  });

  it('keeps a snippet already in the block against a newcomer less than STICKY_BONUS times better, and lets a much better one in', () => {
    const keeper = new ContextBlockKeeper();
    const a = snippet('similar', 'a.ts', 0, ['alpha one', 'alpha two', 'alpha three'], 0.5);
    const b = snippet('similar', 'b.ts', 0, ['beta one', 'beta two', 'beta three'], 0.5 * STICKY_BONUS * 0.9);
    const c = snippet('similar', 'c.ts', 0, ['gamma one', 'gamma two', 'gamma three'], 0.5 * STICKY_BONUS * 1.1);
    const oneFits = buildContextBlock({ candidates: [a], currentPath: 'x.ts', repoName: 'r', maxTokens: 10_000, encode, template }).tokens.length;
    const ask = (candidates: ContextSnippet[]) => keeper.blockFor('doc', { candidates, currentPath: 'x.ts', repoName: 'r', maxTokens: oneFits + 2, encode, template });
    assert.deepEqual(
      ask([a]).snippets.map((s) => s.path),
      ['a.ts'],
    );
    const kept = ask([b, a]);
    assert.deepEqual(
      kept.snippets.map((s) => s.path),
      ['a.ts'],
      'the slightly better b does not replace a',
    );
    assert.deepEqual(
      ask([c, b, a]).snippets.map((s) => s.path),
      ['c.ts'],
      'the much better c does',
    );
    // without the previous block, b wins outright: the preference is the hysteresis, not the ranking
    assert.deepEqual(
      buildContextBlock({ candidates: [b, a], currentPath: 'x.ts', repoName: 'r', maxTokens: oneFits + 2, encode, template }).snippets.map((s) => s.path),
      ['b.ts'],
    );
  });

  it('answers the same candidates with the very same block, without building it again', () => {
    const keeper = new ContextBlockKeeper();
    const request = { candidates: [parse, similar], currentPath: 'x.ts', repoName: 'r', maxTokens: 10_000, encode, template };
    const first = keeper.blockFor('doc', request);
    for (let i = 0; i < 50; i++) assert.equal(keeper.blockFor('doc', { ...request, candidates: [parse, similar] }), first);
    assert.equal(keeper.built, 1);
  });
});

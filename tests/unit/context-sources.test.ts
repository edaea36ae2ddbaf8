// Each context source on its own, table-driven: identifier sets and Jaccard ranking (against a
// brute-force reference over every window), the index's bounds and removals, recency order and line
// shifting of recent edits, and relative-import parsing, resolution and declaration cutting.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { identifierSet, jaccard } from '../../server/src/context/identifiers';
import { declarationsOf, parseRelativeImports, resolveImport } from '../../server/src/context/imports';
import { RecentActivity } from '../../server/src/context/recent-activity';
import { SimilarWindowIndex } from '../../server/src/context/similar-index';
import { parseContextSources } from '../../server/src/context/snippet';
import { seededRandom } from '../helpers/random';

describe('identifier sets and Jaccard', () => {
  const cases: [string, string, number][] = [
    ['const total = items.length', 'total items length', 1],
    ['a.b', 'c.d', 0], // single letters are not identifiers worth matching
    ['return self.values[tag]', 'self.values = {}', 1 / 2], // {values, tag} vs {values}: self is a keyword-like word
    ['if (x) return null', 'while (y) return undefined', 0], // keywords only
    ['fooBar baz_qux $el', 'fooBar $el other', 2 / 4],
  ];
  for (const [a, b, expected] of cases) {
    it(`${JSON.stringify(a)} ~ ${JSON.stringify(b)} = ${expected.toFixed(3)}`, () => {
      assert.ok(Math.abs(jaccard(identifierSet(a), identifierSet(b)) - expected) < 1e-12);
    });
  }
});

/** Random code-like files over a small vocabulary, so windows share identifiers unevenly. */
function randomFiles(seed: number, files: number, lines: number): Map<string, string> {
  const rand = seededRandom(seed);
  const words = Array.from({ length: 40 }, (_, i) => `name${i}`);
  const out = new Map<string, string>();
  for (let f = 0; f < files; f++) {
    const text = Array.from({ length: lines }, () => {
      const n = 1 + Math.floor(rand() * 4);
      return `  ${Array.from({ length: n }, () => words[Math.floor(rand() * words.length * (0.3 + 0.7 * (f / files)))]!).join(' = ')};`;
    }).join('\n');
    out.set(`src/f${f}.ts`, text);
  }
  return out;
}

describe('similar windows', () => {
  it('ranks the windows by Jaccard exactly as a brute-force pass over every window does (best window per file)', () => {
    const files = randomFiles(3, 12, 50);
    const index = new SimilarWindowIndex({ windowLines: 8, stride: 4 });
    for (const [path, text] of files) index.update(path, text);
    const query = identifierSet('name1 name2 name3 name5 name8 name13');
    const got = index.query(query, { limit: 5, minScore: 0 });
    // reference: every window of every file, scored directly
    const best = new Map<string, number>();
    for (const [path, text] of files) {
      const lines = text.split('\n');
      for (let s = 0; s < lines.length; s += 4) {
        const score = jaccard(query, identifierSet(lines.slice(s, s + 8).join('\n')));
        best.set(path, Math.max(best.get(path) ?? 0, score));
        if (s + 8 >= lines.length) break;
      }
    }
    const expected = [...best.entries()].filter(([, s]) => s > 0).sort((a, b) => b[1] - a[1]);
    assert.deepEqual(
      got.map((s) => s.score),
      expected.slice(0, 5).map(([, s]) => s),
    );
    for (const s of got) {
      assert.equal(s.source, 'similar');
      assert.equal(s.text, files.get(s.path)!.split('\n').slice(s.startLine, s.endLine).join('\n'));
      assert.ok(Math.abs(jaccard(query, identifierSet(s.text)) - s.score) < 1e-12, 'the score is the returned text’s own Jaccard');
    }
  });

  it('answers the same after thousands of re-indexings (window ids handed out again), and as many queries in a row', () => {
    const files = randomFiles(5, 10, 40);
    const fresh = new SimilarWindowIndex({ windowLines: 8, stride: 4 });
    const edited = new SimilarWindowIndex({ windowLines: 8, stride: 4 });
    for (const [path, text] of files) {
      fresh.update(path, text);
      edited.update(path, text);
    }
    // an editor session: the same files indexed again and again, each time with new window ids
    const paths = [...files.keys()];
    for (let i = 0; i < 3000; i++) edited.update(paths[i % paths.length]!, files.get(paths[i % paths.length]!)!);
    assert.ok((edited as unknown as { nextId: number }).nextId < 4 * 1024 + 100, 'ids stay bounded');
    for (const words of ['name1 name2 name3', 'name5 name8 name13 name21', 'name2 name4 name6 name8 name10']) {
      const query = identifierSet(words);
      for (let repeat = 0; repeat < 2; repeat++) assert.deepEqual(edited.query(query, { limit: 6, minScore: 0 }), fresh.query(query, { limit: 6, minScore: 0 }));
    }
  });

  it('never returns an excluded path, and a removed or replaced file leaves nothing behind', () => {
    const index = new SimilarWindowIndex({ windowLines: 4, stride: 2 });
    index.update('a.ts', 'alpha beta gamma\ndelta');
    index.update('b.ts', 'alpha beta\nepsilon');
    const q = identifierSet('alpha beta gamma');
    assert.deepEqual(
      index.query(q, { exclude: (p) => p === 'a.ts', minScore: 0 }).map((s) => s.path),
      ['b.ts'],
    );
    index.update('a.ts', 'zeta eta');
    assert.deepEqual(
      index.query(q, { minScore: 0 }).map((s) => s.path),
      ['b.ts'],
    );
    index.remove('b.ts');
    assert.deepEqual(index.query(q, { minScore: 0 }), []);
    index.remove('a.ts');
    assert.equal(index.windowCount, 0);
    assert.equal(index.charCount, 0);
  });

  it('stays within its bounds on windows and characters, evicting the least recently updated files', () => {
    const index = new SimilarWindowIndex({ windowLines: 4, stride: 4, maxWindows: 50, maxTotalChars: 20_000, maxFileChars: 5_000 });
    const files = randomFiles(9, 60, 40);
    for (const [path, text] of files) {
      index.update(path, text);
      assert.ok(index.windowCount <= 50 && index.charCount <= 20_000, `${index.windowCount} windows, ${index.charCount} chars`);
    }
    assert.ok(index.has('src/f59.ts'), 'the newest file is kept');
    assert.ok(!index.has('src/f0.ts'), 'the oldest went');
    assert.equal(index.update('big.ts', 'x'.repeat(5_001)), false, 'a file over maxFileChars is not indexed');
  });
});

describe('recent activity', () => {
  const table: { name: string; steps: (a: RecentActivity) => void; edits: [string, number, number][] }[] = [
    {
      name: 'newest first across documents',
      steps: (a) => {
        a.noteChange('a.ts', { startLine: 10, endLine: 10, insertedLines: 0 });
        a.noteChange('b.ts', { startLine: 3, endLine: 3, insertedLines: 1 });
        a.noteChange('a.ts', { startLine: 40, endLine: 40, insertedLines: 0 });
      },
      edits: [
        ['a.ts', 40, 41],
        ['b.ts', 3, 5],
        ['a.ts', 10, 11],
      ],
    },
    {
      name: 'lines inserted above a range shift it down; deleted above shift it up',
      steps: (a) => {
        a.noteChange('a.ts', { startLine: 20, endLine: 20, insertedLines: 0 });
        a.noteChange('a.ts', { startLine: 2, endLine: 2, insertedLines: 3 }); // +3 lines at line 2
        a.noteChange('a.ts', { startLine: 0, endLine: 1, insertedLines: 0 }); // line 0..1 joined: −1
      },
      edits: [
        ['a.ts', 0, 1],
        ['a.ts', 1, 5],
        ['a.ts', 22, 23],
      ],
    },
    {
      name: 'an edit inside a known range merges with it and moves it to the front',
      steps: (a) => {
        a.noteChange('a.ts', { startLine: 5, endLine: 5, insertedLines: 2 });
        a.noteChange('b.ts', { startLine: 1, endLine: 1, insertedLines: 0 });
        a.noteChange('a.ts', { startLine: 6, endLine: 6, insertedLines: 0 });
      },
      edits: [
        ['a.ts', 5, 8],
        ['b.ts', 1, 2],
      ],
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      const a = new RecentActivity();
      row.steps(a);
      assert.deepEqual(
        a.edits().map((e) => [e.path, e.start, e.end]),
        row.edits,
      );
    });
  }

  it('keeps a bounded ring of edits and of viewed documents, newest first', () => {
    const a = new RecentActivity({ maxEdits: 4, maxViewed: 2 });
    for (let i = 0; i < 100; i++) a.noteChange(`f${i % 7}.ts`, { startLine: i, endLine: i, insertedLines: 0 });
    assert.equal(a.edits().length, 4);
    for (const p of ['x.ts', 'y.ts', 'z.ts', 'x.ts']) a.noteView(p, [{ start: 0, end: 30 }]);
    assert.deepEqual(
      a.viewed().map((v) => v.path),
      ['x.ts', 'z.ts'],
    );
  });
});

describe('relative imports', () => {
  const parses: [string, string, { spec: string; names?: string[] }[]][] = [
    ['src/a.ts', "import { parse, type Options as O } from './parse';\nimport fs from 'node:fs';", [{ spec: './parse', names: ['parse', 'Options'] }]],
    ['src/a.ts', "import * as util from '../util/index.js';\nexport { run } from './run';", [{ spec: '../util/index.js' }, { spec: './run', names: ['run'] }]],
    ['src/a.js', "const x = require('./x');\nimport('./lazy');", [{ spec: './x' }, { spec: './lazy' }]],
    ['src/a.ts', "import D, { a } from './d';\nimport { b } from './d';", [{ spec: './d' }]], // a default import wants the whole module
    [
      'pkg/mod.py',
      'from .models import User, Group as G\nfrom ..core.db import (\n    connect,\n    close,\n)\nimport os',
      [
        { spec: '.models', names: ['User', 'Group'] },
        { spec: '..core.db', names: ['connect', 'close'] },
      ],
    ],
    ['pkg/mod.py', 'from . import helpers, views', [{ spec: '.helpers' }, { spec: '.views' }]],
    ['pkg/__init__.py', 'from .models import *\nfrom .views import index', [{ spec: '.models' }, { spec: '.views', names: ['index'] }]], // a star import wants the whole module
    ['pkg/mod.py', 'from .models import User; import os', [{ spec: '.models', names: ['User'] }]],
    ['pkg/mod.py', 'from .models import User, \\\n    Group', [{ spec: '.models', names: ['User', 'Group'] }]], // a backslash continues the line
    ['notes.md', "import { x } from './x'", []],
  ];
  for (const [path, text, expected] of parses) {
    it(`parses ${JSON.stringify(text.split('\n')[0])} in ${path}`, () => assert.deepEqual(parseRelativeImports(path, text), expected));
  }

  const known = new Set(['src/parse.ts', 'src/util/index.ts', 'src/run.tsx', 'lib/x.js', 'pkg/models.py', 'core/db/__init__.py', 'pkg/helpers.py']);
  const resolves: [string, string, string | undefined][] = [
    ['src/a.ts', './parse', 'src/parse.ts'],
    ['src/a.ts', '../src/util/index.js', 'src/util/index.ts'], // './x.js' written for './x.ts'
    ['src/a.ts', './util', 'src/util/index.ts'],
    ['src/a.ts', './run', 'src/run.tsx'],
    ['lib/a.js', './x', 'lib/x.js'],
    ['pkg/mod.py', '.models', 'pkg/models.py'],
    ['pkg/mod.py', '..core.db', 'core/db/__init__.py'],
    ['pkg/mod.py', '.helpers', 'pkg/helpers.py'],
    ['src/a.ts', './missing', undefined],
    ['a.ts', '../../etc/passwd', undefined], // outside the workspace
  ];
  for (const [from, spec, expected] of resolves) {
    it(`resolves ${spec} from ${from} to ${expected}`, () =>
      assert.equal(
        resolveImport(from, spec, (p) => known.has(p)),
        expected,
      ));
  }

  const ts = [
    'import { z } from "./z";',
    'export interface Options {',
    '  limit: number;',
    '  name?: string;',
    '}',
    'export function parse(text: string, options: Options): Node[] {',
    '  const out = [];',
    '  return out;',
    '}',
    'function helper() {}',
    'export class Parser {',
    '  private depth = 0;',
    '  constructor(readonly text: string) {',
    '    this.depth = 1;',
    '  }',
    '  next(): Token | undefined {',
    '    return undefined;',
    '  }',
    '}',
    'export const VERSION = 3;',
  ].join('\n');
  const py = [
    'import os',
    'class User:',
    '    """A user."""',
    '    def __init__(self, name):',
    '        self.name = name',
    '    def greet(self) -> str:',
    '        return self.name',
    'def _private():',
    '    pass',
    'def load(path):',
    '    return path',
    'LIMIT = 10',
  ].join('\n');
  const decls: [string, string, 'js' | 'python', string[] | undefined, string][] = [
    [
      'named TS imports',
      ts,
      'js',
      ['parse', 'Options'],
      'export interface Options {\n  limit: number;\n  name?: string;\n}\nexport function parse(text: string, options: Options): Node[] { … }',
    ],
    [
      'a TS class keeps its member signatures, bodies dropped',
      ts,
      'js',
      ['Parser'],
      'export class Parser {\n  private depth = 0;\n  constructor(readonly text: string) { … }\n  next(): Token | undefined { … }\n}',
    ],
    ['a whole TS module: exported declarations only', ts, 'js', undefined, ts.split('\n').filter((l) => l.startsWith('export'))[0]!],
    [
      'a whole CommonJS module: its top-level declarations',
      'function load(input, options) {\n  return parse(input);\n}\nvar DEFAULT = 3;\nmodule.exports.load = load;\n',
      'js',
      undefined,
      'function load(input, options) { … }\nvar DEFAULT = 3;',
    ],
    ['Python names', py, 'python', ['User'], 'class User:\n    def __init__(self, name):\n    def greet(self) -> str:'],
    [
      'a whole Python module leaves private names out',
      py,
      'python',
      undefined,
      'class User:\n    def __init__(self, name):\n    def greet(self) -> str:\ndef load(path):\nLIMIT = 10',
    ],
  ];
  for (const [name, text, lang, names, expected] of decls) {
    it(`declarations: ${name}`, () => {
      const got = declarationsOf(text, lang, names);
      if (names === undefined && lang === 'js' && text === ts) assert.ok(got.startsWith(expected) && !got.includes('helper') && got.includes('export const VERSION = 3;'), got);
      else assert.equal(got, expected);
    });
  }
});

describe('context source names', () => {
  it('parses all, none and lists, and names an unknown source', () => {
    assert.deepEqual(parseContextSources('all'), ['imports', 'edits', 'viewed', 'similar']);
    assert.deepEqual(parseContextSources('none'), []);
    assert.deepEqual(parseContextSources('similar, imports'), ['imports', 'similar']);
    assert.throws(() => parseContextSources('similar,lsp'), /unknown context source "lsp"/);
  });
});

// The context sources together over a workspace: no snippet ever holds the cursor's line (random
// documents, edits and cursors), a typing storm costs a bounded amount of work and memory, nothing
// the fine-tune would refuse (secret files and lines, generated, vendored, linked files) reaches a
// snippet, imports resolve to the imported declarations, and the evaluation's near-duplicate rule.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { linesBefore, RepositoryContext } from '../../server/src/context/repository-context';
import { ContextBlockKeeper } from '../../server/src/context/block-keeper';
import { CONTEXT_SOURCES, lineAt } from '../../server/src/context/snippet';
import type { FimTemplate } from '../../server/src/model/fim';
import { datasetContextPolicy, workspaceContextFiles } from '../../server/src/dataset/context-files';
import { SCAN_DEFAULTS } from '../../server/src/dataset/scan';
import { moduleStem, NearDuplicates } from '../../server/src/dataset/near-duplicates';
import { commandContext } from '../../server/src/dataset/workspace-context';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-context-');
after(() => rmSync(root, { recursive: true, force: true }));

/** A policy that admits everything (the storm and cursor tests are about the sources, not the rules). */
const admitAll = { admit: (_path: string, text: string) => text };

function codeLines(seed: number, n: number, tag: string): string[] {
  const rand = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => `  const ${tag}${i} = compute(items${Math.floor(rand() * 9)}, limit${Math.floor(rand() * 5)}); // ${tag} line ${i}`);
}

describe('no snippet holds the cursor line', () => {
  it('over random documents, edits everywhere, views of the current document and cursors anywhere', async () => {
    const rand = seededRandom(11);
    const ctx = new RepositoryContext({ policy: admitAll, idle: { quietMs: 0 } });
    const main = codeLines(1, 200, 'main');
    ctx.openDocument('src/main.ts', main.join('\n'));
    ctx.openDocument('src/other.ts', codeLines(2, 80, 'main').join('\n')); // similar identifiers on purpose
    for (let i = 0; i < 40; i++) {
      const line = Math.floor(rand() * 200);
      ctx.changeDocument('src/main.ts', main.join('\n'), [{ startLine: line, endLine: line, insertedLines: 0 }]);
    }
    ctx.viewDocument('src/main.ts', [{ start: 0, end: 200 }]);
    ctx.viewDocument('src/other.ts', [{ start: 10, end: 60 }]);
    await ctx.settled();
    const text = main.join('\n');
    let seen = 0;
    for (let trial = 0; trial < 300; trial++) {
      const offset = Math.floor(rand() * text.length);
      const cursorLine = lineAt(text, offset);
      for (const s of ctx.candidates({ path: 'src/main.ts', text, offset, sources: CONTEXT_SOURCES })) {
        seen++;
        assert.ok(!(s.path === 'src/main.ts' && s.startLine <= cursorLine && cursorLine < s.endLine), `${s.source} ${s.startLine}-${s.endLine} holds line ${cursorLine}`);
        assert.ok(!s.text.includes(`main line ${cursorLine} `) || s.path !== 'src/main.ts', 'nor its text');
      }
    }
    assert.ok(seen > 300, `the sources did find snippets (${seen})`);
    ctx.dispose();
  });
  it('while typing, before the document is admitted again: edits, pastes and deletions move lines under the admitted text', async () => {
    const rand = seededRandom(3);
    let checked = 0;
    for (let trial = 0; trial < 60; trial++) {
      const ctx = new RepositoryContext({ policy: admitAll, idle: { quietMs: 0 } });
      let uid = 0;
      const fresh = () => `  const line_${uid++} = compute(a, b);`; // every line unique: its text names it
      const lines = Array.from({ length: 150 }, fresh);
      ctx.openDocument('src/m.ts', lines.join('\n'));
      await ctx.settled();
      // one burst: nothing is admitted between these changes (the idle queue never runs inside it)
      for (let op = 0; op < 12; op++) {
        const at = Math.floor(rand() * lines.length);
        const kind = rand();
        if (kind < 0.4) {
          const n = 1 + Math.floor(rand() * 50);
          lines.splice(at, 0, ...Array.from({ length: n }, fresh));
          ctx.changeDocument('src/m.ts', lines.join('\n'), [{ startLine: at, endLine: at, insertedLines: n }]);
        } else if (kind < 0.7 && lines.length > 60) {
          const end = Math.min(lines.length - 1, at + 1 + Math.floor(rand() * 40));
          lines.splice(at, end - at); // the range (at, 0)-(end, 0) deleted
          ctx.changeDocument('src/m.ts', lines.join('\n'), [{ startLine: at, endLine: end, insertedLines: 0 }]);
        } else {
          lines[at] = fresh();
          ctx.changeDocument('src/m.ts', lines.join('\n'), [{ startLine: at, endLine: at, insertedLines: 0 }]);
        }
        const text = lines.join('\n');
        for (let c = 0; c < 5; c++) {
          const cursorLine = Math.floor(rand() * lines.length);
          const offset = lines.slice(0, cursorLine).join('\n').length + (cursorLine > 0 ? 1 : 0);
          for (const s of ctx.candidates({ path: 'src/m.ts', text, offset, sources: CONTEXT_SOURCES })) {
            checked++;
            assert.ok(!s.text.split('\n').includes(lines[cursorLine]!), `${s.source} ${s.startLine}-${s.endLine} holds the cursor line ${cursorLine}'s text`);
          }
        }
      }
      ctx.dispose();
    }
    assert.ok(checked > 1_000, `the edits gave snippets (${checked})`);
  });
});

describe('linesBefore maps live lines back to the admitted text', () => {
  it('a line no change wrote maps to its admitted line exactly (random replacements, a reference by line identity)', () => {
    const rand = seededRandom(17);
    for (let trial = 0; trial < 200; trial++) {
      // each line is its admitted index, or -1 once a change wrote it
      let live = Array.from({ length: 40 }, (_, i) => i);
      const changes: { startLine: number; endLine: number; insertedLines: number }[] = [];
      for (let k = 0; k < 6; k++) {
        const startLine = Math.floor(rand() * live.length);
        const endLine = Math.min(live.length - 1, startLine + Math.floor(rand() * 5));
        const insertedLines = Math.floor(rand() * 4);
        // lines startLine..endLine replaced by insertedLines + 1 lines; the first keeps the start line's head, the last the end line's tail
        const written = Array.from({ length: insertedLines + 1 }, () => -1);
        live = [...live.slice(0, startLine), ...written, ...live.slice(endLine + 1)];
        changes.push({ startLine, endLine, insertedLines });
        for (let l = 0; l < live.length; l++) {
          const { first, last } = linesBefore(l, l, changes);
          assert.ok(first <= last, `${first} > ${last}`);
          if (live[l]! >= 0) assert.deepEqual([first, last], [live[l], live[l]], `trial ${trial}: line ${l} (admitted ${live[l]})`);
        }
      }
    }
  });
});

describe('typing storms stay bounded', () => {
  it('5,000 keystrokes record edits in a bounded ring, queue one refresh, and admit (scrub) nothing until the typing stops', async () => {
    let admitted = 0;
    const ctx = new RepositoryContext({
      policy: {
        admit: (_p, t) => {
          admitted++;
          return t;
        },
      },
      idle: { quietMs: 60_000 },
      index: { maxWindows: 500 },
    });
    let text = codeLines(3, 100, 'storm').join('\n');
    ctx.openDocument('src/storm.ts', text);
    for (let i = 0; i < 5_000; i++) {
      const newline = i % 50 === 49;
      text += newline ? '\n' : `v${i % 7}`;
      const line = 99 + Math.floor(i / 50);
      ctx.changeDocument('src/storm.ts', text, [{ startLine: line, endLine: line, insertedLines: newline ? 1 : 0 }]);
      ctx.candidates({ path: 'src/storm.ts', text, offset: text.length, sources: CONTEXT_SOURCES });
    }
    assert.equal(admitted, 0, 'nothing was scrubbed or indexed while typing');
    assert.ok(ctx.idle.pending <= 2, `${ctx.idle.pending} idle tasks queued`);
    assert.ok(ctx.activity.edits().length <= 16);
    assert.ok(ctx.index.queries <= 5_000 / 50 + 2, `the similar query ran ${ctx.index.queries} times: once per finished line, not per keystroke`);
    ctx.dispose();
  });

  it('a long burst typed within lines keeps the edit snippets of its document (only changes that move lines are remembered)', async () => {
    const ctx = new RepositoryContext({ policy: admitAll, idle: { quietMs: 0 } });
    const lines = codeLines(4, 200, 'burst');
    ctx.openDocument('src/burst.ts', lines.join('\n'));
    await ctx.settled();
    ctx.changeDocument('src/burst.ts', lines.join('\n'), [{ startLine: 120, endLine: 120, insertedLines: 0 }]);
    for (let i = 0; i < 1_000; i++) {
      lines[10] += 'x';
      ctx.changeDocument('src/burst.ts', lines.join('\n'), [{ startLine: 10, endLine: 10, insertedLines: 0 }]);
    }
    const text = lines.join('\n');
    const offset = lines.slice(0, 11).join('\n').length;
    const edits = ctx.candidates({ path: 'src/burst.ts', text, offset, sources: ['edits'] });
    assert.ok(
      edits.some((s) => s.startLine <= 120 && 120 < s.endLine),
      JSON.stringify(edits.map((s) => [s.startLine, s.endLine])),
    );
    ctx.dispose();
  });

  it('typing lines (Enter included) before the document is admitted again keeps the block: its edit snippets do not move', async () => {
    const rand = seededRandom(5);
    const ctx = new RepositoryContext({ policy: admitAll, idle: { quietMs: 0 } });
    for (let f = 0; f < 4; f++) ctx.openDocument(`src/o${f}.ts`, codeLines(20 + f, 80, `o${f}_`).join('\n'));
    const lines = codeLines(9, 200, 'main');
    ctx.openDocument('src/main.ts', lines.join('\n'));
    await ctx.settled();
    for (let f = 0; f < 4; f++) ctx.changeDocument(`src/o${f}.ts`, codeLines(20 + f, 80, `o${f}_`).join('\n'), [{ startLine: 10 + f, endLine: 10 + f, insertedLines: 0 }]);
    ctx.changeDocument('src/main.ts', lines.join('\n'), [{ startLine: 180, endLine: 180, insertedLines: 0 }]); // far below the cursor
    await ctx.settled();
    const keeper = new ContextBlockKeeper();
    const encode = (text: string) => [...text].map((c) => c.charCodeAt(0));
    const keys = new Set<string>();
    let line = 40;
    for (let k = 0; k < 600; k++) {
      // no admission inside the burst: the idle queue does not run between these synchronous keystrokes
      if (k % 30 === 29) {
        lines.splice(line + 1, 0, '  ');
        ctx.changeDocument('src/main.ts', lines.join('\n'), [{ startLine: line, endLine: line, insertedLines: 1 }]);
        line++;
      } else {
        lines[line] += String.fromCharCode(97 + Math.floor(rand() * 26));
        ctx.changeDocument('src/main.ts', lines.join('\n'), [{ startLine: line, endLine: line, insertedLines: 0 }]);
      }
      const text = lines.join('\n');
      const candidates = ctx.candidates({ path: 'src/main.ts', text, offset: lines.slice(0, line + 1).join('\n').length, sources: CONTEXT_SOURCES });
      const block = keeper.blockFor('src/main.ts', {
        candidates,
        currentPath: 'src/main.ts',
        repoName: 'r',
        maxTokens: 400,
        encode,
        template: {} as FimTemplate,
        format: 'comment',
      });
      assert.ok(
        block.snippets.some((s) => s.path === 'src/main.ts'),
        'the far edit of the typed document is in the block',
      );
      keys.add(block.key);
    }
    assert.equal(keys.size, 1, `the block changed ${keys.size - 1} times in 600 keystrokes`);
    ctx.dispose();
  });

  it('the workspace index stays within its window bound however many files the workspace has', async () => {
    const ctx = new RepositoryContext({ policy: admitAll, idle: { quietMs: 0 }, index: { maxWindows: 300 } });
    for (let f = 0; f < 200; f++) ctx.openDocument(`src/f${f}.ts`, codeLines(f, 60, `f${f}_`).join('\n'));
    await ctx.settled();
    assert.ok(ctx.index.windowCount <= 300, `${ctx.index.windowCount} windows`);
    ctx.dispose();
  });
});

describe('what the fine-tune refuses never becomes a snippet', () => {
  const ws = join(root, 'ws');
  const awsKey = `AKIA${'ABCDEFGH'.repeat(2).slice(0, 15)}7`;
  const shared = 'export function computeTotals(orders, taxRate) {\n  return orders.map((order) => order.amount * taxRate);\n}\n';
  mkdirSync(join(ws, 'src'), { recursive: true });
  mkdirSync(join(ws, 'node_modules', 'dep'), { recursive: true });
  mkdirSync(join(ws, 'dist'), { recursive: true });
  writeFileSync(join(ws, '.env'), `AWS_KEY=${awsKey}\ncomputeTotals orders taxRate amount\n`);
  writeFileSync(join(ws, 'src', 'keys.ts'), `${shared}const awsAccessKeyId = "${awsKey}";\n`);
  writeFileSync(join(ws, 'src', 'gen.ts'), `// @generated by a tool\n${shared}`);
  writeFileSync(join(ws, 'dist', 'bundle.js'), shared);
  writeFileSync(join(ws, 'node_modules', 'dep', 'index.js'), shared);
  writeFileSync(join(root, 'outside.ts'), `${shared}// outside the workspace\n`);
  symlinkSync(join(root, 'outside.ts'), join(ws, 'src', 'link.ts'));
  writeFileSync(join(ws, 'src', 'orders.ts'), `import { computeTotals } from './keys';\nexport const totals = computeTotals(orders, taxRate);\n`);

  it('secret files, secret lines, generated, vendored and linked files are left out of every source', async () => {
    const ctx = new RepositoryContext({ policy: datasetContextPolicy, files: workspaceContextFiles(ws, { useGit: false }), idle: { quietMs: 0 } });
    await ctx.indexWorkspace();
    ctx.openDocument('.env', `AWS_KEY=${awsKey}\n`); // opened in the editor: still refused
    ctx.viewDocument('.env', [{ start: 0, end: 2 }]);
    await ctx.settled();
    const text = 'const x = computeTotals(orders, taxRate);\nconst y = order.amount;\n';
    const snippets = ctx.candidates({ path: 'src/new.ts', text, offset: text.length, sources: CONTEXT_SOURCES });
    const paths = snippets.map((s) => s.path).sort();
    assert.ok(paths.includes('src/keys.ts'), `the scrubbed file still gives context: ${paths.join(', ')}`);
    for (const refused of ['.env', 'src/gen.ts', 'dist/bundle.js', 'node_modules/dep/index.js', 'src/link.ts'])
      assert.ok(!paths.includes(refused), `${refused} in ${paths.join(', ')}`);
    for (const s of snippets) assert.ok(!s.text.includes(awsKey), `a secret in ${s.path}`);
    const imports = ctx.candidates({ path: 'src/orders.ts', text: 'import { computeTotals } from "./keys";\n', offset: 0, sources: ['imports'] });
    assert.deepEqual(
      imports.map((s) => [s.path, s.text]),
      [['src/keys.ts', 'export function computeTotals(orders, taxRate) { … }']],
    );
    ctx.dispose();
  });
});

describe('an open document the fine-tune would refuse', () => {
  it('a document over the scan size bound is refused unscrubbed, and gives no snippet', async () => {
    const huge = codeLines(5, 40_000, 'huge').join('\n'); // ~3 MB, over the scan's 1 MiB
    assert.ok(huge.length > SCAN_DEFAULTS.maxFileBytes);
    assert.equal(datasetContextPolicy.admit('src/huge.ts', huge), undefined);
    const small = codeLines(5, 100, 'huge').join('\n');
    assert.ok(datasetContextPolicy.admit('src/small.ts', small) !== undefined, 'an ordinary document is admitted');
    const ctx = new RepositoryContext({ policy: datasetContextPolicy, idle: { quietMs: 0 } });
    ctx.openDocument('src/huge.ts', huge);
    ctx.changeDocument('src/huge.ts', huge, [{ startLine: 5, endLine: 5, insertedLines: 0 }]);
    ctx.viewDocument('src/huge.ts', [{ start: 0, end: 12 }]);
    await ctx.settled();
    const text = codeLines(5, 12, 'huge').join('\n');
    assert.deepEqual(ctx.candidates({ path: 'src/new.ts', text, offset: text.length, sources: CONTEXT_SOURCES }), []);
    ctx.dispose();
  });
});

describe('an open document the workspace rules refuse', () => {
  const ws = join(root, 'ws-open');
  mkdirSync(join(ws, 'src'), { recursive: true });
  mkdirSync(join(ws, 'private'), { recursive: true });
  mkdirSync(join(root, 'elsewhere'), { recursive: true });
  const body = (tag: string) => `export function computeTotals_${tag}(orders, taxRate) {\n  return orders.map((order) => order.amount * taxRate); // ${tag}\n}\n`;
  writeFileSync(join(ws, '.gitignore'), 'private/\n');
  writeFileSync(join(ws, 'private', 'notes.ts'), body('IGNORED'));
  writeFileSync(join(root, 'elsewhere', 'other.ts'), body('LINKED_FOLDER'));
  writeFileSync(join(root, 'elsewhere', 'file.ts'), body('LINKED_FILE'));
  symlinkSync(join(root, 'elsewhere'), join(ws, 'linked'));
  symlinkSync(join(root, 'elsewhere', 'file.ts'), join(ws, 'src', 'file-link.ts'));
  writeFileSync(join(ws, 'src', 'listed.ts'), body('LISTED'));
  it('an ignored file, a file through a linked folder and a linked file give no snippet when open; new and unsaved files still do', async () => {
    const ctx = new RepositoryContext({ policy: datasetContextPolicy, files: workspaceContextFiles(ws, { useGit: false }), idle: { quietMs: 0 } });
    await ctx.indexWorkspace();
    await ctx.settled();
    writeFileSync(join(ws, 'src', 'created.ts'), body('CREATED')); // saved after the scan
    const opened: [string, string][] = [
      ['private/notes.ts', 'IGNORED'],
      ['linked/other.ts', 'LINKED_FOLDER'],
      ['src/file-link.ts', 'LINKED_FILE'],
      ['src/created.ts', 'CREATED'],
      ['src/unsaved.ts', 'UNSAVED'],
      ['src/listed.ts', 'LISTED'],
    ];
    for (const [path, tag] of opened) ctx.openDocument(path, body(tag));
    await ctx.settled();
    for (const [path] of opened) {
      ctx.changeDocument(path, body(path), [{ startLine: 1, endLine: 1, insertedLines: 0 }]);
      ctx.viewDocument(path, [{ start: 0, end: 3 }]);
    }
    for (const [path, tag] of opened) ctx.changeDocument(path, body(tag), [{ startLine: 1, endLine: 1, insertedLines: 0 }]);
    await ctx.settled();
    const text = 'const x = computeTotals(orders, taxRate);\nconst y = order.amount * taxRate;\n';
    const found = ctx
      .candidates({ path: 'src/new.ts', text, offset: text.length, sources: CONTEXT_SOURCES })
      .map((s) => s.text)
      .join('\n');
    for (const tag of ['IGNORED', 'LINKED_FOLDER', 'LINKED_FILE']) assert.ok(!found.includes(tag), `the ${tag} document gave a snippet`);
    for (const tag of ['CREATED', 'UNSAVED', 'LISTED']) assert.ok(found.includes(tag), `the ${tag} document still gives snippets`);
    ctx.dispose();
  });

  it('the commands (kiln complete --workspace, kiln eval --workspace) judge an open document the same way', async () => {
    const cc = await commandContext(ws);
    cc.context.openDocument('private/notes.ts', 'export function computeTotals_IGNORED(orders, taxRate) {\n  return orders; // IGNORED\n}\n');
    cc.context.openDocument('src/unsaved.ts', 'export function computeTotals_UNSAVED(orders, taxRate) {\n  return orders; // UNSAVED\n}\n');
    await cc.context.settled();
    for (const path of ['private/notes.ts', 'src/unsaved.ts']) cc.context.viewDocument(path, [{ start: 0, end: 3 }]);
    const text = 'const x = computeTotals(orders, taxRate);\n';
    const found = cc.context
      .candidates({ path: 'src/new.ts', text, offset: text.length, sources: CONTEXT_SOURCES })
      .map((s) => s.text)
      .join('\n');
    assert.ok(!found.includes('IGNORED'), found);
    assert.ok(found.includes('UNSAVED'), found);
    cc.dispose();
  });
});

describe("the evaluation's near-duplicates", () => {
  const stems: [string, string][] = [
    ['src/a.ts', 'a'],
    ['lib/a.js', 'a'],
    ['dist/a.d.ts', 'a'],
    ['dist/esm/a.mjs', 'a'],
    ['src/util/a.ts', 'util/a'],
    ['node_modules/pkg/src/a.ts', 'pkg/a'], // a vendored copy: matched by its last segments
    ['pkg/mod.py', 'pkg/mod'],
    ['a.js.map', 'a'],
  ];
  for (const [path, stem] of stems) it(`${path} is module ${stem}`, () => assert.equal(moduleStem(path), stem));

  it('excludes compiled and declaration twins and same-content copies, and nothing else', () => {
    const d = new NearDuplicates();
    d.note('src/a.ts', 'export const a = 1;\n');
    d.note('vendor/copy-of-a.ts', 'export const a = 1;   \n\n');
    d.note('src/b.ts', 'export const b = 2;\n');
    for (const twin of ['lib/a.js', 'src/a.d.ts', 'dist/a.js', 'vendor/copy-of-a.ts', 'src/a.ts']) assert.ok(d.isNearDuplicate('src/a.ts', twin), twin);
    for (const other of ['src/b.ts', 'src/ab.ts', 'src/util/b.js']) assert.ok(!d.isNearDuplicate('src/a.ts', other), other);
  });
});

// The fine-tune's examples with the editor's context block: a drawn document's every example starts
// with the block (after BOS), in the repo-level format, holding what it imports and windows of
// other files — never of itself or a near-duplicate — with no loss on the block's tokens and every
// example within the sequence length; rate 0 builds exactly the examples of a dataset without context.
// The similar windows are chosen at each example's cursor: its block is the one the editor builds there.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildContextBlock } from '../../server/src/context/block';
import { RepositoryContext } from '../../server/src/context/repository-context';
import { buildDataset, type DatasetOptions } from '../../server/src/dataset/build-dataset';
import { type FimTemplate, resolveFimTemplate } from '../../server/src/model/fim';
import { Tokenizer } from '../../server/src/model/tokenizer';
import { tempDir } from '../helpers/tiny-session';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer';

const root = tempDir('kiln-ds-context-');
const ws = join(root, 'shop');
const tokDir = join(root, 'tok');
mkdirSync(tokDir);
writeTinyTokenizer(tokDir, { vocabSize: 512 });
const tokenizer = Tokenizer.load(tokDir);
const template = resolveFimTemplate(tokenizer) as FimTemplate;
after(() => rmSync(root, { recursive: true, force: true }));

const files: Record<string, string> = {
  'src/format.ts':
    'export function formatTotal(orders: Order[], currency: string): string {\n  const sum = orders.reduce((a, o) => a + o.amount, 0);\n  return sum.toFixed(2) + currency;\n}\n',
  'src/report.ts':
    "import { formatTotal } from './format';\n\nexport function report(orders: Order[]): string {\n  const sum = orders.reduce((a, o) => a + o.amount, 0);\n  return formatTotal(orders, 'EUR');\n}\n",
  'lib/report.js': "function report(orders) {\n  const sum = orders.reduce((a, o) => a + o.amount, 0);\n  return formatTotal(orders, 'EUR');\n}\n",
  'src/stock.ts': 'export function restock(items: Item[], limit: number): Item[] {\n  return items.filter((i) => i.count < limit);\n}\n',
};
for (const [path, text] of Object.entries(files)) {
  mkdirSync(join(ws, path, '..'), { recursive: true });
  writeFileSync(join(ws, path), text);
}

const build = (extra: Partial<DatasetOptions>) =>
  buildDataset(ws, tokenizer, template, { seqLen: 256, seed: 3, useGit: false, validationFraction: 0, keepExamples: true, ...extra });

describe('training examples with context', () => {
  it('start with the block of what the document imports and the windows like it, never itself or its twin, with no loss on the block', async () => {
    const ds = await build({ context: { sources: ['imports', 'edits', 'viewed', 'similar'], maxTokens: 512, rate: 1 } });
    assert.ok(ds.report.context.documents >= 1, JSON.stringify(ds.report.context));
    const report = ds.examples!.filter((e) => e.path === 'src/report.ts');
    assert.ok(report.length > 0);
    for (const e of report) {
      const text = tokenizer.decode(e.tokens);
      assert.ok(
        text.startsWith('<|repo_name|>shop\n<|file_sep|>src/format.ts\nexport function formatTotal(orders: Order[], currency: string): string { … }\n'),
        text.slice(0, 200),
      );
      assert.ok(!text.includes('<|file_sep|>lib/report.js'), 'the compiled twin never gives context');
      assert.ok(!text.slice(0, text.indexOf('<|file_sep|>src/report.ts\n')).includes("return formatTotal(orders, 'EUR')"), 'nor the document itself');
      const blockEnd = e.tokens.indexOf(template.prefixId);
      assert.ok(blockEnd > 0);
      assert.ok(
        e.loss.subarray(0, blockEnd).every((x) => x === 0),
        'the block is never a target',
      );
      assert.ok(e.tokens.length <= 256);
      assert.equal(tokenizer.decode(e.tokens.slice(0, blockEnd)).endsWith('<|file_sep|>src/report.ts\n'), true, 'the block names the document last');
    }
  });

  it('keeps every example within a short sequence by cutting the document into shorter pieces', async () => {
    const ds = await build({ seqLen: 64, context: { sources: ['imports', 'similar'], maxTokens: 512, rate: 1 } });
    for (const e of ds.examples!) assert.ok(e.tokens.length <= 64, `${e.path}: ${e.tokens.length}`);
    assert.ok(ds.report.context.meanTokens <= Math.floor(64 * 0.4), `the block takes at most 40% of a sequence: ${ds.report.context.meanTokens}`);
  });

  it('rate 0, or no sources, builds exactly the examples of a dataset without context', async () => {
    const plain = await build({});
    for (const context of [
      { sources: ['imports', 'similar'] as const, maxTokens: 512, rate: 0 },
      { sources: [] as const, maxTokens: 512, rate: 1 },
    ]) {
      const none = await build({ context: { ...context, sources: [...context.sources] } });
      assert.deepEqual(
        none.examples!.map((e) => e.tokens),
        plain.examples!.map((e) => e.tokens),
      );
      assert.equal(none.report.context.documents, 0);
    }
  });

  it('a held-out file never gives context to a training example (the evaluation after scores it)', async () => {
    let checked = 0;
    for (const fraction of [0.3, 0.5, 0.7]) {
      const ds = await build({ validationFraction: fraction, context: { sources: ['imports', 'similar'], maxTokens: 512, rate: 1 } });
      const heldOut = ds.validationFiles.map((f) => f.path);
      assert.ok(heldOut.length > 0 && heldOut.length < Object.keys(files).length);
      for (const e of ds.examples!.filter((x) => x.split === 'train')) {
        const text = tokenizer.decode(e.tokens);
        for (const path of heldOut) {
          checked++;
          assert.ok(!text.includes(`<|file_sep|>${path}\n`) || path === e.path, `training example of ${e.path} shows held-out ${path}`);
        }
      }
    }
    assert.ok(checked > 0);
  });

  it("chooses the similar windows at each example's cursor: the block is the one the editor builds there", async () => {
    const cursorWs = join(root, 'warehouse');
    const orders = (n: number) => `  ledger.invoice(customer${n % 3}, amount, currency);`;
    const stock = (n: number) => `  inventory.restock(pallet${n % 3}, quantity, warehouse);`;
    const docs: Record<string, string> = {
      // the first half speaks of orders, the second of stock: a cursor's lines before it name one or the other
      'src/mixed.ts': ['export function run() {', ...Array.from({ length: 30 }, (_, i) => orders(i)), ...Array.from({ length: 30 }, (_, i) => stock(i)), '}', ''].join('\n'),
      'src/billing.ts': ['export function bill() {', ...Array.from({ length: 8 }, (_, i) => orders(100 + i)), '}', ''].join('\n'),
      'src/shelves.ts': ['export function shelve() {', ...Array.from({ length: 8 }, (_, i) => stock(100 + i)), '}', ''].join('\n'),
    };
    for (const [path, text] of Object.entries(docs)) {
      mkdirSync(join(cursorWs, path, '..'), { recursive: true });
      writeFileSync(join(cursorWs, path), text);
    }
    const editor = new RepositoryContext({ policy: { admit: (_p, t) => t }, idle: { quietMs: 0 } });
    for (const [path, text] of Object.entries(docs)) editor.openDocument(path, text);
    await editor.settled();
    const seqLen = 4096; // the document is one piece: its prefix starts where the file does
    const maxTokens = Math.min(512, Math.floor(seqLen * 0.4));
    const text = docs['src/mixed.ts']!;
    const seen = new Set<string>();
    let compared = 0;
    try {
      for (let seed = 0; seed < 16; seed++) {
        const ds = await buildDataset(cursorWs, tokenizer, template, {
          seqLen,
          seed,
          useGit: false,
          validationFraction: 0,
          keepExamples: true,
          fimRate: 1,
          spmRate: 0,
          context: { sources: ['imports', 'similar'], maxTokens: 512, rate: 1 },
        });
        for (const e of ds.examples!.filter((x) => x.path === 'src/mixed.ts')) {
          // PSM: [block] <pre> prefix <suf> suffix <mid> middle: the cursor is where the prefix ends
          const pre = e.tokens.indexOf(template.prefixId);
          const prefix = tokenizer.decode(e.tokens.slice(pre + 1, e.tokens.indexOf(template.suffixId)));
          assert.equal(e.pieces, 1);
          assert.ok(text.startsWith(prefix));
          const candidates = editor.candidates({ path: 'src/mixed.ts', text, offset: prefix.length, sources: ['imports', 'similar'] });
          const expected = buildContextBlock({ candidates, currentPath: 'src/mixed.ts', repoName: 'warehouse', maxTokens, encode: (t) => tokenizer.encode(t), template }).tokens;
          assert.deepEqual(e.tokens.slice(0, pre), expected, `cursor at line ${prefix.split('\n').length - 1}`);
          const block = tokenizer.decode(e.tokens.slice(0, pre));
          seen.add(`${block.includes('src/billing.ts')}/${block.includes('src/shelves.ts')}`);
          compared++;
        }
      }
    } finally {
      editor.dispose();
    }
    assert.ok(compared >= 12, `${compared} examples compared`);
    // cursors among the orders see billing.ts only, among the stock shelves.ts only: the block follows the cursor
    assert.ok(seen.has('true/false') && seen.has('false/true'), [...seen].join(' '));
  });

  it("with repositories 'folders', each top-level folder is its own repository: snippets from its own folder only, named after it", async () => {
    const corpus = join(root, 'corpus');
    const pkg = (name: string, body: string) => {
      mkdirSync(join(corpus, name, 'src'), { recursive: true });
      writeFileSync(join(corpus, name, 'src/util.ts'), `export function ${body}(values: number[]): number {\n  return values.length;\n}\n`);
      writeFileSync(join(corpus, name, 'src/main.ts'), `import { ${body} } from './util';\n\nexport const size = ${body}([1, 2, 3]);\n`);
    };
    pkg('alpha', 'countAlpha');
    pkg('beta', 'countBeta');
    const options = { seqLen: 256, seed: 3, useGit: false, validationFraction: 0, keepExamples: true };
    const ds = await buildDataset(corpus, tokenizer, template, { ...options, context: { sources: ['imports', 'similar'], maxTokens: 512, rate: 1, repositories: 'folders' } });
    const shared = await buildDataset(corpus, tokenizer, template, { ...options, context: { sources: ['imports', 'similar'], maxTokens: 512, rate: 1 } });
    let seen = 0;
    for (const e of ds.examples!) {
      const text = tokenizer.decode(e.tokens);
      const own = e.path.split('/')[0]!;
      const other = own === 'alpha' ? 'beta' : 'alpha';
      // util.ts imports nothing and its cursors' few lines before find no window alike: no block
      if (e.path.endsWith('main.ts') || text.startsWith('<|repo_name|>')) assert.ok(text.startsWith(`<|repo_name|>${own}\n`), text.slice(0, 80));
      assert.ok(!text.includes(`<|file_sep|>${other}/`), `${e.path} shows a file of ${other}`);
      if (e.path.endsWith('main.ts')) {
        assert.ok(text.includes(`<|file_sep|>${own}/src/util.ts\n`), 'the import of its own package');
        seen++;
      }
    }
    assert.equal(seen > 0, true);
    // one repository over both folders: the block is named after the root and may cross them
    const names = new Set(shared.examples!.map((e) => tokenizer.decode(e.tokens).split('\n')[0]));
    assert.deepEqual(
      [...names].filter((n) => n?.startsWith('<|repo_name|>')),
      ['<|repo_name|>corpus'],
    );
  });
});

// Repository context through the real server: a workspace folder's files give the prompt a context
// block (imports and similar windows, read through the dataset's rules), and the prompt the server
// builds for an open document equals the one `kiln complete --workspace` builds for the same file
// and position; edits and views in another document then add their snippets, and the block never
// carries a secret line.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ensureBuilt, runKiln } from '../helpers/built-cli';
import { KilnClient } from '../helpers/lsp-client';
import { TEST_SETTINGS, writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-lsp-context-');
const modelDir = join(root, 'model');
const cacheDir = join(root, 'cache');
const ws = join(root, 'shop');
const awsKey = `AKIA${'ABCDEFGH'.repeat(2).slice(0, 15)}7`;
const files: Record<string, string> = {
  'src/format.ts':
    'export function formatTotal(orders: Order[], currency: string): string {\n  const sum = orders.reduce((a, o) => a + o.amount, 0);\n  return sum.toFixed(2) + currency;\n}\n',
  'src/orders.ts': `export interface Order {\n  id: string;\n  amount: number;\n}\nexport const accessKeyId = "${awsKey}";\nexport function totalOf(orders: Order[]): number {\n  return orders.reduce((a, o) => a + o.amount, 0);\n}\n`,
  'src/report.ts':
    "import { formatTotal } from './format';\nimport type { Order } from './orders';\n\nexport function report(orders: Order[]): string {\n  const sum = orders.reduce((a, o) => a + o.amount, 0);\n  return formatTotal(orders, 'EUR');\n}\n",
};
let client: KilnClient;

before(async () => {
  ensureBuilt();
  writeTinyCodeModel(modelDir, { maxPositions: 1024 });
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(ws, path, '..'), { recursive: true });
    writeFileSync(join(ws, path), text);
  }
  client = await KilnClient.start({ settings: { ...TEST_SETTINGS, modelPath: modelDir }, initializationOptions: { cacheDir }, rootUri: pathToFileURL(ws).href });
  assert.equal(client.statuses.items.at(-1)?.state, 'ready', client.stderr);
});
after(async () => {
  await client?.dispose();
  rmSync(root, { recursive: true, force: true });
});

describe('repository context over LSP', () => {
  const uri = pathToFileURL(join(ws, 'src/report.ts')).href;
  const at = { line: 5, character: 9 }; // after "  return "

  it('builds the prompt `kiln complete --workspace` builds for the same file and position', async () => {
    await client.open(uri, files['src/report.ts']!);
    const served = await client.prompt(uri, at);
    assert.ok(served.snippets.length > 0, 'the workspace gave context');
    assert.ok(
      served.snippets.some((s) => s.source === 'imports' && s.filename === 'src/format.ts'),
      JSON.stringify(served.snippets.map((s) => [s.source, s.filename])),
    );
    const r = await runKiln(
      'complete',
      join(ws, 'src/report.ts'),
      '--line',
      String(at.line + 1),
      '--col',
      String(at.character + 1),
      '--model',
      modelDir,
      '--json',
      '--ep',
      'cpu',
      '--threads',
      '1',
      '--cache',
      cacheDir,
      '--workspace',
      ws,
    );
    assert.equal(r.code, 0, r.stderr);
    const cli = JSON.parse(r.stdout) as { prompt: { tokens: number[]; snippets: unknown[] } };
    assert.deepEqual(cli.prompt.snippets, served.snippets);
    assert.deepEqual(cli.prompt.tokens, served.tokens);
    const bare = await runKiln(
      'complete',
      join(ws, 'src/report.ts'),
      '--line',
      String(at.line + 1),
      '--col',
      String(at.character + 1),
      '--model',
      modelDir,
      '--json',
      '--ep',
      'cpu',
      '--threads',
      '1',
      '--cache',
      cacheDir,
    );
    assert.equal(bare.code, 0, bare.stderr);
    assert.ok((JSON.parse(bare.stdout) as { prompt: { tokens: number[] } }).prompt.tokens.length < served.tokens.length, 'without --workspace there is no block');
    for (const s of served.snippets) assert.ok(!s.text.includes(awsKey), `a secret in ${s.filename}`);
  });

  it('adds edits and views of other open documents, never a secret line of them', async () => {
    const other = pathToFileURL(join(ws, 'src/orders.ts')).href;
    await client.open(other, files['src/orders.ts']!);
    await client.insert(other, files['src/orders.ts']!.indexOf('}\nexport const'), '  currency: string;\n');
    await client.showRanges(other, [{ start: 0, end: 9 }]);
    const served = await client.prompt(uri, at);
    const sources = new Set(served.snippets.map((s) => s.source));
    assert.ok(sources.has('edits'), JSON.stringify(served.snippets.map((s) => [s.source, s.filename])));
    assert.ok(
      served.snippets.some((s) => s.text.includes('currency: string;')),
      'the edit is in the block',
    );
    for (const s of served.snippets) assert.ok(!s.text.includes(awsKey), `a secret in ${s.filename}`);
  });
});

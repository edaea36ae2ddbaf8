// `kiln eval --workspace` draws context from the rest of the workspace only: never the scored
// file, its compiled or declaration twins, or a copy of it elsewhere — while an unrelated file with
// the same names still gives context.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { workspaceEvalContext } from '../../server/src/commands/eval-context';
import { CONTEXT_SOURCES } from '../../server/src/context/snippet';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-eval-context-');
after(() => rmSync(root, { recursive: true, force: true }));

it('never takes a snippet from the scored file or a near-duplicate of it', async () => {
  const scored =
    'export function mergeRanges(ranges: Range[], gap: number): Range[] {\n  const sorted = ranges.sort((a, b) => a.start - b.start);\n  return sorted.filter((r) => r.end - r.start > gap);\n}\n';
  const files: Record<string, string> = {
    'src/ranges.ts': scored,
    'lib/ranges.js': 'function mergeRanges(ranges, gap) {\n  const sorted = ranges.sort((a, b) => a.start - b.start);\n  return sorted.filter((r) => r.end - r.start > gap);\n}\n',
    'types/ranges.d.ts': 'export declare function mergeRanges(ranges: Range[], gap: number): Range[];\n',
    'copies/merge-copy.ts': `${scored}\n`,
    'src/spans.ts':
      'export function widen(ranges: Range[], gap: number): Range[] {\n  const sorted = ranges.sort((a, b) => a.start - b.start);\n  return sorted.map((r) => ({ start: r.start - gap, end: r.end + gap }));\n}\n',
  };
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  const evalFiles = [{ path: 'ranges.ts', text: scored }];
  const workspace = await workspaceEvalContext({ root, dir: join(root, 'src'), files: evalFiles, sources: CONTEXT_SOURCES });
  try {
    const text = `${scored.split('\n').slice(0, 2).join('\n')}\n  return `;
    const found = workspace.context.supplier.contextFor({ uri: workspace.context.uriOf('ranges.ts'), text, offset: text.length, sources: CONTEXT_SOURCES });
    const paths = found?.candidates.map((s) => s.path) ?? [];
    assert.equal(found?.path, 'src/ranges.ts');
    assert.deepEqual(paths, ['src/spans.ts'], 'only the unrelated file');
  } finally {
    workspace.dispose();
  }
});

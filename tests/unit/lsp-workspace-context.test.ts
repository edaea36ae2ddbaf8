// The language server's side of repository context: a didChange that replaces the whole text (no
// range: the client's full sync) makes the document's admitted lines unrelated to the live text,
// so none of its snippets may come from them until it is admitted again.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { WorkspaceContext } from '../../server/src/lsp/workspace-context';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-lsp-context-');
after(() => rmSync(root, { recursive: true, force: true }));

describe('WorkspaceContext', () => {
  it('after a whole-text change, no snippet holds the cursor line (its old place is far from the cursor)', async () => {
    const ws = join(root, 'ws');
    mkdirSync(join(ws, 'src'), { recursive: true });
    const wc = new WorkspaceContext();
    wc.start(pathToFileURL(ws).href, () => {});
    const uri = pathToFileURL(join(ws, 'src', 'm.ts')).href;
    const lines = Array.from({ length: 150 }, (_, i) => `  const line_${i} = compute(items, limit);`);
    wc.opened(uri, lines.join('\n'));
    await wc.settled();
    wc.changed(uri, lines.join('\n'), [{ range: { start: { line: 100, character: 0 }, end: { line: 100, character: 0 } }, text: '' }]);
    await wc.settled();
    // the whole text replaced: 60 lines inserted at the top, all in one full-sync change
    const moved = [...Array.from({ length: 60 }, (_, i) => `  const added_${i} = other(value);`), ...lines];
    const text = moved.join('\n');
    wc.changed(uri, text, [{ text }]);
    const cursorLine = 160; // line_100's new place
    const offset = moved.slice(0, cursorLine).join('\n').length + 1;
    const found = wc.supplier.contextFor({ uri, text, offset, sources: ['edits', 'viewed', 'similar', 'imports'] });
    assert.ok(found !== undefined, 'the document is in the workspace');
    for (const s of found.candidates) assert.ok(!s.text.split('\n').includes(moved[cursorLine]!), `${s.source} ${s.startLine}-${s.endLine} holds the cursor line`);
    wc.dispose();
  });
});

// kiln/cursor on the server: a valid cursor in an open document pre-warms there (the engine is told
// the document text and the offset of the position); bad params are logged and dropped, and closed
// documents, binary text and a server with no model yet warm nothing.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { TextDocument } from 'vscode-languageserver-textdocument';
import type { CursorPlace } from '../../server/src/completion/engine';
import { handleCursor } from '../../server/src/lsp/cursor-handler';

it('pre-warms at a reported cursor of an open document, and ignores what it cannot use', async () => {
  const doc = TextDocument.create('file:///a.ts', 'typescript', 1, 'const a = 1;\nconst b = ');
  const binary = TextDocument.create('file:///b.bin', 'plaintext', 1, 'x\u0000y');
  const warmed: CursorPlace[] = [];
  const engine = {
    prewarm: async (p: CursorPlace) => {
      warmed.push(p);
      return { computed: 1, reused: 0, preempted: false };
    },
  };
  const logs: string[] = [];
  const deps = {
    documents: { get: (uri: string) => [doc, binary].find((d) => d.uri === uri) },
    host: { engine: engine as never },
    log: (m: string) => logs.push(m),
  };
  const at = (uri: string, line: number, character: number) => ({ textDocument: { uri }, position: { line, character }, reason: 'move' });
  assert.deepEqual(await handleCursor(at('file:///a.ts', 1, 10), deps), { computed: 1, reused: 0, preempted: false });
  assert.deepEqual(warmed, [{ uri: 'file:///a.ts', text: doc.getText(), offset: doc.getText().length }]);
  for (const ignored of [at('file:///closed.ts', 0, 0), at('file:///a.ts', 5, 0), at('file:///b.bin', 0, 1)]) assert.equal(await handleCursor(ignored, deps), undefined);
  assert.equal(await handleCursor({ ...at('file:///a.ts', 0, 0), reason: 'typed' }, deps), undefined);
  assert.match(logs.join('\n'), /kiln\/cursor ignored: reason must be/);
  assert.equal(await handleCursor(at('file:///a.ts', 0, 0), { ...deps, host: { engine: undefined } }), undefined, 'no model loaded');
  assert.equal(warmed.length, 1);
});

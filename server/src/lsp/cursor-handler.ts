// kiln/cursor: the client says where the user is (a focused document, a cursor moved and left still).
// The server decides: with a model loaded and the document open, it pre-warms the prompt at that
// cursor (completion/prewarm.ts). A notification has no answer, so bad params are logged and dropped.
import type { ResponseError } from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import type { WarmOutcome } from '../completion/prewarm';
import { looksBinary } from './inline-completion';
import type { ModelHost } from './model-host';
import { parseCursorParams } from './params';

export interface CursorDeps {
  documents: { get(uri: string): TextDocument | undefined };
  host: Pick<ModelHost, 'engine'>;
  log: (message: string) => void;
}

/** Starts a pre-warm at the reported cursor; resolves to what it did, or undefined when nothing was warmed. */
export function handleCursor(raw: unknown, deps: CursorDeps): Promise<WarmOutcome | undefined> {
  let params: ReturnType<typeof parseCursorParams>;
  try {
    params = parseCursorParams(raw);
  } catch (err) {
    deps.log(`kiln/cursor ignored: ${(err as ResponseError<void>).message}`);
    return Promise.resolve(undefined);
  }
  const doc = deps.documents.get(params.textDocument.uri);
  const engine = deps.host.engine;
  // a document closed since, or no model yet: nothing to warm
  if (!doc || !engine || params.position.line >= doc.lineCount) return Promise.resolve(undefined);
  const text = doc.getText();
  const offset = doc.offsetAt(params.position);
  if (looksBinary(text, offset)) return Promise.resolve(undefined);
  return engine.prewarm({ uri: doc.uri, text, offset });
}

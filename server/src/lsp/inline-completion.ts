// textDocument/inlineCompletion: the LSP face of the completion engine.
import { type CancellationToken, type InlineCompletionList, ErrorCodes, LSPErrorCodes, ResponseError } from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import { CancelledError } from '../completion/scheduler';
import type { ModelHost } from './model-host';
import { parseInlineCompletionParams } from './params';

/** A NUL near the cursor means a binary file: no suggestion, no model work. */
const BINARY_PROBE_CHARS = 8192;

export function looksBinary(text: string, offset: number): boolean {
  return text.slice(Math.max(0, offset - BINARY_PROBE_CHARS), offset + BINARY_PROBE_CHARS).includes('\u0000');
}

export async function handleInlineCompletion(
  rawParams: unknown,
  token: CancellationToken,
  documents: { get(uri: string): TextDocument | undefined },
  host: Pick<ModelHost, 'engine'>,
): Promise<InlineCompletionList> {
  const params = parseInlineCompletionParams(rawParams);
  const doc = documents.get(params.uri);
  if (!doc) throw new ResponseError(ErrorCodes.InvalidParams, `Kiln has no open document ${params.uri}`);
  const { line, character } = params.position;
  if (line >= doc.lineCount) {
    throw new ResponseError(ErrorCodes.InvalidParams, `position ${line}:${character} is outside ${params.uri} (${doc.lineCount} lines)`);
  }
  // No engine while the model starts or loads, or after a failed load: kiln/status says why (and a
  // failure was shown once); an error per keystroke would only repeat it.
  const engine = host.engine;
  if (!engine) return { items: [] };
  const text = doc.getText();
  const offset = doc.offsetAt(params.position);
  if (looksBinary(text, offset)) return { items: [] };
  // Cancelled before it was dispatched: the token's listeners would only fire on a later tick.
  if (token.isCancellationRequested) return { items: [] };
  const abort = new AbortController();
  const sub = token.onCancellationRequested(() => abort.abort(new CancelledError()));
  try {
    const answer = await engine.complete({ uri: doc.uri, text, offset, explicit: params.explicit, signal: abort.signal });
    const at = { start: params.position, end: params.position };
    return { items: answer.items.map((insertText) => ({ insertText, range: at })) };
  } catch (err) {
    if (err instanceof CancelledError) return { items: [] }; // superseded, cancelled, or the model swapped mid-request
    throw new ResponseError(LSPErrorCodes.RequestFailed, `Kiln completion failed: ${(err as Error).message}`);
  } finally {
    sub.dispose();
  }
}

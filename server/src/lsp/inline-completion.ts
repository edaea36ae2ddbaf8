// textDocument/inlineCompletion: the LSP face of the completion engine.
import { type CancellationToken, type InlineCompletionList, type InlineCompletionParams, ErrorCodes, LSPErrorCodes, ResponseError } from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import { CancelledError, SupersededError } from '../completion/inference-loop';
import type { ModelHost } from './model-host';

/** A NUL near the cursor means a binary file: no suggestion, no model work. */
const BINARY_PROBE_CHARS = 8192;

export function looksBinary(text: string, offset: number): boolean {
  return text.slice(Math.max(0, offset - BINARY_PROBE_CHARS), offset + BINARY_PROBE_CHARS).includes('\u0000');
}

export async function handleInlineCompletion(
  params: InlineCompletionParams,
  token: CancellationToken,
  documents: { get(uri: string): TextDocument | undefined },
  host: ModelHost,
): Promise<InlineCompletionList> {
  const doc = documents.get(params.textDocument.uri);
  if (!doc) throw new ResponseError(ErrorCodes.InvalidParams, `Kiln has no open document ${params.textDocument.uri}`);
  const { line, character } = params.position;
  if (line < 0 || character < 0 || line >= doc.lineCount) {
    throw new ResponseError(ErrorCodes.InvalidParams, `position ${line}:${character} is outside ${params.textDocument.uri} (${doc.lineCount} lines)`);
  }
  const engine = host.engine;
  if (!engine) {
    const status = host.serverStatus;
    throw new ResponseError(LSPErrorCodes.RequestFailed, status.message ?? `the model is ${status.state}`);
  }
  const text = doc.getText();
  const offset = doc.offsetAt(params.position);
  if (looksBinary(text, offset)) return { items: [] };
  // Cancelled before it was dispatched: the token's listeners would only fire on a later tick.
  if (token.isCancellationRequested) return { items: [] };
  const abort = new AbortController();
  const sub = token.onCancellationRequested(() => abort.abort(new CancelledError()));
  try {
    const answer = await engine.complete({ uri: doc.uri, text, offset, explicit: params.context.triggerKind === 1, signal: abort.signal });
    const at = { start: params.position, end: params.position };
    return { items: answer.items.map((insertText) => ({ insertText, range: at })) };
  } catch (err) {
    if (err instanceof SupersededError || err instanceof CancelledError) return { items: [] };
    throw new ResponseError(LSPErrorCodes.RequestFailed, `Kiln completion failed: ${(err as Error).message}`);
  } finally {
    sub.dispose();
  }
}

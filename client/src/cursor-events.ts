// Reports the user's cursor to the server (kiln/cursor) when a document becomes the active editor
// and when its cursor moves and stays still, so the server can pre-warm the prompt there before the
// first keystroke. Only documents Kiln completes in, only a plain cursor (no selection).
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { KilnCursorNotification, type CursorReason } from '../../server/src/protocol';
import { CursorReporter } from './cursor-reporter';
import { enabledForLanguage, type EnableMap } from './enablement';
import type { KilnSettings } from './kiln-settings';

/** The schemes of the client's document selector: the server has no other documents. */
const SCHEMES = new Set(['file', 'untitled']);

export interface CursorEventDeps {
  client: () => LanguageClient | undefined;
  isEnabled: () => boolean;
  settings: KilnSettings;
}

/** The listeners, and `refresh` to report the active editor's cursor again (a server that just started has none). */
export interface CursorEvents extends vscode.Disposable {
  refresh(): void;
}

export function registerCursorEvents(deps: CursorEventDeps): CursorEvents {
  const reporter = new CursorReporter((place) => {
    const client = deps.client();
    if (!client?.isRunning()) return;
    void client.sendNotification(KilnCursorNotification.type, {
      textDocument: { uri: place.uri },
      position: { line: place.line, character: place.character },
      reason: place.reason,
    });
  });
  const report = (editor: vscode.TextEditor | undefined, reason: CursorReason) => {
    if (!editor || !wanted(editor, deps)) return reporter.cancel();
    const at = editor.selection.active;
    reporter.moved({ uri: editor.document.uri.toString(), line: at.line, character: at.character, reason });
  };
  const listeners = vscode.Disposable.from(
    reporter,
    vscode.window.onDidChangeActiveTextEditor((editor) => report(editor, 'focus')),
    vscode.window.onDidChangeTextEditorSelection((e) => report(e.textEditor, 'move')),
    vscode.workspace.onDidChangeTextDocument((e) => reporter.forget(e.document.uri.toString())),
  );
  return {
    refresh: () => {
      const editor = vscode.window.activeTextEditor;
      if (editor) reporter.forget(editor.document.uri.toString());
      report(editor, 'focus');
    },
    dispose: () => listeners.dispose(),
  };
}

function wanted(editor: vscode.TextEditor, deps: CursorEventDeps): boolean {
  const { document, selections } = editor;
  if (!SCHEMES.has(document.uri.scheme) || selections.length !== 1 || !selections[0]!.isEmpty) return false;
  return deps.isEnabled() && enabledForLanguage(deps.settings.get<EnableMap>('enable'), document.languageId);
}

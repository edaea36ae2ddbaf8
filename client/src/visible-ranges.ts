// Tells the server which lines of which documents the editors show (kiln/visibleRanges), the
// "recently viewed" context source: on scroll and on switching editors, at most every 200 ms per
// document, file documents only.
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { KilnVisibleRangesNotification } from '../../server/src/protocol';

const THROTTLE_MS = 200;

export function reportVisibleRanges(client: () => LanguageClient | undefined): vscode.Disposable {
  const pending = new Map<string, NodeJS.Timeout>();
  const send = (editor: vscode.TextEditor | undefined) => {
    if (editor === undefined || editor.document.uri.scheme !== 'file') return;
    const uri = editor.document.uri.toString();
    clearTimeout(pending.get(uri));
    pending.set(
      uri,
      setTimeout(() => {
        pending.delete(uri);
        const c = client();
        if (!c?.isRunning()) return;
        const ranges = editor.visibleRanges.map((r) => ({ start: r.start.line, end: r.end.line + 1 }));
        void c.sendNotification(KilnVisibleRangesNotification.type, { uri, ranges });
      }, THROTTLE_MS),
    );
  };
  const subscriptions = [vscode.window.onDidChangeTextEditorVisibleRanges((e) => send(e.textEditor)), vscode.window.onDidChangeActiveTextEditor((e) => send(e))];
  return {
    dispose: () => {
      for (const t of pending.values()) clearTimeout(t);
      for (const s of subscriptions) s.dispose();
    },
  };
}

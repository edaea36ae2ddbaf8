// Runs inside a desktop VS Code's extension host, started by electron-runner.ts (@vscode/test-electron):
// Kiln activates, registers its commands, answers an inline suggestion that, accepted, leaves the
// document as `kiln complete` predicts, and its toggle, stats and restart commands run.
import assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { waitUntil } from '../helpers/wait';

const COMMANDS = [
  'kiln.fineTune',
  'kiln.selectModel',
  'kiln.setHubToken',
  'kiln.setBackendApiKey',
  'kiln.showStats',
  'kiln.showTrainingData',
  'kiln.restartServer',
  'kiln.toggleInlineCompletions',
];

function env(name: string): string {
  const value = process.env[name];
  assert.ok(value !== undefined, `${name} is set by electron-runner.ts`);
  return value;
}

/** Asks for a suggestion and accepts it until the document changes (the server may still be loading). */
async function acceptSuggestion(editor: vscode.TextEditor): Promise<string> {
  const before = editor.document.getText();
  return waitUntil(
    'an inline suggestion to be accepted',
    async () => {
      await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
      await new Promise((r) => setTimeout(r, 500));
      await vscode.commands.executeCommand('editor.action.inlineSuggest.commit');
      return editor.document.getText();
    },
    (text) => text !== before,
    90_000,
  );
}

export async function run(): Promise<void> {
  const extension = vscode.extensions.getExtension('kiln-dev.kiln');
  assert.ok(extension, 'Kiln is loaded as the extension under development');
  await extension.activate();
  const registered = await vscode.commands.getCommands(true);
  for (const command of COMMANDS) assert.ok(registered.includes(command), `${command} is registered`);

  const editor = await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(env('KILN_E2E_FILE')));
  const end = editor.document.lineAt(editor.document.lineCount - 1).range.end;
  editor.selection = new vscode.Selection(end, end);
  await vscode.commands.executeCommand('type', { text: env('KILN_E2E_TYPED') });
  // kiln.candidates is 1, so an explicit trigger answers what the automatic one and the CLI do.
  assert.equal(await acceptSuggestion(editor), env('KILN_E2E_EXPECTED'));

  await vscode.commands.executeCommand('kiln.toggleInlineCompletions');
  await vscode.commands.executeCommand('kiln.toggleInlineCompletions');
  await vscode.commands.executeCommand('kiln.showStats');
  await vscode.commands.executeCommand('kiln.restartServer');
}

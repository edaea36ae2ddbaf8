// "Kiln: Show What Will Be Trained": asks the server for the dataset a fine-tune of a workspace
// folder would build (kiln/trainingDataPreview), shows the dry-run report in a read-only editor and
// offers the dump of every example's decoded text. Other commands may run it first with a folder
// (`executeCommand('kiln.showTrainingData', folderUri)`); it then resolves to true once shown.
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { KilnTrainingDataPreviewRequest, type TrainingDataPreviewResult } from '../../server/src/protocol';
import { refuseInRestrictedMode } from './workspace-trust';

export interface ShowTrainingDataDeps {
  client: () => LanguageClient | undefined;
  output: vscode.OutputChannel;
  /** The extension's storage: the dump is written under it. */
  storageUri: vscode.Uri;
}

/** Reports are shown read-only through this scheme, one document per request (a fresh path each time, so none is stale). */
const SCHEME = 'kiln-training-data';
const reports = new Map<string, string>();
let shown = 0;

async function pickFolder(given: vscode.Uri | undefined): Promise<vscode.WorkspaceFolder | undefined> {
  if (given) return vscode.workspace.getWorkspaceFolder(given);
  const folders = vscode.workspace.workspaceFolders ?? [];
  if (folders.length <= 1) return folders[0];
  return vscode.window.showWorkspaceFolderPick({ placeHolder: 'Show the training data of which folder?' });
}

const size = (bytes: number) => (bytes < 2 ** 20 ? `${Math.max(1, Math.round(bytes / 1024))} KB` : `${(bytes / 2 ** 20).toFixed(1)} MB`);

async function showReport(folder: vscode.WorkspaceFolder, result: TrainingDataPreviewResult): Promise<void> {
  const path = `/${folder.name} — what will be trained (${++shown}).txt`;
  reports.set(path, result.report);
  const doc = await vscode.workspace.openTextDocument(vscode.Uri.from({ scheme: SCHEME, path }));
  await vscode.window.showTextDocument(doc, { preview: false });
}

export async function showTrainingData(deps: ShowTrainingDataDeps, folderUri?: vscode.Uri): Promise<boolean> {
  if (refuseInRestrictedMode('showing what would be trained')) return false;
  const client = deps.client();
  if (!client?.isRunning()) {
    void vscode.window.showErrorMessage('Kiln’s server is not running; restart it and try again.');
    return false;
  }
  const folder = await pickFolder(folderUri);
  if (!folder) {
    void vscode.window.showWarningMessage('Kiln: open a folder to see what would be trained on it.');
    return false;
  }
  const maxFiles = vscode.workspace.getConfiguration('kiln.fineTune', folder.uri).get<number>('maxFiles');
  const storageDir = deps.storageUri.fsPath; // the server writes training-data/<folder key>.txt under it
  let result: TrainingDataPreviewResult;
  let cancelled = false;
  try {
    result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Kiln: reading what would be trained on ${folder.name}…`, cancellable: true },
      (_progress, token) => {
        token.onCancellationRequested(() => (cancelled = true));
        return client.sendRequest(KilnTrainingDataPreviewRequest.type, { workspace: folder.uri.fsPath, storageDir, ...(maxFiles === undefined ? {} : { maxFiles }) }, token);
      },
    );
  } catch (err) {
    if (!cancelled) void vscode.window.showErrorMessage(`Kiln: ${(err as Error).message}`);
    return false;
  }
  deps.output.appendLine(`training data: ${result.examples} examples from ${result.trainFiles} train and ${result.validationFiles} validation files; dump at ${result.dumpPath}`);
  await showReport(folder, result);
  const open = 'Open Training Data';
  void vscode.window
    .showInformationMessage(`Kiln: ${result.examples} examples from ${result.trainFiles + result.validationFiles} files (${size(result.dumpBytes)} of text).`, open)
    .then(async (choice) => {
      if (choice !== open) return;
      const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(result.dumpPath));
      await vscode.window.showTextDocument(doc, { preview: false });
    });
  return true;
}

/** The command and the read-only report documents, disposed together. */
export function registerShowTrainingData(deps: ShowTrainingDataDeps): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.workspace.registerTextDocumentContentProvider(SCHEME, { provideTextDocumentContent: (uri) => reports.get(uri.path) ?? '' }),
    vscode.commands.registerCommand('kiln.showTrainingData', (folderUri?: unknown) => showTrainingData(deps, folderUri instanceof vscode.Uri ? folderUri : undefined)),
  );
}

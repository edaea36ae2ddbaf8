// "Fine-tune on This Repository" with a remote backend: completions come from another machine, so
// the fine-tune is offered as an export for a cluster instead. The user picks a folder; the server
// (kiln/exportDataset, the code of `kiln finetune --export-dataset`) writes the scrubbed, FIM-made
// examples and their manifest there; the output channel gets the torchrun command that trains a
// LoRA adapter on them with recipes/train_lora.py. No Python runs here.
import { readdirSync } from 'node:fs';
import * as vscode from 'vscode';
import { type ExportDatasetResult, KilnExportDatasetRequest } from '../../server/src/protocol';
import type { CommandDeps } from './commands';

const REPLACE = 'Replace Its Contents';
const SHOW = 'Show Details';
const OPEN_MANIFEST = 'Open Manifest';

/** The backend `kiln.backend.kind` names (`local` when unset). */
export function backendKind(deps: CommandDeps): string {
  return deps.settings.get<string>('backend.kind') ?? 'local';
}

/** Asks where to export; undefined when the user backs out. `overwrite` when they agreed to replace a non-empty folder. */
async function pickTarget(folder: vscode.WorkspaceFolder): Promise<{ out: string; overwrite: boolean } | undefined> {
  const picked = await vscode.window.showOpenDialog({
    canSelectFolders: true,
    canSelectFiles: false,
    canSelectMany: false,
    openLabel: 'Export Here',
    title: `Kiln: a folder for ${folder.name}'s training data (outside the repository)`,
  });
  const out = picked?.[0]?.fsPath;
  if (!out) return undefined;
  let entries: string[] = [];
  try {
    entries = readdirSync(out);
  } catch {
    // gone meanwhile: the server creates it
  }
  if (entries.length === 0) return { out, overwrite: false };
  const choice = await vscode.window.showWarningMessage(`Kiln: ${out} is not empty. Replace its contents with the export?`, { modal: true }, REPLACE);
  return choice === REPLACE ? { out, overwrite: true } : undefined;
}

export async function exportTrainingData(deps: CommandDeps, folder: vscode.WorkspaceFolder): Promise<void> {
  const client = deps.client();
  if (!client?.isRunning()) {
    void vscode.window.showErrorMessage('Kiln’s server is not running; restart it and try again.');
    return;
  }
  const target = await pickTarget(folder);
  if (!target) return;
  const maxFiles = deps.settings.get<number>('fineTune.maxFiles');
  let result: ExportDatasetResult;
  let cancelled = false;
  try {
    result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Kiln: exporting ${folder.name}'s training data…`, cancellable: true },
      (_progress, token) => {
        token.onCancellationRequested(() => (cancelled = true));
        return client.sendRequest(
          KilnExportDatasetRequest.type,
          { workspace: folder.uri.fsPath, out: target.out, overwrite: target.overwrite, ...(maxFiles === undefined ? {} : { maxFiles }) },
          token,
        );
      },
    );
  } catch (err) {
    if (!cancelled) void vscode.window.showErrorMessage(`Kiln: ${(err as Error).message}`);
    return;
  }
  for (const line of result.summary.split('\n')) deps.output.appendLine(`export: ${line}`);
  const examples = result.trainExamples + result.validationExamples;
  const choice = await vscode.window.showInformationMessage(
    `Kiln: exported ${examples} examples from ${result.trainFiles + result.validationFiles} files. Train on them with recipes/train_lora.py (see details).`,
    SHOW,
    OPEN_MANIFEST,
  );
  if (choice === SHOW) deps.output.show(true);
  if (choice === OPEN_MANIFEST) await vscode.window.showTextDocument(vscode.Uri.joinPath(vscode.Uri.file(result.out), 'manifest.json'), { preview: false });
}

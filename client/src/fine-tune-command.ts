// "Kiln: Fine-tune on This Repository": offers to show what will be trained, then a cancellable
// progress notification over the server's kiln/fineTune request; at the end it reports the
// headline gain, remembers the result in the workspace's storage and switches completions to it.
// With a remote backend (`kiln.backend.kind` other than local) it offers to export the training data
// for a cluster instead (export-dataset-command.ts). Unavailable in Restricted Mode: training reads
// the whole repository.
import * as vscode from 'vscode';
import { KilnFineTuneRequest, KilnTrainingProgressNotification } from '../../server/src/protocol';
import type { CommandDeps } from './commands';
import { backendKind, exportTrainingData } from './export-dataset-command';
import { fineTuneLength, finishedText, gainText, progressText } from './fine-tune-text';
import { levelOf } from './setting-scopes';
import { refuseInRestrictedMode } from './workspace-trust';

async function pickWorkspace(): Promise<vscode.WorkspaceFolder | undefined> {
  const folders = vscode.workspace.workspaceFolders ?? [];
  if (folders.length <= 1) return folders[0];
  return vscode.window.showWorkspaceFolderPick({ placeHolder: 'Fine-tune on which folder?' });
}

const START = 'Start';
const SHOW = 'Show What Will Be Trained';
const SHOW_TRAINING_DATA = 'kiln.showTrainingData';
const EXPORT = 'Export Training Data';
const HERE = 'Fine-tune Here';

/** With a remote backend: export for a cluster, fine-tune here anyway, or nothing (dismissed). */
async function chooseWhere(kind: string): Promise<'export' | 'here' | undefined> {
  const choice = await vscode.window.showInformationMessage(
    `Kiln: completions come from a remote ${kind} backend. Export this repository's training data to fine-tune on a cluster (recipes/train_lora.py), or fine-tune here on this machine?`,
    EXPORT,
    HERE,
  );
  return choice === EXPORT ? 'export' : choice === HERE ? 'here' : undefined;
}

/** Asks before training; "Show What Will Be Trained" opens the dry-run report and asks again. */
async function confirmStart(folder: vscode.WorkspaceFolder, output: vscode.OutputChannel): Promise<boolean> {
  for (;;) {
    const choice = await vscode.window.showInformationMessage(`Kiln: fine-tune on ${folder.name}? Training reads its files; secrets are left out.`, START, SHOW);
    if (choice !== SHOW) return choice === START;
    // Tolerates a build without the command: say so instead of failing.
    if (!(await vscode.commands.getCommands(true)).includes(SHOW_TRAINING_DATA)) {
      void vscode.window.showWarningMessage('Kiln: this build cannot show the training data yet.');
      continue;
    }
    try {
      await vscode.commands.executeCommand(SHOW_TRAINING_DATA, folder);
    } catch (err) {
      output.appendLine(`Kiln: showing the training data failed: ${(err as Error).message}`);
    }
  }
}

export async function fineTuneRepository(deps: CommandDeps): Promise<void> {
  if (refuseInRestrictedMode('fine-tuning')) return;
  const client = deps.client();
  if (!client?.isRunning()) {
    void vscode.window.showErrorMessage('Kiln’s server is not running; restart it and try again.');
    return;
  }
  const folder = await pickWorkspace();
  if (!folder) {
    void vscode.window.showWarningMessage('Kiln: open a folder to fine-tune on it.');
    return;
  }
  const kind = backendKind(deps);
  if (kind !== 'local') {
    const where = await chooseWhere(kind);
    if (where === 'export') return exportTrainingData(deps, folder);
    if (where !== 'here') return;
  }
  if (!(await confirmStart(folder, deps.output))) return;
  const output = deps.output;
  const base = deps.settings.get<string>('modelPath') ?? '';
  await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Kiln: fine-tuning on ${folder.name}`, cancellable: true }, async (progress, token) => {
    const sub = client.onNotification(KilnTrainingProgressNotification.type, (p) => {
      const text = progressText(p);
      if (text) progress.report({ message: text });
      if (p.message) output.appendLine(`fine-tune: ${p.message}`);
    });
    try {
      const summary = await client.sendRequest(
        KilnFineTuneRequest.type,
        {
          workspace: folder.uri.fsPath,
          mode: deps.settings.get<'lora' | 'full'>('fineTune.mode') ?? 'lora',
          ...fineTuneLength(
            deps.settings.get<number>('fineTune.minutes'),
            deps.settings.get<number>('fineTune.maxSteps'),
            levelOf(deps.settings.inspect('fineTune.maxSteps'), deps.settings.rules) !== undefined,
          ),
          maxFiles: deps.settings.get<number>('fineTune.maxFiles') ?? 20000,
        },
        token,
      );
      output.appendLine(
        `fine-tune: ${summary.steps} steps in ${summary.trainSeconds.toFixed(0)} s${summary.runSeconds === undefined ? '' : ` (${summary.runSeconds.toFixed(0)} s in all)`} on ${summary.trainFiles} files. ${gainText(summary.before, summary.after, summary.gain)}`,
      );
      if (summary.output) {
        output.appendLine(`fine-tune: ${summary.kind} in ${summary.output}, remembered for this workspace.`);
        // Workspace storage, not settings: nothing is written into the repository.
        await deps.settings.remember({ kind: summary.kind, path: summary.output, base });
      }
      void vscode.window.showInformationMessage(finishedText(summary), 'Show Details').then((c) => c && output.show(true));
    } catch (err) {
      if (token.isCancellationRequested) return;
      void vscode.window.showErrorMessage(`Kiln: ${(err as Error).message}`);
    } finally {
      sub.dispose();
    }
  });
}

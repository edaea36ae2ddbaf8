// "Kiln: Fine-tune on This Repository": a cancellable progress notification over the server's
// kiln/fineTune request; at the end it reports the measured gain and switches to the result.
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { type FineTuneEvalFigures, KilnFineTuneRequest, KilnTrainingProgressNotification, type FineTuneSummary, type TrainingProgress } from '../../server/src/protocol';

async function pickWorkspace(): Promise<vscode.WorkspaceFolder | undefined> {
  const folders = vscode.workspace.workspaceFolders ?? [];
  if (folders.length <= 1) return folders[0];
  return vscode.window.showWorkspaceFolderPick({ placeHolder: 'Fine-tune on which folder?' });
}

/** e.g. `step 12/200 · loss 2.314 · 40 s left`. */
export function progressText(p: TrainingProgress): string {
  if (p.step !== undefined && p.totalSteps) {
    const parts = [`step ${p.step}/${p.totalSteps}`];
    if (p.loss !== undefined) parts.push(`loss ${p.loss.toFixed(3)}`);
    if (p.etaSeconds !== undefined && Number.isFinite(p.etaSeconds)) parts.push(`${Math.round(p.etaSeconds)} s left`);
    return parts.join(' · ');
  }
  return p.message ?? p.phase ?? '';
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : 'n/a');
const num = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');

/** One sentence with before → after figures on the held-out files. */
export function gainText(before: FineTuneEvalFigures | undefined, after: FineTuneEvalFigures | undefined): string {
  if (!before || !after) return 'No before/after measurement (the run was cancelled or had no held-out files).';
  const points = 100 * (after.exactMatch - before.exactMatch);
  return (
    `On ${after.lines} lines of ${after.files} held-out files: next-line exact match ${pct(before.exactMatch)} → ${pct(after.exactMatch)} ` +
    `(${points >= 0 ? '+' : ''}${Number.isFinite(points) ? points.toFixed(1) : 'n/a'} points), edit similarity ${num(before.editSimilarity)} → ${num(after.editSimilarity)}, ` +
    `validation loss ${num(before.validationLoss)} → ${num(after.validationLoss)}.`
  );
}

async function adopt(summary: FineTuneSummary, folder: vscode.WorkspaceFolder): Promise<void> {
  if (!summary.output) return;
  const config = vscode.workspace.getConfiguration('kiln', folder.uri);
  // Workspace-level, so another repository keeps its own adapter; the server swaps it in live.
  if (summary.kind === 'adapter') await config.update('adapterPath', summary.output, vscode.ConfigurationTarget.Workspace);
  else await config.update('modelPath', summary.output, vscode.ConfigurationTarget.Workspace);
}

export async function fineTuneRepository(client: LanguageClient | undefined, output: vscode.OutputChannel): Promise<void> {
  if (!client?.isRunning()) {
    void vscode.window.showErrorMessage('Kiln’s server is not running; restart it and try again.');
    return;
  }
  const folder = await pickWorkspace();
  if (!folder) {
    void vscode.window.showWarningMessage('Kiln: open a folder to fine-tune on it.');
    return;
  }
  const settings = vscode.workspace.getConfiguration('kiln.fineTune', folder.uri);
  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Kiln: fine-tuning on ${folder.name}`, cancellable: true },
    async (progress, token) => {
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
            mode: settings.get<'lora' | 'full'>('mode', 'lora'),
            maxSteps: settings.get<number>('maxSteps', 200),
            maxFiles: settings.get<number>('maxFiles', 20000),
          },
          token,
        );
        const gain = gainText(summary.before, summary.after);
        output.appendLine(`fine-tune: ${summary.steps} steps in ${summary.trainSeconds.toFixed(0)} s on ${summary.trainFiles} files. ${gain}`);
        await adopt(summary, folder);
        const head = summary.cancelled ? 'Fine-tune cancelled; the best result so far is in use.' : 'Fine-tune finished; completions now use it.';
        void vscode.window.showInformationMessage(`Kiln: ${head} ${gain}`);
      } catch (err) {
        if (token.isCancellationRequested) return;
        void vscode.window.showErrorMessage(`Kiln: ${(err as Error).message}`);
      } finally {
        sub.dispose();
      }
    },
  );
}

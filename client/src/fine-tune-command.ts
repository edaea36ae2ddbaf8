// "Kiln: Fine-tune on This Repository": offers to show what will be trained, then a cancellable
// progress notification over the server's kiln/fineTune request; at the end it reports the
// headline gain, remembers the result in the workspace's storage and switches completions to it.
// Unavailable in Restricted Mode: training reads the whole repository.
import * as vscode from 'vscode';
import { type FineTuneEvalFigures, KilnFineTuneRequest, KilnTrainingProgressNotification, type FineTuneSummary, type TrainingProgress } from '../../server/src/protocol';
import type { CommandDeps } from './commands';

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

/** The toast: one short sentence with the headline figure (the rest goes to the output channel). */
export function finishedText(summary: Pick<FineTuneSummary, 'cancelled' | 'output' | 'before' | 'after'>): string {
  const head = !summary.output ? 'Fine-tune cancelled; nothing was kept' : summary.cancelled ? 'Fine-tune cancelled; the best result so far is in use' : 'Fine-tune finished; completions now use it';
  const { before, after } = summary;
  const figure = before && after && Number.isFinite(before.exactMatch) && Number.isFinite(after.exactMatch) ? ` (exact match ${pct(before.exactMatch)} → ${pct(after.exactMatch)})` : '';
  return `Kiln: ${head}${summary.output ? figure : ''}.`;
}

const START = 'Start';
const SHOW = 'Show What Will Be Trained';
const SHOW_TRAINING_DATA = 'kiln.showTrainingData';

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

/** Refuses in Restricted Mode (the palette hides the command there; a keybinding can still run it). */
function refuseUntrusted(): boolean {
  if (vscode.workspace.isTrusted) return false;
  void vscode.window.showWarningMessage('Kiln: fine-tuning is unavailable in Restricted Mode. Trust this workspace to fine-tune on it.', 'Manage Workspace Trust').then((c) => {
    if (c) void vscode.commands.executeCommand('workbench.trust.manage');
  });
  return true;
}

export async function fineTuneRepository(deps: CommandDeps): Promise<void> {
  if (refuseUntrusted()) return;
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
  if (!(await confirmStart(folder, deps.output))) return;
  const output = deps.output;
  const base = deps.settings.get<string>('modelPath') ?? '';
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
            mode: deps.settings.get<'lora' | 'full'>('fineTune.mode') ?? 'lora',
            maxSteps: deps.settings.get<number>('fineTune.maxSteps') ?? 200,
            maxFiles: deps.settings.get<number>('fineTune.maxFiles') ?? 20000,
          },
          token,
        );
        output.appendLine(`fine-tune: ${summary.steps} steps in ${summary.trainSeconds.toFixed(0)} s on ${summary.trainFiles} files. ${gainText(summary.before, summary.after)}`);
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
    },
  );
}

// The palette commands, each a small function over the client and the status bar.
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { KilnGetStatsRequest, KilnValidateModelRequest } from '../../server/src/protocol';
import { type BackendKeyStore, setBackendApiKeyCommand } from './backend-key';
import { downloadModelCommand } from './download-command';
import { fineTuneRepository } from './fine-tune-command';
import { type HubTokenStore, setHubTokenCommand } from './hub-token';
import type { KilnSettings } from './kiln-settings';
import { registerShowTrainingData } from './show-training-data-command';
import type { KilnStatusBar } from './status-bar';

export interface CommandDeps {
  client: () => LanguageClient | undefined;
  restart: () => Promise<void>;
  statusBar: KilnStatusBar;
  output: vscode.OutputChannel;
  toggle: () => boolean;
  /** The extension's global storage: downloaded models go to `models/` in it. */
  storageUri: vscode.Uri;
  settings: KilnSettings;
  hubToken: HubTokenStore;
  backendKey: BackendKeyStore;
}

async function showStats(deps: CommandDeps): Promise<void> {
  const client = deps.client();
  if (client?.isRunning()) {
    try {
      deps.statusBar.setStats(await client.sendRequest(KilnGetStatsRequest.type));
    } catch (err) {
      deps.output.appendLine(`Kiln: stats request failed: ${(err as Error).message}`);
    }
  }
  deps.output.appendLine(`── Kiln stats, ${new Date().toLocaleTimeString()} ──`);
  for (const line of deps.statusBar.lines) deps.output.appendLine(line);
  deps.output.show(true);
}

async function selectModel(deps: CommandDeps): Promise<void> {
  const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, canSelectMany: false, openLabel: 'Use This Model' });
  const folder = picked?.[0];
  if (!folder) return;
  const client = deps.client();
  if (!client?.isRunning()) {
    void vscode.window.showErrorMessage('Kiln’s server is not running; restart it and try again.');
    return;
  }
  const result = await client.sendRequest(KilnValidateModelRequest.type, { path: folder.fsPath });
  if (!result.ok) {
    void vscode.window.showErrorMessage(`Kiln cannot use ${folder.fsPath}: ${result.message}`);
    return;
  }
  await vscode.workspace.getConfiguration('kiln').update('modelPath', folder.fsPath, vscode.ConfigurationTarget.Global);
  void vscode.window.showInformationMessage(`Kiln: switching to ${folder.fsPath} (${result.message}).`);
}

export function registerCommands(deps: CommandDeps): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand('kiln.showStats', () => showStats(deps)),
    vscode.commands.registerCommand('kiln.selectModel', () => selectModel(deps)),
    vscode.commands.registerCommand('kiln.downloadModel', () => downloadModelCommand(deps)),
    vscode.commands.registerCommand('kiln.restartServer', () => deps.restart()),
    vscode.commands.registerCommand('kiln.fineTune', () => fineTuneRepository(deps)),
    vscode.commands.registerCommand('kiln.setHubToken', () => setHubTokenCommand(deps.hubToken)),
    vscode.commands.registerCommand('kiln.setBackendApiKey', () => setBackendApiKeyCommand(deps.backendKey, deps.restart)),
    registerShowTrainingData(deps),
    vscode.commands.registerCommand('kiln.toggleInlineCompletions', () => {
      const on = deps.toggle();
      void vscode.window.showInformationMessage(`Kiln inline completions ${on ? 'on' : 'off'}.`);
    }),
  ];
}

// Activation: output channel, status bar, language client and commands, all in the extension's
// disposal scope so a reload or deactivate leaves nothing behind.
import * as vscode from 'vscode';
import { DidChangeConfigurationNotification, type LanguageClient } from 'vscode-languageclient/node';
import { KilnStatsNotification, KilnStatusNotification } from '../../server/src/protocol';
import { registerCommands } from './commands';
import { BackendKeyStore } from './backend-key';
import { registerCursorEvents } from './cursor-events';
import { HubTokenStore } from './hub-token';
import { KilnSettings } from './kiln-settings';
import { createLanguageClient } from './language-client';
import { KilnStatusBar } from './status-bar';
import { reportVisibleRanges } from './visible-ranges';

const ENABLED_KEY = 'kiln.inlineCompletionsEnabled';
let client: LanguageClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('Kiln', { log: true });
  const statusBar = new KilnStatusBar();
  const settings = new KilnSettings(context, output);
  const hubToken = new HubTokenStore(context.secrets, output);
  const backendKey = new BackendKeyStore(context.secrets);
  context.subscriptions.push(output, statusBar, settings);
  await hubToken.migrateFromSettings(settings).catch((err: unknown) => output.appendLine(`Kiln: moving kiln.hubToken into secret storage failed: ${(err as Error).message}`));
  const isEnabled = () => context.globalState.get<boolean>(ENABLED_KEY, true);
  statusBar.setEnabled(isEnabled());

  const cursorEvents = registerCursorEvents({ client: () => client, isEnabled, settings });
  context.subscriptions.push(cursorEvents);
  const start = async () => {
    const backendApiKey = await backendKey.get().catch(() => undefined);
    const c = createLanguageClient({ context, output, isEnabled, settings, backendApiKey });
    c.onNotification(KilnStatusNotification.type, (s) => statusBar.setStatus(s));
    c.onNotification(KilnStatsNotification.type, (s) => statusBar.setStats(s));
    client = c;
    await c.start();
    cursorEvents.refresh(); // the new server learns where the user is (it warms there once its model is ready)
  };
  const restart = async () => {
    const old = client;
    client = undefined;
    statusBar.setStatus({ state: 'starting' });
    if (old) await old.stop().catch((err: unknown) => output.appendLine(`Kiln: stopping the server failed: ${(err as Error).message}`));
    await start();
  };

  context.subscriptions.push(
    ...registerCommands({
      client: () => client,
      restart,
      statusBar,
      output,
      storageUri: context.globalStorageUri,
      settings,
      hubToken,
      backendKey,
      toggle: () => {
        const next = !isEnabled();
        void context.globalState.update(ENABLED_KEY, next);
        statusBar.setEnabled(next);
        return next;
      },
    }),
    { dispose: () => void client?.stop() },
    reportVisibleRanges(() => client),
    // The server pulls `kiln` through the client's middleware, which applies the scope rules.
    settings.onDidChange(() => {
      if (client?.isRunning()) void client.sendNotification(DidChangeConfigurationNotification.type, { settings: null });
    }),
  );
  try {
    await start();
  } catch (err) {
    output.appendLine(`Kiln: the language server failed to start: ${(err as Error).message}`);
    void vscode.window.showErrorMessage('Kiln’s language server failed to start. See the Kiln output for details.', 'Show Output').then((c) => c && output.show());
  }
}

export async function deactivate(): Promise<void> {
  const c = client;
  client = undefined;
  await c?.stop();
}

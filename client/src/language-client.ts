// Starts Kiln's bundled language server over IPC and keeps its crashes from becoming a loop of
// pop-ups: a few quick restarts, then one actionable message.
import { mkdirSync } from 'node:fs';
import * as vscode from 'vscode';
import {
  CloseAction,
  type CloseHandlerResult,
  ErrorAction,
  type ErrorHandlerResult,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  TransportKind,
} from 'vscode-languageclient/node';
import { BACKEND_API_KEY_ENV, type KilnInitializationOptions } from '../../server/src/protocol';
import { enabledForLanguage, type EnableMap } from './enablement';
import type { KilnSettings } from './kiln-settings';

const MAX_RESTARTS = 3;
const RESTART_WINDOW_MS = 3 * 60 * 1000;

export interface ClientDeps {
  context: vscode.ExtensionContext;
  output: vscode.LogOutputChannel;
  /** The global toggle (Kiln: Toggle Inline Completions). */
  isEnabled: () => boolean;
  /** Answers the server's `workspace/configuration` pulls for `kiln` (scoped values only). */
  settings: KilnSettings;
  /** The remote backend's API key from SecretStorage, passed in the server's environment. */
  backendApiKey?: string;
}

/** Restarts a crashed server up to MAX_RESTARTS times in RESTART_WINDOW_MS, then tells the user once. */
function crashPolicy(output: vscode.OutputChannel) {
  const crashes: number[] = [];
  return {
    error: (): ErrorHandlerResult => ({ action: ErrorAction.Continue }),
    closed: (): CloseHandlerResult => {
      const now = Date.now();
      crashes.push(now);
      while (crashes.length && now - crashes[0]! > RESTART_WINDOW_MS) crashes.shift();
      if (crashes.length <= MAX_RESTARTS) {
        output.appendLine(`Kiln server stopped; restarting (${crashes.length}/${MAX_RESTARTS}).`);
        return { action: CloseAction.Restart, handled: true };
      }
      void vscode.window.showErrorMessage('Kiln’s language server keeps stopping. See the Kiln output for details.', 'Show Output', 'Restart').then((choice) => {
        if (choice === 'Show Output') output.show();
        if (choice === 'Restart') void vscode.commands.executeCommand('kiln.restartServer');
      });
      return { action: CloseAction.DoNotRestart, handled: true };
    },
  };
}

export function createLanguageClient(deps: ClientDeps): LanguageClient {
  const module = deps.context.asAbsolutePath('dist/server.js');
  // The server runs in the extension's storage, never in the workspace folder: a program or library
  // it starts by name must not be found in a repository's files.
  const cwd = deps.context.globalStorageUri.fsPath;
  mkdirSync(cwd, { recursive: true });
  // The key goes in the environment, not in an LSP message (a trace setting could log those); the server removes it once read.
  const env = deps.backendApiKey ? { ...process.env, [BACKEND_API_KEY_ENV]: deps.backendApiKey } : undefined;
  const serverOptions: ServerOptions = {
    run: { module, transport: TransportKind.ipc, options: { cwd, env } },
    debug: { module, transport: TransportKind.ipc, options: { cwd, env, execArgv: ['--nolazy', '--inspect=6019'] } },
  };
  // The server finds the embedded model under models/ itself; the client only says where to cache.
  const initializationOptions: KilnInitializationOptions = {
    cacheDir: vscode.Uri.joinPath(deps.context.globalStorageUri, 'graphs').fsPath,
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
    outputChannel: deps.output,
    initializationOptions,
    // No `synchronize.configurationSection`: it would push every level's values, workspace ones
    // included. The client tells the server to pull instead (see extension.ts).
    errorHandler: crashPolicy(deps.output),
    middleware: {
      workspace: {
        configuration: async (params, token, next) => {
          const answers = await next(params, token);
          if (!Array.isArray(answers)) return answers; // an error from the default handler
          return params.items.map((item, i) => (item.section === 'kiln' ? deps.settings.serverSection() : answers[i]));
        },
      },
      provideInlineCompletionItems: (document, position, context, token, next) => {
        const perLanguage = deps.settings.get<EnableMap>('enable');
        if (!deps.isEnabled() || !enabledForLanguage(perLanguage, document.languageId)) return null;
        return next(document, position, context, token);
      },
    },
  };
  return new LanguageClient('kiln', 'Kiln', serverOptions, clientOptions);
}

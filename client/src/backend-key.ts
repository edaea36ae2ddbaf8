// The remote backend's API key lives in VS Code's SecretStorage (the OS keychain), never in settings.
// It reaches the language server in the server process's environment when the client starts it
// (the server reads and removes it), never as an LSP message, which a trace setting could log.
import * as vscode from 'vscode';

const SECRET_KEY = 'kiln.backendApiKey';

export class BackendKeyStore {
  constructor(private readonly secrets: vscode.SecretStorage) {}

  async get(): Promise<string | undefined> {
    return (await this.secrets.get(SECRET_KEY)) || undefined;
  }

  async set(key: string | undefined): Promise<void> {
    if (key) await this.secrets.store(SECRET_KEY, key);
    else await this.secrets.delete(SECRET_KEY);
  }
}

/** "Kiln: Set Remote Backend API Key…": stores (or, left empty, removes) the key, then restarts the server with it. */
export async function setBackendApiKeyCommand(store: BackendKeyStore, restart: () => Promise<void>): Promise<void> {
  const had = await store.get();
  const key = await vscode.window.showInputBox({
    title: 'Kiln: remote backend API key',
    prompt: had
      ? 'A key is stored. Enter a new one, or leave empty and press Enter to remove it.'
      : 'Sent as "Authorization: Bearer …" to kiln.backend.url only; kept in VS Code’s secret storage.',
    password: true,
    ignoreFocusOut: true,
  });
  if (key === undefined) return;
  await store.set(key.trim() || undefined);
  await restart();
  void vscode.window.showInformationMessage(key.trim() ? 'Kiln: remote backend API key stored.' : 'Kiln: remote backend API key removed.');
}

// The Hugging Face token lives in VS Code's SecretStorage (the OS keychain), never in settings: a
// token in the old `kiln.hubToken` setting is moved there once and removed from the settings files.
import * as vscode from 'vscode';
import type { KilnSettings } from './kiln-settings';
import { legacyToken } from './setting-scopes';

const SECRET_KEY = 'kiln.hubToken';

export class HubTokenStore {
  constructor(
    private readonly secrets: vscode.SecretStorage,
    private readonly output: vscode.OutputChannel,
  ) {}

  async get(): Promise<string | undefined> {
    return (await this.secrets.get(SECRET_KEY)) || undefined;
  }

  async set(token: string | undefined): Promise<void> {
    if (token) await this.secrets.store(SECRET_KEY, token);
    else await this.secrets.delete(SECRET_KEY);
  }

  /** Moves a token out of `kiln.hubToken` (user settings; workspace settings when trusted) into SecretStorage. */
  async migrateFromSettings(settings: KilnSettings): Promise<void> {
    const legacy = legacyToken(settings.inspect('hubToken'), settings.rules);
    if (legacy.clear.length === 0) return;
    if (legacy.token && !(await this.get())) await this.set(legacy.token);
    const config = vscode.workspace.getConfiguration('kiln');
    for (const level of legacy.clear) {
      const target = level === 'user' ? vscode.ConfigurationTarget.Global : vscode.ConfigurationTarget.Workspace;
      try {
        await config.update('hubToken', undefined, target);
      } catch (err) {
        this.output.appendLine(`Kiln: could not remove kiln.hubToken from the ${level} settings: ${(err as Error).message}`);
      }
    }
    this.output.appendLine(`Kiln: moved the Hugging Face token from the kiln.hubToken setting (${legacy.clear.join(', ')}) into VS Code's secret storage.`);
  }
}

/** "Kiln: Set Hugging Face Token…": stores (or, left empty, removes) the token. */
export async function setHubTokenCommand(store: HubTokenStore): Promise<void> {
  const had = await store.get();
  const token = await vscode.window.showInputBox({
    title: 'Kiln: Hugging Face token',
    prompt: had ? 'A token is stored. Enter a new one, or leave empty and press Enter to remove it.' : 'A Hugging Face access token for private or gated models; kept in VS Code’s secret storage.',
    password: true,
    ignoreFocusOut: true,
  });
  if (token === undefined) return;
  await store.set(token.trim() || undefined);
  void vscode.window.showInformationMessage(token.trim() ? 'Kiln: Hugging Face token stored.' : 'Kiln: Hugging Face token removed.');
}

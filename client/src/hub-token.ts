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

  /** Moves a token out of the user's `kiln.hubToken` setting into SecretStorage; a workspace's value is only reported. */
  async migrateFromSettings(settings: KilnSettings): Promise<void> {
    const legacy = legacyToken(settings.inspect('hubToken'));
    if (legacy.workspaceValueIgnored) {
      this.output.appendLine(
        'Kiln: this workspace’s settings set kiln.hubToken; it is ignored (a repository must not choose the account downloads use). Use "Kiln: Set Hugging Face Token…" instead, and remove it from the workspace settings.',
      );
    }
    if (legacy.clear.length === 0) return;
    if (legacy.token && !(await this.get())) await this.set(legacy.token);
    try {
      await vscode.workspace.getConfiguration('kiln').update('hubToken', undefined, vscode.ConfigurationTarget.Global);
    } catch (err) {
      this.output.appendLine(`Kiln: could not remove kiln.hubToken from the user settings: ${(err as Error).message}`);
    }
    this.output.appendLine('Kiln: moved the Hugging Face token from the kiln.hubToken user setting into VS Code’s secret storage.');
  }
}

/** "Kiln: Set Hugging Face Token…": stores (or, left empty, removes) the token. */
export async function setHubTokenCommand(store: HubTokenStore): Promise<void> {
  const had = await store.get();
  const token = await vscode.window.showInputBox({
    title: 'Kiln: Hugging Face token',
    prompt: had
      ? 'A token is stored. Enter a new one, or leave empty and press Enter to remove it.'
      : 'A Hugging Face access token for private or gated models; kept in VS Code’s secret storage.',
    password: true,
    ignoreFocusOut: true,
  });
  if (token === undefined) return;
  await store.set(token.trim() || undefined);
  void vscode.window.showInformationMessage(token.trim() ? 'Kiln: Hugging Face token stored.' : 'Kiln: Hugging Face token removed.');
}

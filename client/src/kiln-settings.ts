// The client's one way to read `kiln.*` settings: every value goes through setting-scopes.ts, so
// machine-scoped settings and Restricted Mode ignore workspace values, and the fine-tune result a
// workspace adopted lives in the extension's workspace storage rather than in its settings.
import { existsSync } from 'node:fs';
import * as vscode from 'vscode';
import { levelName, type RememberedResult, type ScopeRules, scopedValue, type ServerSettings, serverSettings, type SettingLevel, type SettingLevels } from './setting-scopes';

const REMEMBERED_KEY = 'kiln.fineTuneResult';
const CLEAR = 'Clear kiln.adapterPath';

const TARGETS: Record<SettingLevel, vscode.ConfigurationTarget> = {
  user: vscode.ConfigurationTarget.Global,
  workspace: vscode.ConfigurationTarget.Workspace,
  folder: vscode.ConfigurationTarget.WorkspaceFolder,
};

function isRemembered(v: unknown): v is RememberedResult {
  const r = v as Partial<RememberedResult> | undefined;
  return typeof r === 'object' && r !== null && (r.kind === 'adapter' || r.kind === 'model') && typeof r.path === 'string' && r.path !== '' && typeof r.base === 'string';
}

export class KilnSettings implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  /** Fires when what the server should get may differ: a `kiln` setting, trust, or the remembered result changed. */
  readonly onDidChange = this.changed.event;
  private readonly keys: string[];
  private readonly told = new Set<string>(); // missing-adapter messages already shown
  private readonly subscriptions: vscode.Disposable[];

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly output: vscode.OutputChannel,
  ) {
    const declared = (context.extension.packageJSON as { contributes?: { configuration?: { properties?: Record<string, unknown> } } }).contributes?.configuration?.properties ?? {};
    this.keys = Object.keys(declared)
      .filter((k) => k.startsWith('kiln.') && k !== 'kiln.hubToken') // the token lives in SecretStorage
      .map((k) => k.slice('kiln.'.length));
    this.subscriptions = [
      this.changed,
      vscode.workspace.onDidChangeConfiguration((e) => e.affectsConfiguration('kiln') && this.changed.fire()),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.changed.fire()),
    ];
  }

  get rules(): ScopeRules {
    return { trusted: vscode.workspace.isTrusted };
  }

  inspect(key: string): SettingLevels | undefined {
    return vscode.workspace.getConfiguration('kiln').inspect(key);
  }

  /** `kiln.<key>` as Kiln uses it (see `scopedValue`). */
  get<T>(key: string): T | undefined {
    return scopedValue(key, this.inspect(key) as SettingLevels<T> | undefined, this.rules);
  }

  get remembered(): RememberedResult | undefined {
    const v = this.context.workspaceState.get<unknown>(REMEMBERED_KEY);
    return isRemembered(v) ? v : undefined;
  }

  /** Remembers a fine-tune's output for this workspace; the server is told to switch to it. */
  async remember(result: RememberedResult): Promise<void> {
    await this.context.workspaceState.update(REMEMBERED_KEY, result);
    this.changed.fire();
  }

  /**
   * The `kiln` section the server gets. A missing adapter is left out (completions use the base
   * model) and reported once with an offer to clear the setting; a remembered result whose folder
   * is gone is forgotten.
   */
  serverSection(): Record<string, unknown> {
    const computed = serverSettings({ ...this.rules, keys: this.keys, inspect: (k) => this.inspect(k), remembered: this.remembered, exists: existsSync });
    this.report(computed);
    return computed.section;
  }

  private report(computed: ServerSettings): void {
    const gone = computed.rememberedGone;
    if (gone) {
      void this.context.workspaceState.update(REMEMBERED_KEY, undefined);
      this.output.appendLine(`Kiln: the fine-tuned ${gone.kind} remembered for this workspace is gone (${gone.path}); forgotten.`);
      void vscode.window.showInformationMessage(`Kiln: the fine-tuned ${gone.kind} of this workspace is gone, so completions use the base model.`);
    }
    const other = computed.rememberedOtherBase;
    if (other && this.once(`other\0${other.path}`))
      this.output.appendLine(
        `Kiln: this workspace's fine-tuned ${other.kind} (${other.path}) was trained on ${other.base || 'the embedded model'}, not the model now set; not used.`,
      );
    const missing = computed.missingAdapter;
    if (!missing) return;
    const where = levelName(missing.level);
    const key = `${missing.level}\0${missing.path}`;
    if (!this.once(key)) return;
    this.output.appendLine(`Kiln: kiln.adapterPath in ${where} names ${missing.path}, which does not exist; completions use the base model.`);
    void vscode.window.showWarningMessage(`Kiln: kiln.adapterPath (${where}) names a folder that does not exist; completions use the base model.`, CLEAR).then(async (choice) => {
      if (choice !== CLEAR) return;
      const folder = missing.level === 'folder' ? vscode.workspace.workspaceFolders?.[0]?.uri : undefined;
      await vscode.workspace.getConfiguration('kiln', folder).update('adapterPath', undefined, TARGETS[missing.level]);
      this.told.delete(key);
    });
  }

  /** True the first time `key` is seen: each message is shown once, not on every settings pull. */
  private once(key: string): boolean {
    if (this.told.has(key)) return false;
    this.told.add(key);
    return true;
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
  }
}

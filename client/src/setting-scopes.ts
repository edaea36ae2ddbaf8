// Which level of VS Code's settings each `kiln.*` value may come from. A cloned repository's
// `.vscode/settings.json` must not choose the model or the hub (machine-scoped settings), and in
// Restricted Mode no workspace value counts at all. VS Code enforces machine scope itself; this
// layer does it again so the server only ever sees values a workspace could not have planted.
// No `vscode` import: the client passes in what `WorkspaceConfiguration.inspect()` returned.

/** Settings (under `kiln.`) that only user or machine settings may set: package.json says `"scope": "machine"`. */
export const MACHINE_SCOPED_SETTINGS: readonly string[] = [
  'modelPath',
  'hubUrl',
  'adapterPath',
  // a workspace must not send the user's code to a server of its choosing
  'backend.kind',
  'backend.url',
  'backend.model',
  'backend.fallbackToLocal',
];

/** The levels `WorkspaceConfiguration.inspect()` reports (language-specific levels are not used by Kiln). */
export interface SettingLevels<T = unknown> {
  defaultValue?: T;
  globalValue?: T;
  workspaceValue?: T;
  workspaceFolderValue?: T;
}

export type SettingLevel = 'user' | 'workspace' | 'folder';

export interface ScopeRules {
  /** False in Restricted Mode: then every setting takes its user-level value. */
  trusted: boolean;
}

export const isMachineScoped = (key: string): boolean => MACHINE_SCOPED_SETTINGS.includes(key);

/** The value with workspace and folder levels ignored. */
export function userLevelValue<T>(levels: SettingLevels<T> | undefined): T | undefined {
  return levels?.globalValue ?? levels?.defaultValue;
}

/**
 * The value of `kiln.<key>` Kiln uses: user-level only for machine-scoped settings and in Restricted
 * Mode; otherwise the most specific level set (folder, then workspace, then user, then default).
 */
export function scopedValue<T>(key: string, levels: SettingLevels<T> | undefined, rules: ScopeRules): T | undefined {
  const allowed =
    !rules.trusted || isMachineScoped(key)
      ? [levels?.defaultValue, levels?.globalValue]
      : [levels?.defaultValue, levels?.globalValue, levels?.workspaceValue, levels?.workspaceFolderValue];
  const set = allowed.filter((v): v is T => v !== undefined);
  // Object settings (`kiln.enable`) merge key by key across levels, as VS Code's `get` does.
  if (set.length > 1 && set.every(isPlainObject)) return Object.assign({}, ...set) as T;
  return set.at(-1);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The most specific level at which a setting is set, the one whose value VS Code would use. */
export function levelOf(levels: SettingLevels | undefined, rules: ScopeRules): SettingLevel | undefined {
  if (rules.trusted && levels?.workspaceFolderValue !== undefined) return 'folder';
  if (rules.trusted && levels?.workspaceValue !== undefined) return 'workspace';
  if (levels?.globalValue !== undefined) return 'user';
  return undefined;
}

/** How a level is named in VS Code's Settings editor. */
export function levelName(level: SettingLevel): string {
  return level === 'user' ? 'User settings' : level === 'workspace' ? 'Workspace settings' : 'Folder settings';
}

/** What a fine-tune produced for a workspace, as remembered in the extension's workspace storage. */
export interface RememberedResult {
  kind: 'adapter' | 'model';
  path: string;
  /** `kiln.modelPath` when it was trained ('' = the embedded model): it applies only on top of that model. */
  base: string;
}

export interface ServerSettingsInput extends ScopeRules {
  /** Every `kiln.*` key package.json declares, without the prefix (e.g. `maxTokens`, `fineTune.mode`). */
  keys: readonly string[];
  inspect: (key: string) => SettingLevels | undefined;
  /** The workspace's fine-tune result, if any; used only in a trusted workspace. */
  remembered?: RememberedResult;
  /** Whether a folder exists (adapters are checked before the server is told to load them). */
  exists: (path: string) => boolean;
}

/** A `kiln.adapterPath` that names a folder that is not there. */
export interface MissingAdapter {
  path: string;
  level: SettingLevel;
}

export interface ServerSettings {
  /** The `kiln` configuration object the server receives (dotted keys nested, as VS Code does). */
  section: Record<string, unknown>;
  missingAdapter?: MissingAdapter;
  /** The remembered result's folder is gone: the caller forgets it. */
  rememberedGone?: RememberedResult;
  /** The remembered result was trained on another model than `kiln.modelPath` now names, so it is not used. */
  rememberedOtherBase?: RememberedResult;
}

function setNested(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    let next = node[part];
    if (typeof next !== 'object' || next === null) {
      next = {};
      node[part] = next;
    }
    node = next as Record<string, unknown>;
  }
  node[parts.at(-1)!] = value;
}

/**
 * The configuration the server gets: each key through `scopedValue`, then the workspace's
 * fine-tune result where the user has not set `kiln.adapterPath` themselves. A missing adapter
 * (set or remembered) is left out, so completions use the base model.
 */
export function serverSettings(input: ServerSettingsInput): ServerSettings {
  const section: Record<string, unknown> = {};
  for (const key of input.keys) {
    const value = scopedValue(key, input.inspect(key), input);
    if (value !== undefined) setNested(section, key, value);
  }
  const result: ServerSettings = { section };
  const adapterLevels = input.inspect('adapterPath');
  const adapterSetting = scopedValue('adapterPath', adapterLevels, input);
  const userAdapter = typeof adapterSetting === 'string' && adapterSetting !== '';
  if (userAdapter && !input.exists(adapterSetting)) {
    result.missingAdapter = { path: adapterSetting, level: levelOf(adapterLevels, input) ?? 'user' };
    section.adapterPath = '';
  }
  const remembered = input.trusted ? input.remembered : undefined;
  // `kiln.adapterPath` set by the user overrides a remembered adapter (not a remembered full model).
  if (!remembered || (remembered.kind === 'adapter' && userAdapter)) return result;
  if (!input.exists(remembered.path)) {
    result.rememberedGone = remembered;
    return result;
  }
  if ((section.modelPath ?? '') !== remembered.base) {
    result.rememberedOtherBase = remembered;
    return result;
  }
  if (remembered.kind === 'adapter') section.adapterPath = remembered.path;
  else section.modelPath = remembered.path;
  return result;
}

/** A token left in the old `kiln.hubToken` setting: which value to keep and the levels to remove it from. */
export interface LegacyToken {
  token: string | undefined;
  clear: 'user'[];
  /** A workspace's settings also set it: never adopted (a repository could plant its own account's token). */
  workspaceValueIgnored: boolean;
}

/** Only the user's own token moves to secret storage; a workspace's value is never read into it. */
export function legacyToken(levels: SettingLevels | undefined): LegacyToken {
  const user = typeof levels?.globalValue === 'string' && levels.globalValue.trim() !== '' ? levels.globalValue.trim() : undefined;
  return {
    token: user,
    clear: levels?.globalValue === undefined ? [] : ['user'],
    workspaceValueIgnored: levels?.workspaceValue !== undefined || levels?.workspaceFolderValue !== undefined,
  };
}

// The client's settings layer: what a workspace's settings may and may not decide. Machine-scoped
// settings and, in Restricted Mode, every setting take the user-level value; the workspace's
// remembered fine-tune result applies only when trusted, on the model it was trained on, and a
// missing adapter falls back to the base model with the level it was set at.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  legacyToken,
  levelOf,
  MACHINE_SCOPED_SETTINGS,
  type RememberedResult,
  scopedValue,
  serverSettings,
  type ServerSettingsInput,
  type SettingLevels,
} from '../../client/src/setting-scopes';

const TRUSTED = { trusted: true };
const RESTRICTED = { trusted: false };
/** A fresh value each run, so no test passes on a string it happens to contain. */
const randomName = () => randomBytes(6).toString('hex');

/** Settings files as inspect() reports them: every key with a default, some set at other levels. */
function input(levels: Record<string, SettingLevels>, extra: Partial<ServerSettingsInput> = {}): ServerSettingsInput {
  return { trusted: true, keys: Object.keys(levels), inspect: (k) => levels[k], exists: () => true, ...extra };
}

describe('scopedValue', () => {
  it('ignores workspace and folder values of machine-scoped settings, even in a trusted workspace', () => {
    for (const key of MACHINE_SCOPED_SETTINGS) {
      const user = `/home/${randomName()}/model`;
      const planted = { defaultValue: '', globalValue: user, workspaceValue: `/tmp/${randomName()}`, workspaceFolderValue: `/tmp/${randomName()}` };
      assert.equal(scopedValue(key, planted, TRUSTED), user, key);
      assert.equal(scopedValue(key, { defaultValue: '', workspaceValue: '/tmp/hostile' }, TRUSTED), '', `${key} falls back to the default`);
    }
  });

  it("a workspace cannot choose a remote backend or redirect the user's one: kiln.backend.* come from user settings only", () => {
    const planted = (user: unknown, workspace: unknown): SettingLevels => ({
      defaultValue: user === undefined ? '' : undefined,
      globalValue: user,
      workspaceValue: workspace,
      workspaceFolderValue: workspace,
    });
    const levels: Record<string, SettingLevels> = {
      'backend.kind': { defaultValue: 'local', workspaceValue: 'openai' },
      'backend.url': planted(undefined, `http://${randomName()}.invalid`),
      'backend.model': planted(undefined, randomName()),
      'backend.fallbackToLocal': { defaultValue: false, workspaceFolderValue: true },
    };
    assert.deepEqual(serverSettings(input(levels)).section.backend, { kind: 'local', url: '', model: '', fallbackToLocal: false });
    const user = `http://${randomName()}:8000`;
    levels['backend.kind'] = { defaultValue: 'local', globalValue: 'llamacpp', workspaceValue: 'openai' };
    levels['backend.url'] = { defaultValue: '', globalValue: user, workspaceValue: 'http://evil.invalid' };
    assert.deepEqual(serverSettings(input(levels)).section.backend, { kind: 'llamacpp', url: user, model: '', fallbackToLocal: false });
  });

  it('takes the most specific level of other settings when trusted, the user level in Restricted Mode', () => {
    const levels = { defaultValue: 64, globalValue: 32, workspaceValue: 16, workspaceFolderValue: 8 };
    assert.equal(scopedValue('maxTokens', levels, TRUSTED), 8);
    assert.equal(scopedValue('maxTokens', { ...levels, workspaceFolderValue: undefined }, TRUSTED), 16);
    assert.equal(scopedValue('maxTokens', levels, RESTRICTED), 32);
    assert.equal(scopedValue('maxTokens', { defaultValue: 64, workspaceValue: 1 }, RESTRICTED), 64);
  });

  it('merges object settings level by level, as VS Code does, and leaves workspace keys out when restricted', () => {
    const levels: SettingLevels<Record<string, boolean>> = { defaultValue: { '*': true, markdown: false }, globalValue: { python: true }, workspaceValue: { '*': false } };
    assert.deepEqual(scopedValue('enable', levels, TRUSTED), { '*': false, markdown: false, python: true });
    assert.deepEqual(scopedValue('enable', levels, RESTRICTED), { '*': true, markdown: false, python: true });
  });

  it('names the level whose value is used', () => {
    assert.equal(levelOf({ defaultValue: '', globalValue: 'a', workspaceValue: 'b' }, TRUSTED), 'workspace');
    assert.equal(levelOf({ defaultValue: '', workspaceValue: 'b', workspaceFolderValue: 'c' }, TRUSTED), 'folder');
    assert.equal(levelOf({ defaultValue: '', globalValue: 'a', workspaceValue: 'b' }, RESTRICTED), 'user');
    assert.equal(levelOf({ defaultValue: '' }, TRUSTED), undefined);
  });
});

describe('serverSettings', () => {
  const model = `/models/${randomName()}`;
  const adapter = (base = ''): RememberedResult => ({ kind: 'adapter', path: `/storage/runs/${randomName()}`, base });

  it('sends no workspace-level model path or hub URL, and nests dotted keys', () => {
    const { section } = serverSettings(
      input({
        modelPath: { defaultValue: '', globalValue: model, workspaceValue: '/tmp/hostile-model' },
        hubUrl: { defaultValue: '', workspaceValue: 'http://hostile.invalid' },
        maxTokens: { defaultValue: 64, workspaceValue: 8 },
        'fineTune.maxSteps': { defaultValue: 200, workspaceValue: 3 },
      }),
    );
    assert.deepEqual(section, { modelPath: model, hubUrl: '', maxTokens: 8, fineTune: { maxSteps: 3 } });
  });

  it('in Restricted Mode sends only user-level values and no remembered adapter', () => {
    const remembered = adapter();
    const { section } = serverSettings(
      input(
        { modelPath: { defaultValue: '' }, maxTokens: { defaultValue: 64, globalValue: 32, workspaceValue: 8 }, adapterPath: { defaultValue: '', workspaceValue: '/tmp/adapter' } },
        { trusted: false, remembered },
      ),
    );
    assert.deepEqual(section, { modelPath: '', maxTokens: 32, adapterPath: '' });
  });

  it('uses the remembered adapter when trusted and the user set none, on the model it was trained on', () => {
    const remembered = adapter(model);
    const levels = { modelPath: { defaultValue: '', globalValue: model }, adapterPath: { defaultValue: '' } };
    assert.equal(serverSettings(input(levels, { remembered })).section.adapterPath, remembered.path);
    const other = serverSettings(input({ ...levels, modelPath: { defaultValue: '', globalValue: '/models/other' } }, { remembered }));
    assert.equal(other.section.adapterPath, '', 'not merged into another model');
    assert.equal(other.rememberedOtherBase, remembered);
  });

  it('lets a user-set kiln.adapterPath override the remembered adapter', () => {
    const mine = `/adapters/${randomName()}`;
    const { section } = serverSettings(input({ modelPath: { defaultValue: '' }, adapterPath: { defaultValue: '', globalValue: mine } }, { remembered: adapter() }));
    assert.equal(section.adapterPath, mine);
  });

  it('uses a remembered full model instead of kiln.modelPath', () => {
    const remembered: RememberedResult = { kind: 'model', path: `/storage/runs/${randomName()}`, base: '' };
    assert.equal(serverSettings(input({ modelPath: { defaultValue: '' } }, { remembered })).section.modelPath, remembered.path);
  });

  it('leaves out a kiln.adapterPath whose folder is missing and says it is a user setting', () => {
    const missing = `/gone/${randomName()}`;
    const r = serverSettings(input({ adapterPath: { defaultValue: '', globalValue: missing } }, { exists: (p) => p !== missing }));
    assert.equal(r.section.adapterPath, '', 'completions use the base model');
    assert.deepEqual(r.missingAdapter, { path: missing, level: 'user' });
  });

  it('ignores a kiln.adapterPath set by a workspace or folder (machine scope: a repository must not choose the adapter)', () => {
    const planted = `/planted/${randomName()}`;
    for (const levels of [
      { defaultValue: '', workspaceValue: planted },
      { defaultValue: '', workspaceFolderValue: planted },
    ]) {
      const r = serverSettings(input({ adapterPath: levels }, { exists: () => true }));
      assert.equal(r.section.adapterPath, '');
      assert.equal(r.missingAdapter, undefined);
    }
  });

  it('forgets a remembered result whose folder is gone', () => {
    const remembered = adapter();
    const r = serverSettings(input({ adapterPath: { defaultValue: '' } }, { remembered, exists: (p) => p !== remembered.path }));
    assert.equal(r.section.adapterPath, '');
    assert.equal(r.rememberedGone, remembered);
  });
});

describe('legacyToken', () => {
  it('moves the user token and removes it from the user settings', () => {
    const user = randomName();
    assert.deepEqual(legacyToken({ defaultValue: '', globalValue: user }), { token: user, clear: ['user'], workspaceValueIgnored: false });
  });

  it('never adopts or touches a workspace token, trusted or not (a repository could plant its own account)', () => {
    assert.deepEqual(legacyToken({ defaultValue: '', workspaceValue: randomName() }), { token: undefined, clear: [], workspaceValueIgnored: true });
    const user = randomName();
    assert.deepEqual(legacyToken({ defaultValue: '', globalValue: user, workspaceFolderValue: randomName() }), { token: user, clear: ['user'], workspaceValueIgnored: true });
  });

  it('has nothing to do when the setting is unset', () => {
    assert.deepEqual(legacyToken({ defaultValue: '' }), { token: undefined, clear: [], workspaceValueIgnored: false });
  });
});

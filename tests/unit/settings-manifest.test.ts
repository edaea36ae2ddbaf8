// The settings VS Code shows (package.json `contributes.configuration`) and the server's typed
// settings must agree: every server setting is declared, with the same default and allowed values,
// and the fine-tune command's settings default to the fine-tune's own defaults. The manifest also
// keeps workspaces out of what they must not decide: machine scope exactly where the client's
// settings layer treats a setting as machine-only, every other setting restricted in Restricted
// Mode, fine-tuning hidden there, and no token read from settings.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { MACHINE_SCOPED_SETTINGS } from '../../client/src/setting-scopes';
import { DEFAULT_SETTINGS, parseSettings } from '../../server/src/lsp/settings';
import { FINE_TUNE_DEFAULTS } from '../../server/src/finetune/fine-tune-options';

interface Declared {
  default?: unknown;
  enum?: unknown[];
  scope?: string;
  markdownDeprecationMessage?: string;
}

interface Manifest {
  capabilities?: { untrustedWorkspaces?: { supported?: unknown; description?: string; restrictedConfigurations?: string[] } };
  contributes: {
    configuration: { properties: Record<string, Declared> };
    commands: { command: string; title: string }[];
    menus?: { commandPalette?: { command: string; when?: string }[] };
  };
}

const manifest = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as Manifest;
const declared = manifest.contributes.configuration.properties;

/** The server's defaults under VS Code's dotted names (`backend.kind`, …). */
const FLAT_DEFAULTS: Record<string, unknown> = Object.fromEntries(
  Object.entries(DEFAULT_SETTINGS).flatMap(([key, value]) =>
    typeof value === 'object' && value !== null && !Array.isArray(value) ? Object.entries(value).map(([k, v]) => [`${key}.${k}`, v]) : [[key, value]],
  ),
);

/** A raw `kiln` section setting one dotted key, nested as VS Code sends it. */
const nested = (key: string, value: unknown): Record<string, unknown> => {
  const [head, ...rest] = key.split('.');
  return rest.length ? { [head!]: nested(rest.join('.'), value) } : { [head!]: value };
};

it('every server setting is declared in package.json with the server default', () => {
  for (const [key, value] of Object.entries(FLAT_DEFAULTS)) {
    const d = declared[`kiln.${key}`];
    assert.ok(d, `kiln.${key} is not declared`);
    assert.deepEqual(d.default, value, `kiln.${key} default`);
  }
});

it('each declared enum value is accepted by the server, and nothing else is', () => {
  for (const [name, d] of Object.entries(declared)) {
    const key = name.slice('kiln.'.length);
    if (!d.enum || !(key in FLAT_DEFAULTS)) continue;
    for (const v of d.enum) assert.deepEqual(parseSettings(nested(key, v)).problems, [], `${name} = ${String(v)}`);
    assert.equal(parseSettings(nested(key, 'not-a-choice')).problems.length, 1, `${name} rejects other values`);
  }
});

it('the fine-tune settings default to what the fine-tune does when the client leaves them unset', () => {
  assert.equal(declared['kiln.fineTune.mode']?.default, 'lora');
  assert.equal(declared['kiln.fineTune.maxSteps']?.default, FINE_TUNE_DEFAULTS.maxSteps);
  assert.equal(declared['kiln.fineTune.maxFiles']?.default, FINE_TUNE_DEFAULTS.maxFiles);
});

it('declares machine scope for exactly the settings the client treats as machine-only', () => {
  const machine = Object.entries(declared)
    .filter(([, d]) => d.scope === 'machine')
    .map(([name]) => name.slice('kiln.'.length));
  assert.deepEqual(machine.sort(), [...MACHINE_SCOPED_SETTINGS].sort());
  assert.ok(MACHINE_SCOPED_SETTINGS.includes('modelPath') && MACHINE_SCOPED_SETTINGS.includes('hubUrl'), 'the model folder and the hub are machine-scoped');
});

it('supports Restricted Mode in a limited way, with every setting a workspace could otherwise set restricted', () => {
  const trust = manifest.capabilities?.untrustedWorkspaces;
  assert.equal(trust?.supported, 'limited');
  assert.ok(trust?.description, 'says what is limited');
  const workspaceSettable = Object.entries(declared)
    .filter(([, d]) => d.scope !== 'machine' && d.scope !== 'application')
    .map(([name]) => name);
  assert.deepEqual([...(trust?.restrictedConfigurations ?? [])].sort(), workspaceSettable.sort());
});

it('hides "Fine-tune on This Repository" and "Show What Will Be Trained" from the palette in Restricted Mode', () => {
  assert.ok(manifest.contributes.commands.some((c) => c.command === 'kiln.fineTune'));
  for (const command of ['kiln.fineTune', 'kiln.showTrainingData']) {
    const entry = manifest.contributes.menus?.commandPalette?.find((m) => m.command === command);
    assert.equal(entry?.when, 'isWorkspaceTrusted', command);
  }
});

it('keeps the Hugging Face token out of settings: kiln.hubToken is deprecated in favour of the Set Token command', () => {
  assert.ok(declared['kiln.hubToken']?.markdownDeprecationMessage?.includes('Set Hugging Face Token'), 'kiln.hubToken points at the command');
  assert.ok(manifest.contributes.commands.some((c) => c.command === 'kiln.setHubToken' && c.title.startsWith('Set Hugging Face Token')));
});

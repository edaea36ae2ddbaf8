// The settings VS Code shows (package.json `contributes.configuration`) and the server's typed
// settings must agree: every server setting is declared, with the same default and allowed values,
// and the fine-tune command's settings default to the fine-tune's own defaults.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { DEFAULT_SETTINGS, parseSettings } from '../../server/src/lsp/settings';
import { FINE_TUNE_DEFAULTS } from '../../server/src/training/fine-tune';

interface Declared {
  default?: unknown;
  enum?: unknown[];
}

const manifest = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { contributes: { configuration: { properties: Record<string, Declared> } } };
const declared = manifest.contributes.configuration.properties;

it('every server setting is declared in package.json with the server default', () => {
  for (const [key, value] of Object.entries(DEFAULT_SETTINGS)) {
    const d = declared[`kiln.${key}`];
    assert.ok(d, `kiln.${key} is not declared`);
    assert.deepEqual(d.default, value, `kiln.${key} default`);
  }
});

it('each declared enum value is accepted by the server, and nothing else is', () => {
  for (const [name, d] of Object.entries(declared)) {
    const key = name.slice('kiln.'.length);
    if (!d.enum || !(key in DEFAULT_SETTINGS)) continue;
    for (const v of d.enum) assert.deepEqual(parseSettings({ [key]: v }).problems, [], `${name} = ${String(v)}`);
    assert.equal(parseSettings({ [key]: 'not-a-choice' }).problems.length, 1, `${name} rejects other values`);
  }
});

it('the fine-tune settings default to what the fine-tune does when the client leaves them unset', () => {
  assert.equal(declared['kiln.fineTune.mode']?.default, 'lora');
  assert.equal(declared['kiln.fineTune.maxSteps']?.default, FINE_TUNE_DEFAULTS.maxSteps);
  assert.equal(declared['kiln.fineTune.maxFiles']?.default, FINE_TUNE_DEFAULTS.maxFiles);
});

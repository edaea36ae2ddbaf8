// The settings VS Code shows (package.json `contributes.configuration`) and the server's typed
// settings must agree: every server setting is declared, with the same default and allowed values.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { DEFAULT_SETTINGS, parseSettings } from '../../server/src/lsp/settings';

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

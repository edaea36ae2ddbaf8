// `kiln complete`'s backend flags are checked before any model loads: a URL without --backend is
// a usage error rather than a silent local completion, and an unusable choice names the flag.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { UsageError } from '../../server/src/commands/cli-args';
import { runComplete } from '../../server/src/commands/complete';
import { tempDir } from '../helpers/tiny-session';

const dir = tempDir('kiln-complete-args-');
const file = join(dir, 'a.py');
writeFileSync(file, 'x = \n');
after(() => rmSync(dir, { recursive: true, force: true }));
const base = [file, '--line', '1', '--col', '5', '--model', join(dir, 'no-model-here')];

describe('kiln complete --backend flags', () => {
  it('--backend-url or --backend-model without --backend is a usage error, not a local completion', async () => {
    for (const extra of [
      ['--backend-url', 'http://gpu-box:8000'],
      ['--backend-model', 'm'],
    ]) {
      await assert.rejects(
        runComplete([...base, ...extra], () => {}),
        (e: unknown) => e instanceof UsageError && /need --backend openai\|llamacpp\|ollama/.test(e.message),
      );
    }
  });

  it('an unusable remote choice names the flag', async () => {
    await assert.rejects(
      runComplete([...base, '--backend', 'openai', '--backend-url', 'http://h'], () => {}),
      (e: unknown) => e instanceof UsageError && /needs --backend-model/.test(e.message),
    );
  });
});

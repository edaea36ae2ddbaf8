// What a kiln/fineTune request turns into: unset fields take the fine-tune's defaults, the editor's
// counts (steps, files) pass through, and a count that is not a positive integer is refused.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fineTuneOptions } from '../../server/src/lsp/fine-tune-handler';
import { FINE_TUNE_DEFAULTS } from '../../server/src/finetune/fine-tune';

const options = (params: Record<string, unknown>) => fineTuneOptions({ workspace: '/repo', ...params }, '/models/m', '/cache');

describe('fine-tune request options', () => {
  it('unset fields take the defaults: LoRA, default steps and file bound, output under the cache', () => {
    const o = options({});
    assert.equal(o.mode.kind, 'lora');
    assert.equal(o.maxSteps, FINE_TUNE_DEFAULTS.maxSteps);
    assert.equal(o.maxFiles, FINE_TUNE_DEFAULTS.maxFiles);
    assert.equal(o.workspace, '/repo');
    assert.ok(o.outDir.startsWith(join('/cache', 'runs')), o.outDir);
  });

  it('the steps and the file bound from the settings reach the fine-tune', () => {
    const o = options({ maxSteps: 7, maxFiles: 50_000, mode: 'full' });
    assert.deepEqual([o.maxSteps, o.maxFiles, o.mode.kind], [7, 50_000, 'full']);
  });

  for (const bad of [0, -3, 2.5, '100', null, Number.NaN]) {
    it(`maxFiles = ${JSON.stringify(bad)} is refused with a message naming it`, () => {
      assert.throws(() => options({ maxFiles: bad }), (err: Error) => /^maxFiles must be a positive integer/.test(err.message));
    });
  }

  it('maxSteps is checked the same way', () => {
    assert.throws(() => options({ maxSteps: 0 }), /maxSteps must be a positive integer, got 0/);
  });
});

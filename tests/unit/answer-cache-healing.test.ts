// Token healing cuts the prompt back to a token boundary and forces the cut bytes while decoding,
// so two texts (`text ` and `text =`) can share prompt tokens yet need different answers. The answer
// cache must tell them apart: typing `=` after a suggestion for `text ` answers what a cold engine
// answers for `text =` (cached == uncached), not the earlier suggestion.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type CompletionModel, loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { parseSettings } from '../../server/src/lsp/settings';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-answer-cache-');
const settings = { ...parseSettings({ maxTokens: 8, candidates: 1, tokenHealing: true }).settings, speculate: false };
const uri = 'file:///work/config.py';
const head = 'def read_config(path):\n    with open(path) as handle:\n        text';
const first = `${head} `;
const second = `${head} =`;

after(() => rmSync(root, { recursive: true, force: true }));

async function answer(engine: CompletionEngine, text: string): Promise<string[]> {
  return (await engine.complete({ uri, text, offset: text.length })).items;
}

describe('the answer cache with token healing', () => {
  it('answers a healed prompt by its forced bytes too, not only its tokens', async () => {
    // The first seed whose cold answers for the two texts differ (so a wrong cache hit would show)
    // and whose first answer does not start with '=' (typing it would be typed through, not cached).
    for (let seed = 1; seed <= 20; seed++) {
      const dir = writeTinyCodeModel(join(root, `model-${seed}`), { seed });
      const model: CompletionModel = await loadCompletionModel(
        dir,
        { fimOrder: 'auto', quantization: 'none' },
        { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') },
      );
      try {
        const coldFirst = await answer(new CompletionEngine(model, settings, new LatencyStats()), first);
        const coldSecond = await answer(new CompletionEngine(model, settings, new LatencyStats()), second);
        if (JSON.stringify(coldFirst) === JSON.stringify(coldSecond) || coldFirst[0]?.startsWith('=')) continue;
        const warm = new CompletionEngine(model, settings, new LatencyStats());
        assert.deepEqual(await answer(warm, first), coldFirst);
        assert.deepEqual(await answer(warm, second), coldSecond);
        return;
      } finally {
        await model.loaded.session.release();
      }
    }
    assert.fail('no seed in 1..20 gives different answers for the two texts');
  });
});

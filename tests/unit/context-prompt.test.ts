// The engine's prompt with a context block: the block's tokens, then exactly the FIM prompt of the
// file with the prefix window the budget leaves; without a supplier (or with context off) the very
// prompt the engine built before context existed; and typing at the cursor still only appends
// tokens after the block, so the KV cache of the block and the suffix survives every keystroke.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CompletionModel, loadCompletionModel, readTrainedFacts } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { buildPrompt } from '../../server/src/completion/prompt';
import { healPrompt } from '../../server/src/completion/token-healing';
import { prefixFor, splitTokenBudget } from '../../server/src/context/budget';
import { RepositoryContext } from '../../server/src/context/repository-context';
import { repositorySupplier } from '../../server/src/context/supplier';
import { withContextBlock } from '../../server/src/model/fim';
import { parseSettings } from '../../server/src/lsp/settings';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

const root = tempDir('kiln-context-prompt-');
let model: CompletionModel;
const settings = { ...parseSettings({ maxTokens: 16, tokenHealing: true, completionMode: 'line', temperature: 0 }).settings, speculate: false };

const helper =
  'export function formatTotal(orders: Order[], currency: string): string {\n  const sum = orders.reduce((a, o) => a + o.amount, 0);\n  return sum.toFixed(2) + currency;\n}\n';
const current = "import { formatTotal } from './format';\n\nexport function report(orders: Order[]) {\n  const sum = orders.reduce((a, o) => a + o.amount, 0);\n  return ";

before(async () => {
  const dir = writeTinyCodeModel(join(root, 'model'), { maxPositions: 1024 });
  model = await loadCompletionModel(dir, { fimOrder: 'auto', quantization: 'none' }, { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') });
});
after(async () => {
  await model?.loaded.session.release();
  rmSync(root, { recursive: true, force: true });
});

async function contextOver(files: Record<string, string>) {
  const ctx = new RepositoryContext({ policy: { admit: (_p, t) => t }, idle: { quietMs: 0 } });
  for (const [path, text] of Object.entries(files)) ctx.openDocument(path, text);
  await ctx.settled();
  return { ctx, supplier: repositorySupplier(ctx, { repoName: 'shop', pathOf: (uri) => uri.replace('file:///shop/', '') }) };
}

describe('the prompt with context', () => {
  it('is the block, then the FIM prompt of the file with the prefix the budget leaves', async () => {
    const { ctx, supplier } = await contextOver({ 'src/format.ts': helper, 'src/report.ts': current });
    const engine = new CompletionEngine(model, settings, new LatencyStats(), { context: supplier });
    const prompt = engine.promptFor({ uri: 'file:///shop/src/report.ts', text: current, offset: current.length });
    assert.ok(prompt.block.tokens.length > 0, 'a block was built');
    assert.deepEqual(
      prompt.block.snippets.map((s) => [s.source, s.path]),
      [
        ['imports', 'src/format.ts'],
        ['similar', 'src/format.ts'],
      ].filter(([source]) => prompt.block.snippets.some((s) => s.source === source)),
    );
    assert.equal(model.tokenizer.decode(prompt.block.tokens).startsWith('<|repo_name|>shop\n<|file_sep|>src/format.ts\n'), true);
    const budget = splitTokenBudget({
      modelTokens: model.contextTokens,
      completionTokens: 16,
      maxContext: settings['context.maxTokens'],
      maxPrefix: settings.maxPrefixTokens,
      maxSuffix: settings.maxSuffixTokens,
    });
    const options = { maxPrefixTokens: prefixFor(budget, prompt.block.tokens.length), maxSuffixTokens: budget.suffix, order: model.order };
    const plain = buildPrompt({ tokenizer: model.tokenizer, template: model.fim, text: current, offset: current.length, options, cache: null });
    const healed = healPrompt({ ...plain, contextTokens: [] }, model.fim, model.order, model.tokenizer);
    assert.deepEqual(prompt.tokens, withContextBlock(model.fim, prompt.block.tokens, healed.tokens));
    assert.ok(prompt.tokens.length + 16 <= model.contextTokens);
    ctx.dispose();
  });

  it("writes comment headers for a model whose kiln.json says contextFormat 'comment', and refuses another value", async () => {
    const dir = writeTinyCodeModel(join(root, 'comment-model'), { maxPositions: 1024 });
    writeFileSync(join(dir, 'kiln.json'), JSON.stringify({ fimOrders: ['spm'], contextFormat: 'comment' }));
    const commented = await loadCompletionModel(dir, { fimOrder: 'auto', quantization: 'none' }, { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') });
    const { ctx, supplier } = await contextOver({ 'src/format.ts': helper, 'src/report.ts': current });
    try {
      const engine = new CompletionEngine(commented, settings, new LatencyStats(), { context: supplier });
      const block = engine.promptFor({ uri: 'file:///shop/src/report.ts', text: current, offset: current.length }).block;
      const text = commented.tokenizer.decode(block.tokens);
      assert.ok(text.startsWith('// src/format.ts\nexport function formatTotal(') && text.endsWith('// src/report.ts\n') && !text.includes('<|file_sep|>'), text);
      writeFileSync(join(dir, 'kiln.json'), JSON.stringify({ contextFormat: 'xml' }));
      assert.throws(() => readTrainedFacts(dir), /"contextFormat" must be "repo" or "comment"/);
    } finally {
      ctx.dispose();
      await commented.loaded.session.release();
    }
  });

  it('without a supplier, or with kiln.context.enabled off, is the prompt the engine built before context', async () => {
    const { ctx, supplier } = await contextOver({ 'src/format.ts': helper });
    const room = model.contextTokens - 16 - 8;
    const suffix = Math.min(settings.maxSuffixTokens, Math.floor(room / 4));
    const old = buildPrompt({
      tokenizer: model.tokenizer,
      template: model.fim,
      text: current,
      offset: current.length,
      options: { maxPrefixTokens: Math.min(settings.maxPrefixTokens, room - suffix), maxSuffixTokens: suffix, order: model.order },
      cache: null,
    });
    const expected = healPrompt(old, model.fim, model.order, model.tokenizer).tokens;
    const none = new CompletionEngine(model, settings, new LatencyStats());
    const off = new CompletionEngine(model, { ...settings, 'context.enabled': false }, new LatencyStats(), { context: supplier });
    const noSources = new CompletionEngine(model, { ...settings, 'context.sources': [] }, new LatencyStats(), { context: supplier });
    for (const engine of [none, off, noSources]) assert.deepEqual(engine.promptFor({ uri: 'file:///shop/src/report.ts', text: current, offset: current.length }).tokens, expected);
    ctx.dispose();
  });

  it('keeps the block and the suffix as a token prefix while typing: each keystroke changes only the last few tokens', async () => {
    const { ctx, supplier } = await contextOver({ 'src/format.ts': helper, 'src/report.ts': current });
    const engine = new CompletionEngine(model, { ...settings, tokenHealing: false }, new LatencyStats(), { context: supplier });
    const typed = 'formatTotal(orders, "EUR");\n  }\n';
    let text = current;
    let previous = engine.promptFor({ uri: 'file:///shop/src/report.ts', text, offset: text.length });
    let appendOnly = 0;
    for (const ch of typed) {
      text += ch;
      ctx.changeDocument('src/report.ts', text, []);
      const next = engine.promptFor({ uri: 'file:///shop/src/report.ts', text, offset: text.length });
      assert.deepEqual(next.block.tokens, previous.block.tokens, `the block did not move at ${JSON.stringify(ch)}`);
      let common = 0;
      while (common < previous.tokens.length && previous.tokens[common] === next.tokens[common]) common++;
      if (next.tokens.length - common <= 4) appendOnly++;
      previous = next;
    }
    assert.ok(appendOnly >= typed.length - 2, `${appendOnly} of ${typed.length} keystrokes prefilled ≤ 4 tokens`);
    ctx.dispose();
  });
});

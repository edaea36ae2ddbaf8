// PSM prompts with the cursor line's typed text in the middle: the prompt is the plain PSM prompt of
// the text without that part (cursor at the line start) followed by the part's tokens, checked as
// text against an independent assembly; typing along a line keeps every token up to the middle, where
// plain PSM loses the whole suffix at each keystroke (in the engine too); healing takes back the middle's last token only.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadCompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import { buildPrompt, type PromptOptions } from '../../server/src/completion/prompt';
import { buildTypedMiddlePrompt, MIDDLE_JUMP_CHARS, MIDDLE_RESERVE_TOKENS } from '../../server/src/completion/psm-middle';
import { type FimTemplate, resolveFimTemplate } from '../../server/src/model/fim';
import { Tokenizer } from '../../server/src/model/tokenizer';
import { parseSettings } from '../../server/src/lsp/settings';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';
import { CODE_CORPUS, makeTinyTokenizerJson } from '../helpers/tiny-tokenizer';

const tok = Tokenizer.fromJson(makeTinyTokenizerJson({ vocabSize: 1000 }));
const template: FimTemplate = resolveFimTemplate(tok)!;
const options: PromptOptions = { maxPrefixTokens: 400, maxSuffixTokens: 120, order: 'psm' };

const before = `${CODE_CORPUS}\nexport function total(values: number[]): number {\n  let sum = 0;\n`;
const line = '  for (const value of values) sum += value;';
const after = '\n  return sum;\n}\n\nexport const answer = total([1, 2, 3]);\n';

function lcp(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

const at = (typed: number, heal = false) =>
  buildTypedMiddlePrompt({ tokenizer: tok, template, text: before + line.slice(0, typed) + after, offset: before.length + typed, options, heal, cache: null });

describe('a PSM prompt with a typed middle', () => {
  it('is <pre> prefix <suf> suffix <mid> typed part, the prefix ending at a line start at or before the cursor line', () => {
    const typed = 20;
    const p = at(typed);
    assert.ok(p.built.prefix.endsWith('\n'), 'the prefix window ends at a line start');
    assert.ok(p.middle.endsWith(line.slice(0, typed)) && p.middle.length < MIDDLE_JUMP_CHARS + typed, 'the middle is at most a jump of lines and the typed part');
    assert.equal(p.built.suffix, after.slice(0, p.built.suffix.length), 'the suffix starts at the cursor');
    const text = tok.decode(p.tokens);
    assert.equal(text, `<|fim_prefix|>${p.built.prefix}<|fim_suffix|>${p.built.suffix}<|fim_middle|>${p.middle}`);
    assert.equal(p.built.prefix + p.middle, (before + line.slice(0, typed)).slice(-(p.built.prefix.length + p.middle.length)), 'prefix and middle are the text before the cursor');
    assert.ok(p.built.prefixTokens.length <= options.maxPrefixTokens - MIDDLE_RESERVE_TOKENS, 'the middle has its room in the context');
  });

  it('only appends as a line is typed: every token before the middle stays; plain PSM recomputes the suffix each keystroke', () => {
    let typedKept = 0;
    let plainKept = 0;
    let keystrokes = 0;
    for (let typed = 2; typed <= line.length; typed++) {
      const [prev, next] = [at(typed - 1), at(typed)];
      const fixed = prev.tokens.length - tok.encode(prev.middle).length; // <pre> P <suf> S <mid>
      assert.ok(lcp(prev.tokens, next.tokens) >= fixed, `keystroke ${typed}: the prompt up to the middle is unchanged`);
      typedKept += lcp(prev.tokens, next.tokens) / prev.tokens.length;
      const plain = (n: number) => buildPrompt({ tokenizer: tok, template, text: before + line.slice(0, n) + after, offset: before.length + n, options, cache: null });
      const [a, b] = [plain(typed - 1), plain(typed)];
      plainKept += lcp(a.tokens, b.tokens) / a.tokens.length;
      assert.ok(lcp(a.tokens, b.tokens) < a.tokens.indexOf(template.suffixId) + 1 + a.suffixTokens.length, 'plain PSM: the suffix is recomputed');
      keystrokes++;
    }
    assert.ok(typedKept / keystrokes > plainKept / keystrokes, `kept ${typedKept / keystrokes} vs plain ${plainKept / keystrokes}`);
  });

  it('moves its anchor in jumps: typing several lines keeps the prompt up to the middle until the cursor line crosses a jump', () => {
    const lines = Array.from({ length: 24 }, (_, i) => `  sum += values[${i}] * ${i + 1};\n`).join('');
    let kept = 0;
    let recomputed = 0;
    for (let n = 1; n <= lines.length; n++) {
      const [prev, next] = [n - 1, n].map((k) =>
        buildTypedMiddlePrompt({ tokenizer: tok, template, text: before + lines.slice(0, k) + after, offset: before.length + k, options, heal: false, cache: null }),
      );
      const fixed = prev!.tokens.length - tok.encode(prev!.middle).length;
      if (lcp(prev!.tokens, next!.tokens) >= fixed) kept++;
      else recomputed++;
    }
    assert.ok(recomputed > 0, 'the anchor does move');
    assert.ok(recomputed <= Math.ceil(lines.length / MIDDLE_JUMP_CHARS) + 1, `the suffix was computed again ${recomputed} times over ${lines.split('\n').length - 1} lines typed`);
    assert.ok(kept > recomputed * 50);
  });

  it('heals the last middle token: the prompt plus the forced text is the unhealed prompt', () => {
    const plain = at(25);
    const healed = at(25, true);
    assert.ok(healed.forcedText.length > 0);
    assert.equal(tok.decode(healed.tokens) + healed.forcedText, tok.decode(plain.tokens));
    assert.deepEqual(healed.tokens, plain.tokens.slice(0, healed.tokens.length), 'only middle tokens are taken back');
    assert.ok(healed.tokens.length >= plain.tokens.length - tok.encode(plain.middle).length);
  });

  it('with nothing typed since the anchor has no middle and heals nothing', () => {
    const p = buildTypedMiddlePrompt({ tokenizer: tok, template, text: after, offset: 0, options, heal: true, cache: null });
    assert.equal(p.middle, '');
    assert.equal(p.forcedText, '');
    assert.equal(p.tokens.at(-1), template.middleId);
  });

  it('falls back to plain PSM for a cursor line longer than the middle reserve', () => {
    const long = `  const table = [${Array.from({ length: 200 }, (_, i) => i * 31).join(', ')}`;
    const text = before + long + after;
    const p = buildTypedMiddlePrompt({ tokenizer: tok, template, text, offset: before.length + long.length, options, heal: false, cache: null });
    assert.equal(p.middle, '');
    assert.equal(p.tokens.at(-1), template.middleId);
    assert.ok(p.built.prefix.endsWith(long.slice(-40)), 'the prefix runs to the cursor');
  });

  it('refuses SPM order', () => {
    assert.throws(() => buildTypedMiddlePrompt({ tokenizer: tok, template, text: 'x', offset: 1, options: { ...options, order: 'spm' }, heal: false }), /PSM/);
  });
});

describe('the engine under PSM', () => {
  it('computes only the middle tokens on a keystroke with psmTypedMiddle, and the whole suffix again without it', async () => {
    const root = tempDir('kiln-psm-');
    const dir = writeTinyCodeModel(join(root, 'model'), { fimOrders: ['psm'] });
    const model = await loadCompletionModel(dir, { fimOrder: 'auto', quantization: 'none' }, { executionProvider: 'cpu', threads: 1, cacheDir: join(root, 'cache') });
    try {
      assert.equal(model.order, 'psm');
      const computed = async (psmTypedMiddle: boolean) => {
        const settings = { ...parseSettings({ maxTokens: 4, completionMode: 'line', psmTypedMiddle }).settings, speculate: false, prewarm: false };
        const engine = new CompletionEngine(model, settings, new LatencyStats());
        const typed = 20;
        const ask = (n: number, uri: string) => engine.complete({ uri, text: before + line.slice(0, n) + after, offset: before.length + n });
        await ask(typed, `file:///${psmTypedMiddle}-1.ts`); // other documents: no typing-through, the same pool
        return (await ask(typed + 1, `file:///${psmTypedMiddle}-2.ts`)).timings;
      };
      const typedMiddle = await computed(true);
      const plain = await computed(false);
      assert.ok(typedMiddle.prefillComputed <= 3, `typed middle: ${typedMiddle.prefillComputed} computed`);
      assert.ok(plain.prefillComputed > model.tokenizer.encode(after).length, `plain PSM: ${plain.prefillComputed} computed, the suffix again`);
    } finally {
      await model.loaded.session.release();
      rmSync(root, { recursive: true, force: true });
    }
  });
});

// The prefill budget's arithmetic: rates measured from the runtime's forwards (short prefill runs
// ignored), the full prompt kept when its uncached part fits the time limit less the line reserve,
// a shorter window never under the minimum otherwise, and a window grown until it holds the minimum.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildAtLeastMinimum, MIN_SHORT_WINDOW_TOKENS, shortWindowTokens, ThroughputMeter } from '../../server/src/completion/prefill-budget';

function meter(prefillMsPerToken: number, decodeMsPerStep: number): ThroughputMeter {
  const m = new ThroughputMeter();
  m.observe({ kind: 'prefill', priority: 'foreground', tokens: 100, ms: 100 * prefillMsPerToken });
  m.observe({ kind: 'prefill', priority: 'foreground', tokens: 2, ms: 1000 }); // a keystroke's few tokens: overhead, ignored
  m.observe({ kind: 'decode', priority: 'foreground', tokens: 1, ms: decodeMsPerStep });
  m.observe({ kind: 'decode', priority: 'foreground', tokens: 4, ms: 1000 }); // a batched step: not one row's rate
  return m;
}

describe('the prefill budget', () => {
  const question = { promptTokens: 1100, prefixTokens: 1000, cachedTokens: 0, timeLimitMs: 2000, reserveTokens: 16 };

  it('measures ms per prefill token and per decode step', () => {
    const m = meter(2, 30);
    assert.equal(m.prefillMs(500), 1000);
    assert.equal(m.decodeMs(16), 480);
    assert.equal(m.tokensWithin(1000), 500);
    assert.equal(new ThroughputMeter().prefillMs(10), undefined, 'nothing measured yet');
  });

  it('keeps the full prompt when no rate is known or its uncached part fits', () => {
    assert.equal(shortWindowTokens(question, new ThroughputMeter()), undefined);
    assert.equal(shortWindowTokens(question, meter(1, 30)), undefined, '1,100 ms of prefill + 480 ms of line fit 2 s');
    assert.equal(shortWindowTokens({ ...question, cachedTokens: 900 }, meter(2.4, 30)), undefined, 'what the cache holds is not prefilled');
  });

  it('answers from the window that fits the time limit less the line reserve, never under the minimum', () => {
    // 2 s − 16 × 30 ms = 1,520 ms at 2.4 ms/token: 633 tokens, 100 of them suffix and markers
    assert.equal(shortWindowTokens(question, meter(2.4, 30)), 533);
    assert.equal(shortWindowTokens(question, meter(20, 30)), MIN_SHORT_WINDOW_TOKENS);
    assert.equal(shortWindowTokens({ ...question, prefixTokens: 200, promptTokens: 300 }, meter(20, 30)), undefined, 'already shorter than the minimum');
    // decode alone eats the limit (a loaded machine): 3 uncached tokens are still cheaper than any window
    assert.equal(shortWindowTokens({ ...question, cachedTokens: 1097 }, meter(2.4, 200)), undefined, 'nothing to gain from a window');
    assert.equal(shortWindowTokens({ ...question, cachedTokens: 800 }, meter(20, 30)), undefined, '300 uncached tokens: cheaper than 256 + 100');
  });

  it('before any decode step is measured, keeps back the shortest prefill run for each step of the line', () => {
    const m = new ThroughputMeter();
    m.observe({ kind: 'prefill', priority: 'background', tokens: 64, ms: 160 }); // a pre-warm's first chunk, 2.5 ms/token
    assert.equal(m.decodeMs(16), 0, 'the time limit is not stretched by a bound');
    assert.equal(m.reserveMs(16), 16 * 160);
    // 1,100 tokens at 2.5 ms would not fit anyway; 800 uncached (2,000 ms) would fit 2 s without a reserve
    assert.equal(shortWindowTokens({ ...question, cachedTokens: 300 }, m), MIN_SHORT_WINDOW_TOKENS);
    m.observe({ kind: 'prefill', priority: 'background', tokens: 128, ms: 300 });
    assert.equal(m.reserveMs(1), 160, 'the run of fewest tokens bounds a step');
    m.observe({ kind: 'decode', priority: 'foreground', tokens: 1, ms: 30 });
    assert.equal(m.reserveMs(16), 480, 'a measured step replaces the bound');
    assert.equal(shortWindowTokens({ ...question, cachedTokens: 300 }, m), 519, '2 s − 480 ms at the averaged 2.453 ms/token: 619 tokens less 100 around the window');
  });

  it('grows a window cut short by its jump points until it holds the minimum, up to the full window', () => {
    const built: number[] = [];
    const build = (budget: number) => {
      built.push(budget);
      return { prefixTokens: Math.floor(budget * 0.8) };
    };
    assert.ok(buildAtLeastMinimum(256, 1000, build).prefixTokens >= MIN_SHORT_WINDOW_TOKENS);
    assert.equal(built[0], 256);
    assert.equal(buildAtLeastMinimum(256, 280, (b) => ({ prefixTokens: Math.floor(b * 0.8) })).prefixTokens, 224, 'never past the full window');
  });
});

// Rolling latency statistics on known data: nearest-rank percentiles, window eviction, reuse ratio.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LatencyStats, percentile } from '../../server/src/telemetry/latency-stats';
import { Stopwatch, type CompletionTimings } from '../../server/src/telemetry/timings';

function answer(totalMs: number, over: Partial<CompletionTimings> = {}): CompletionTimings {
  return { queueMs: 0, tokenizeMs: 0, prefillMs: 0, prefillComputed: 0, prefillReused: 0, decodeMs: 0, decodeTokens: 0, totalMs, source: 'model', ...over };
}

describe('percentile (nearest rank)', () => {
  it('returns observed values at rank ceil(p * n)', () => {
    const data = Array.from({ length: 20 }, (_, i) => i + 1); // 1..20
    assert.equal(percentile(data, 50), 10);
    assert.equal(percentile(data, 95), 19);
    assert.equal(percentile(data, 100), 20);
    assert.equal(percentile(data, 0), 1);
    assert.equal(percentile([15, 20, 35, 40, 50], 30), 20);
    assert.equal(percentile([7], 95), 7);
    assert.equal(percentile([], 50), null);
  });
});

describe('LatencyStats', () => {
  it('is all nulls and zero counts when empty, and JSON round-trips', () => {
    const snap = new LatencyStats(10).snapshot();
    assert.equal(snap.count, 0);
    assert.equal(snap.p50Ms, null);
    assert.equal(snap.reuseRatio, null);
    assert.equal(snap.decodeTokensPerSecond, null);
    assert.deepEqual(snap.bySource, { model: 0, 'typing-through': 0, 'answer-cache': 0, speculation: 0 });
    assert.deepEqual(JSON.parse(JSON.stringify(snap)), snap);
  });

  it('computes percentiles regardless of arrival order', () => {
    const stats = new LatencyStats();
    for (const ms of [100, 30, 70, 10, 90, 50, 20, 80, 40, 60]) stats.record(answer(ms));
    const snap = stats.snapshot();
    assert.equal(snap.p50Ms, 50);
    assert.equal(snap.p95Ms, 100);
    assert.equal(snap.lastMs, 60);
    assert.equal(snap.count, 10);
  });

  it('keeps only the last `window` answers', () => {
    const stats = new LatencyStats(5);
    for (let ms = 1; ms <= 12; ms++) stats.record(answer(ms * 10));
    const snap = stats.snapshot();
    assert.equal(snap.count, 5);
    assert.equal(snap.recorded, 12);
    assert.equal(snap.p50Ms, 100); // window holds 80..120
    assert.equal(percentile([80, 90, 100, 110, 120], 95), snap.p95Ms);
    assert.equal(snap.lastMs, 120);
  });

  it('computes reuse ratio and decode rate over model answers only, counts by source', () => {
    const stats = new LatencyStats();
    stats.record(answer(40, { prefillReused: 90, prefillComputed: 10, decodeTokens: 20, decodeMs: 100 }));
    stats.record(answer(60, { prefillReused: 10, prefillComputed: 90, decodeTokens: 10, decodeMs: 100 }));
    stats.record(answer(1, { source: 'typing-through', prefillReused: 0, prefillComputed: 1000 }));
    stats.record(answer(2, { source: 'answer-cache' }));
    const snap = stats.snapshot();
    assert.equal(snap.reuseRatio, 0.5);
    assert.equal(snap.decodeTokensPerSecond, 150);
    assert.deepEqual(snap.bySource, { model: 2, 'typing-through': 1, 'answer-cache': 1, speculation: 0 });
  });

  it('takes p50/p95 over model-computed answers only; typing-through, cache and speculation are counted apart', () => {
    const stats = new LatencyStats();
    // a typical session: most keystrokes type through the suggestion shown, at ~0 ms
    for (const ms of [30, 50, 70]) stats.record(answer(ms));
    for (let i = 0; i < 6; i++) stats.record(answer(0, { source: 'typing-through' }));
    stats.record(answer(0.2, { source: 'answer-cache' }));
    stats.record(answer(0.1, { source: 'speculation' }));
    const snap = stats.snapshot();
    assert.equal(snap.p50Ms, 50, 'the middle model answer, not one of the 0 ms answers');
    assert.equal(snap.p95Ms, 70);
    assert.deepEqual(snap.bySource, { model: 3, 'typing-through': 6, 'answer-cache': 1, speculation: 1 });
    assert.equal(snap.count, 11);
    assert.equal(snap.lastMs, 0.1, 'the last answer, whatever its source');
  });

  it('has no percentiles while only answers without model work are in the window', () => {
    const stats = new LatencyStats(3);
    stats.record(answer(80));
    for (let i = 0; i < 3; i++) stats.record(answer(0, { source: 'typing-through' }));
    const snap = stats.snapshot();
    assert.equal(snap.p50Ms, null);
    assert.equal(snap.p95Ms, null);
    assert.equal(snap.bySource['typing-through'], 3);
  });

  it('drops the reuse of answers that left the window', () => {
    const stats = new LatencyStats(2);
    stats.record(answer(10, { prefillReused: 100, prefillComputed: 0 }));
    stats.record(answer(10, { prefillReused: 0, prefillComputed: 100 }));
    stats.record(answer(10, { prefillReused: 0, prefillComputed: 100 }));
    assert.equal(stats.snapshot().reuseRatio, 0);
  });
});

describe('Stopwatch', () => {
  it('adds each lap to its name and tracks the total', () => {
    let now = 1000;
    const sw = new Stopwatch(() => now);
    now += 5;
    assert.equal(sw.lap('tokenize'), 5);
    now += 20;
    sw.lap('prefill');
    now += 3;
    sw.lap('decode');
    now += 4;
    sw.lap('decode');
    assert.deepEqual(sw.laps(), { tokenize: 5, prefill: 20, decode: 7 });
    assert.equal(sw.get('decode'), 7);
    assert.equal(sw.get('queue'), 0);
    assert.equal(sw.elapsed(), 32);
  });
});

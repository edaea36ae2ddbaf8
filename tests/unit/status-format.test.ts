// The status bar's text and tooltip lines (client/src/format.ts, free of `vscode`): the latency shown
// is the p50 of model-computed answers, and the tooltip says what share of answers was typed through.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { statsLines, statusBarText, typedThroughShare } from '../../client/src/format';
import type { KilnStats, ServerStatus } from '../../server/src/protocol';

const READY: ServerStatus = { state: 'ready', model: 'kiln-code-4m', executionProvider: 'cpu' };
const MB = 2 ** 20;

function stats(over: Partial<KilnStats>): KilnStats {
  return {
    state: 'ready',
    answers: 0,
    answersBySource: { model: 0, 'typing-through': 0, 'answer-cache': 0, speculation: 0 },
    memory: { weightBytes: 40 * MB, kvBytes: 8 * MB, rssBytes: 312 * MB },
    ...over,
  };
}

describe('statusBarText', () => {
  it('shows the model p50, not the ~0 ms of the last typed-through answer', () => {
    const s = stats({ p50Ms: 38.4, p95Ms: 90, lastLatencyMs: 0, answers: 10, answersBySource: { model: 4, 'typing-through': 6, 'answer-cache': 0, speculation: 0 } });
    assert.equal(statusBarText(READY, s, true), '$(zap) 38 ms · 312 MB · CPU');
  });

  it("says 'ready' until a model-computed answer exists", () => {
    const s = stats({ lastLatencyMs: 0, answers: 3, answersBySource: { model: 0, 'typing-through': 3, 'answer-cache': 0, speculation: 0 } });
    assert.equal(statusBarText(READY, s, true), '$(zap) ready · 312 MB · CPU');
    assert.equal(statusBarText(READY, undefined, true), '$(zap) ready · CPU');
  });
});

describe('typedThroughShare and the tooltip lines', () => {
  it('gives the share of recent answers typed through, and nothing before any answer', () => {
    assert.equal(typedThroughShare(stats({ answersBySource: { model: 2, 'typing-through': 6, 'answer-cache': 1, speculation: 1 } })), 0.6);
    assert.equal(typedThroughShare(stats({})), undefined);
    assert.equal(typedThroughShare(stats({ answersBySource: { model: 5 } })), 0, 'a source missing from the record counts as none');
  });

  it('names the model-computed sample behind the percentiles and the share typed through', () => {
    const s = stats({ p50Ms: 38, p95Ms: 1500, answers: 250, answersBySource: { model: 4, 'typing-through': 15, 'answer-cache': 1, speculation: 0 } });
    const lines = statsLines(READY, s);
    assert.ok(lines.includes('Latency: p50 38 ms, p95 1.5 s over the last 4 model-computed answers'), lines.join('\n'));
    assert.ok(lines.includes('Typed through: 75% of recent answers came from a suggestion already shown (no model work)'), lines.join('\n'));
    assert.ok(lines.includes('Answers: model 4, typing-through 15, answer-cache 1'), lines.join('\n'));
  });

  it('leaves both lines out before any answer', () => {
    const lines = statsLines(READY, stats({}));
    assert.ok(!lines.some((l) => l.startsWith('Latency') || l.startsWith('Typed through')), lines.join('\n'));
  });
});

describe('a remote backend in the status bar', () => {
  const REMOTE: ServerStatus = { ...READY, backend: 'llamacpp http://gpu-box:8080' };
  const last = {
    queueMs: 0,
    tokenizeMs: 1,
    prefillMs: 0,
    prefillComputed: 0,
    prefillReused: 0,
    decodeMs: 80,
    decodeTokens: 6,
    totalMs: 85,
    source: 'model' as const,
    remote: {
      backend: 'llamacpp',
      requestMs: 80,
      firstPieceMs: 31,
      stoppedEarly: true,
      server: { promptMs: 12.4, promptTokens: 300, cachedTokens: 290, predictedMs: 40, predictedTokens: 6 },
    },
  };

  it('says "remote" with the remote latency, instead of local memory and the execution provider', () => {
    assert.equal(statusBarText(REMOTE, stats({ p50Ms: 85, backend: REMOTE.backend, last }), true), '$(zap) 85 ms · remote');
    assert.equal(statusBarText({ ...REMOTE, message: "Kiln's remote backend … is unreachable" }, stats({ p50Ms: 85 }), true), '$(warning) 85 ms · remote');
  });

  it("lists the backend and the server's own timings, and no local memory", () => {
    const lines = statsLines(REMOTE, stats({ p50Ms: 85, backend: REMOTE.backend, last }));
    assert.ok(
      lines.some((l) => l.startsWith('Backend: remote — llamacpp http://gpu-box:8080')),
      lines.join('\n'),
    );
    assert.ok(
      lines.includes('Remote (last answer): request 80 ms, first piece 31 ms, stopped early by Kiln; server: prompt 300 tokens 12 ms, 290 cached, generated 6 tokens 40 ms'),
      lines.join('\n'),
    );
    assert.ok(!lines.some((l) => l.startsWith('Memory') || l.startsWith('Execution provider')), lines.join('\n'));
  });
});

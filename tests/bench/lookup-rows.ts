// The keystroke bench's lookup-decoding rows (`--lookup`): the trace through one engine with
// `lookupDecoding` off and one per draft length with it on, interleaved per keystroke (the order
// rotating), each row keeping its own KV pool across the trace. Every keystroke's suggestion is
// compared with the off row's; acceptance (accepted / drafted) and tokens per decode forward come
// from the engines' counters. Random weights draft almost nothing that the model then picks.
import { performance } from 'node:perf_hooks';
import type { CompletionModel } from '../../server/src/completion/completion-model';
import { CompletionEngine } from '../../server/src/completion/engine';
import type { KilnSettings } from '../../server/src/lsp/settings';
import { LatencyStats } from '../../server/src/telemetry/latency-stats';
import { round } from './bench-stats';
import { distribution, type Keystroke } from './keystroke-trace';

/** Decode tokens from which a suggestion counts as long (the separate p50 of those keystrokes). */
const LONG = 8;

export interface LookupRowsInput {
  model: CompletionModel;
  trace: readonly Keystroke[];
  settings: KilnSettings;
  /** One lookup row each: draft length k and the shortest n-gram matched. */
  drafts: readonly { maxDraft: number; minNgram: number }[];
  log: (line: string) => void;
}

interface Row {
  name: string;
  engine: CompletionEngine;
  ms: number[];
  differing: number[];
}

export async function lookupRows(input: LookupRowsInput) {
  const { model, trace, settings } = input;
  const rows: Row[] = [
    { name: 'lookup off', engine: new CompletionEngine(model, { ...settings, lookupDecoding: false }, new LatencyStats()), ms: [], differing: [] },
    ...input.drafts.map((d) => ({
      name: `lookup k=${d.maxDraft} n>=${d.minNgram}`,
      engine: new CompletionEngine(model, { ...settings, lookupDecoding: true }, new LatencyStats(), { lookupDraft: d }),
      ms: [],
      differing: [],
    })),
  ];
  const decodeTokens: number[] = [];
  const started = performance.now();
  for (const [i, k] of trace.entries()) {
    const items = new Map<Row, string>();
    for (let j = 0; j < rows.length; j++) {
      const row = rows[(i + j) % rows.length]!;
      const uri = `file:///bench/${row.name}/${i}/jobs.ts`; // a new document each: the model path
      const t0 = performance.now();
      const answer = await row.engine.complete({ uri, text: k.text, offset: k.offset });
      row.ms.push(performance.now() - t0);
      row.engine.forgetDocument(uri);
      if (answer.timings.source !== 'model') throw new Error(`keystroke ${i}: ${row.name} answered from ${answer.timings.source}`);
      items.set(row, answer.items[0] ?? '');
      if (row === rows[0]) decodeTokens.push(answer.timings.decodeTokens);
    }
    for (const row of rows.slice(1)) if (items.get(row) !== items.get(rows[0]!)) row.differing.push(i);
    if ((i + 1) % 200 === 0) input.log(`  lookup rows: ${i + 1}/${trace.length} keystrokes (${Math.round((performance.now() - started) / 1000)} s)`);
  }
  const off = distribution(rows[0]!.ms);
  // the keystrokes whose suggestion took LONG decode tokens or more: where drafts have room to pay
  const long = decodeTokens.flatMap((n, i) => (n >= LONG ? [i] : []));
  const offLong = distribution(long.map((i) => rows[0]!.ms[i]!));
  return {
    keystrokes: trace.length,
    decodeTokens: distribution(decodeTokens),
    rows: Object.fromEntries(
      rows.map((row) => {
        const latencyMs = distribution(row.ms);
        const s = row.engine.lookupStats;
        const lookup =
          row === rows[0]
            ? {}
            : {
                acceptance: round(s.accepted / Math.max(1, s.drafted), 4),
                tokensPerForward: round(s.tokens / Math.max(1, s.forwards), 3),
                drafted: s.drafted,
                accepted: s.accepted,
                forwards: s.forwards,
              };
        const longMs = distribution(long.map((i) => row.ms[i]!));
        return [
          row.name,
          {
            latencyMs,
            longSuggestionMs: { ...longMs, p50OverOff: round(longMs.p50 / offLong.p50, 4) },
            p50OverOff: round(latencyMs.p50 / off.p50, 4),
            p95OverOff: round(latencyMs.p95 / off.p95, 4),
            ...lookup,
            differingSuggestions: row.differing.length,
            firstDiffering: row.differing.slice(0, 10),
          },
        ];
      }),
    ),
    target: 'a lookup row p50OverOff <= 0.75 with differingSuggestions 0',
  };
}

// `kiln complete <file> --line L --col C`: one completion from the same engine the server uses.
import { readFileSync } from 'node:fs';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { loadCompletionModel } from '../completion/completion-model';
import { CompletionEngine } from '../completion/engine';
import { defaultModelPath } from '../default-model';
import { DEFAULT_SETTINGS, parseSettings } from '../lsp/settings';
import { automaticThreads } from '../runtime/threads';
import { LatencyStats } from '../telemetry/latency-stats';
import { MODEL_OPTIONS, parseCommandArgs, parseModelOptions, parseNonNegativeInt, parseQuantization, UsageError, withUsage } from './cli-args';

const USAGE =
  'usage: kiln complete <file> --line L --col C [--model DIR] [--json] [--mode line|block|auto] [--max-tokens N] [--candidates N] [--ep auto|cpu|webgpu|cuda] [--threads N] [--cache DIR] [--quantization auto|none|int8|int4]\n' +
  '  L and C are 1-based; C counts UTF-16 code units, as VS Code does';

export async function runComplete(args: string[], out: (text: string) => void): Promise<number> {
  const parsed = withUsage(USAGE, () => {
    const { values, positionals } = parseCommandArgs(args, {
      ...MODEL_OPTIONS,
      line: { type: 'string' },
      col: { type: 'string' },
      model: { type: 'string' },
      mode: { type: 'string' },
      'max-tokens': { type: 'string' },
      candidates: { type: 'string' },
    });
    if (positionals.length !== 1) throw new UsageError('expected one file');
    const line = parseNonNegativeInt('line', values.line, 0);
    const col = parseNonNegativeInt('col', values.col, 0);
    if (line < 1 || col < 1) throw new UsageError('--line and --col are required and 1-based');
    const model = values.model ?? defaultModelPath();
    if (!model) throw new UsageError('no --model given and no embedded model under models/');
    const raw: Record<string, unknown> = { completionMode: values.mode ?? 'auto' };
    if (values['max-tokens'] !== undefined) raw.maxTokens = Number(values['max-tokens']);
    raw.candidates = values.candidates === undefined ? 1 : Number(values.candidates);
    const update = parseSettings(raw, DEFAULT_SETTINGS);
    if (update.problems.length) throw new UsageError(update.problems.join('\n'));
    return {
      file: positionals[0]!,
      line,
      col,
      model,
      json: values.json === true,
      runtime: parseModelOptions(values),
      quantization: parseQuantization(values.quantization),
      settings: { ...update.settings, speculate: false },
    };
  });
  const text = readFileSync(parsed.file, 'utf8');
  const doc = TextDocument.create(`file://${parsed.file}`, 'plaintext', 1, text);
  if (parsed.line > doc.lineCount) throw new RangeError(`--line ${parsed.line} is past the end of ${parsed.file} (${doc.lineCount} lines)`);
  const offset = doc.offsetAt({ line: parsed.line - 1, character: parsed.col - 1 });
  const model = await loadCompletionModel(
    parsed.model,
    { fimOrder: parsed.settings.fimOrder, quantization: parsed.quantization },
    { ...parsed.runtime, threads: parsed.runtime.threads || automaticThreads() },
  );
  try {
    const engine = new CompletionEngine(model, parsed.settings, new LatencyStats());
    const answer = await engine.complete({ uri: doc.uri, text, offset, explicit: parsed.settings.candidates > 1 });
    if (parsed.json) {
      out(
        JSON.stringify({ completion: answer.items[0] ?? '', items: answer.items, timings: answer.timings, model: parsed.model, executionProvider: model.loaded.session.provider }),
      );
    } else {
      out(answer.items[0] ?? '');
    }
  } finally {
    await model.loaded.session.release();
  }
  return 0;
}

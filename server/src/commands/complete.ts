// `kiln complete <file> --line L --col C`: one completion from the same engine the server uses.
import { readFileSync } from 'node:fs';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { loadCompletionModel } from '../completion/completion-model';
import { CompletionEngine } from '../completion/engine';
import { defaultModelPath } from '../default-model';
import { DEFAULT_SETTINGS, parseSettings } from '../lsp/settings';
import { BACKEND_API_KEY_ENV } from '../protocol';
import { createTextBackend } from '../remote/backend-settings';
import { automaticThreads } from '../runtime/threads';
import { LatencyStats } from '../telemetry/latency-stats';
import { MODEL_OPTIONS, parseCommandArgs, parseModelOptions, parseNonNegativeInt, parseQuantization, UsageError, withUsage } from './cli-args';

const USAGE =
  'usage: kiln complete <file> --line L --col C [--model DIR] [--json] [--mode line|block|auto] [--max-tokens N] [--candidates N] [--ep auto|cpu|webgpu|cuda] [--threads N] [--cache DIR] [--quantization auto|none|int8|int4]\n' +
  '                     [--backend local|openai|llamacpp|ollama --backend-url URL [--backend-model NAME]]\n' +
  '  L and C are 1-based; C counts UTF-16 code units, as VS Code does. A remote backend gets the prompt\n' +
  `  Kiln builds with --model's tokenizer and FIM template; its API key is read from ${BACKEND_API_KEY_ENV}`;

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
      backend: { type: 'string' },
      'backend-url': { type: 'string' },
      'backend-model': { type: 'string' },
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
    // --backend-url alone would silently complete locally: the user meant a remote server
    if (values.backend === undefined && (values['backend-url'] !== undefined || values['backend-model'] !== undefined))
      throw new UsageError('--backend-url and --backend-model need --backend openai|llamacpp|ollama');
    if (values.backend !== undefined || values['backend-url'] !== undefined || values['backend-model'] !== undefined) {
      raw.backend = { kind: values.backend ?? 'local', url: values['backend-url'] ?? '', model: values['backend-model'] ?? '' };
    }
    const update = parseSettings(raw, DEFAULT_SETTINGS);
    if (update.problems.length) throw new UsageError(update.problems.join('\n'));
    let remote: ReturnType<typeof createTextBackend>;
    try {
      remote = createTextBackend(update.settings.backend, { apiKey: process.env[BACKEND_API_KEY_ENV] });
    } catch (err) {
      throw new UsageError((err as Error).message.replace(/"kiln\.backend\.(\w+)"/g, (_, k: string) => `--backend${k === 'kind' ? '' : `-${k}`}`));
    }
    return {
      file: positionals[0]!,
      line,
      col,
      model,
      json: values.json === true,
      runtime: parseModelOptions(values),
      quantization: parseQuantization(values.quantization),
      settings: { ...update.settings, speculate: false },
      remote,
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
    let failure: unknown;
    const remote = parsed.remote && { backend: parsed.remote, fallbackToLocal: false, onOutcome: (err: unknown) => (failure = err) };
    const engine = new CompletionEngine(model, parsed.settings, new LatencyStats(), { remote });
    const answer = await engine.complete({ uri: doc.uri, text, offset, explicit: parsed.settings.candidates > 1 });
    if (failure) throw new Error(`the remote backend ${parsed.remote!.label} ${(failure as Error).message}`);
    if (parsed.json) {
      out(
        JSON.stringify({
          completion: answer.items[0] ?? '',
          items: answer.items,
          timings: answer.timings,
          model: parsed.model,
          executionProvider: model.loaded.session.provider,
          ...(parsed.remote ? { backend: parsed.remote.label } : {}),
        }),
      );
    } else {
      out(answer.items[0] ?? '');
    }
  } finally {
    await model.loaded.session.release();
  }
  return 0;
}

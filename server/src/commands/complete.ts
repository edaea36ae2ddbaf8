// `kiln complete <file> --line L --col C`: one completion from the same engine the server uses.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { loadCompletionModel } from '../completion/completion-model';
import { CompletionEngine } from '../completion/engine';
import { defaultModelPath } from '../default-model';
import { DEFAULT_SETTINGS, parseSettings } from '../lsp/settings';
import { BACKEND_API_KEY_ENV } from '../protocol';
import { createTextBackend } from '../remote/backend-settings';
import { automaticThreads } from '../runtime/threads';
import { LatencyStats } from '../telemetry/latency-stats';
import { parseContextSources } from '../context/snippet';
import { commandContext } from '../dataset/workspace-context';
import { MODEL_OPTIONS, parseCommandArgs, parseModelOptions, parseNonNegativeInt, parseQuantization, UsageError, withUsage } from './cli-args';

const USAGE =
  'usage: kiln complete <file> --line L --col C [--model DIR] [--json] [--mode line|block|auto] [--max-tokens N] [--candidates N] [--ep auto|cpu|webgpu|cuda] [--threads N] [--cache DIR] [--quantization auto|none|int8|int4] [--workspace ROOT [--context all|none|SOURCE,…]]\n' +
  '                     [--backend local|openai|llamacpp|ollama --backend-url URL [--backend-model NAME]]\n' +
  '  L and C are 1-based; C counts UTF-16 code units, as VS Code does;\n' +
  '  --workspace adds the context block the editor builds for the file opened in that workspace (sources: imports, edits, viewed, similar);\n' +
  "  --json also prints the prompt's token ids and the block's snippets. A remote backend gets the prompt\n" +
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
      workspace: { type: 'string' },
      context: { type: 'string' },
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
    if (values.context !== undefined && values.workspace === undefined) throw new UsageError('--context needs --workspace');
    if (values.context !== undefined) {
      const sources = parseSourcesOrUsage(values.context);
      raw['context.sources'] = sources;
      raw['context.enabled'] = sources.length > 0;
    }
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
      workspace: values.workspace,
      remote,
    };
  });
  const text = readFileSync(parsed.file, 'utf8');
  const uri = parsed.workspace === undefined ? `file://${parsed.file}` : pathToFileURL(resolve(parsed.file)).href;
  const doc = TextDocument.create(uri, 'plaintext', 1, text);
  if (parsed.line > doc.lineCount) throw new RangeError(`--line ${parsed.line} is past the end of ${parsed.file} (${doc.lineCount} lines)`);
  const offset = doc.offsetAt({ line: parsed.line - 1, character: parsed.col - 1 });
  const model = await loadCompletionModel(
    parsed.model,
    { fimOrder: parsed.settings.fimOrder, quantization: parsed.quantization },
    { ...parsed.runtime, threads: parsed.runtime.threads || automaticThreads() },
  );
  // the editor's state when the file has just been opened in the workspace: every file indexed, this one open
  const workspace = parsed.workspace === undefined ? undefined : await commandContext(parsed.workspace);
  try {
    const path = workspace?.pathOf(parsed.file);
    if (workspace !== undefined && path === undefined) throw new UsageError(`${parsed.file} is not inside the workspace ${parsed.workspace}`);
    if (workspace !== undefined && path !== undefined) {
      workspace.context.openDocument(path, text);
      await workspace.context.settled();
    }
    let failure: unknown;
    const remote = parsed.remote && { backend: parsed.remote, fallbackToLocal: false, onOutcome: (err: unknown) => (failure = err) };
    const engine = new CompletionEngine(model, parsed.settings, new LatencyStats(), { remote, ...(workspace === undefined ? {} : { context: workspace.supplier() }) });
    const prompt = engine.promptFor({ uri: doc.uri, text, offset });
    const answer = await engine.complete({ uri: doc.uri, text, offset, explicit: parsed.settings.candidates > 1 });
    if (failure) throw new Error(`the remote backend ${parsed.remote!.label} ${(failure as Error).message}`);
    if (parsed.json) {
      const snippets = prompt.block.snippets.map((s) => ({ filename: s.path, text: s.text, source: s.source }));
      out(
        JSON.stringify({
          completion: answer.items[0] ?? '',
          items: answer.items,
          timings: answer.timings,
          model: parsed.model,
          executionProvider: model.loaded.session.provider,
          prompt: { tokens: prompt.tokens, snippets },
          ...(parsed.remote ? { backend: parsed.remote.label } : {}),
        }),
      );
    } else {
      out(answer.items[0] ?? '');
    }
  } finally {
    workspace?.dispose();
    await model.loaded.session.release();
  }
  return 0;
}

function parseSourcesOrUsage(spec: string) {
  try {
    return parseContextSources(spec);
  } catch (err) {
    throw new UsageError(`--context: ${(err as Error).message}`);
  }
}

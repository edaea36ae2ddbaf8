#!/usr/bin/env node
// `kiln <command>`: the command line over the same engine the language server uses.
import { runComplete } from './commands/complete';
import { runFinetuneCommand } from './commands/finetune';
import { runEval } from './commands/eval';
import { runModelCache } from './commands/model-cache';
import { runModelDownload } from './commands/model-download';
import { runModelInfo } from './commands/model-info';
import { runModelInit } from './commands/model-init';
import { runModelLogprobs } from './commands/model-logprobs';
import { runModelQuantize } from './commands/model-quantize';
import { UsageError } from './commands/cli-args';
import { runServe } from './commands/serve';
import { runTokenizerTrain } from './commands/tokenizer-train';
import { runExportCommand } from './model/export/export-command';

const USAGE = `usage: kiln <command>
  complete <file> --line L --col C [--json]    one inline completion (same engine as the server)
  serve --stdio | --node-ipc                   the language server
  finetune <workspace> [--mode lora|full]      adapt the model to a repository; reports the gain
  eval <dir> [--adapter DIR] [--json]          validation loss and next-line exact match on files
  model info <dir> [--json]                    config, parameters, weight bytes, execution provider
  model logprobs <dir> --tokens 1,2,3 [--out F] log-probabilities at every position (logprobs-v1 JSON)
  model download <owner/name> [--revision R]   fetch a Hugging Face checkpoint (resumable, verified)
  model init <dir> --tokenizer DIR [--hidden N]  a freshly initialised model to pretrain
  model quantize <dir> [--eval DIR] [--bits 4,8] int4/int8 weights; measures the quality cost, records it in kiln.json
  model cache [--clean | --max-gb N]           the built graphs (sizes, adapters, last use); remove them
  export <dir> --format gguf --out FILE         GGUF v3 for llama.cpp and Ollama
  tokenizer train <corpus> --vocab N --out DIR  train Kiln's byte-level BPE (tokenizer.json); --measure <dir> for bytes/token`;

type Command = (args: string[], out: (text: string) => void) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  complete: runComplete,
  serve: (args) => runServe(args),
  finetune: runFinetuneCommand,
  eval: runEval,
  'model info': runModelInfo,
  'model logprobs': runModelLogprobs,
  'model download': runModelDownload,
  'model init': runModelInit,
  'model quantize': runModelQuantize,
  'model cache': runModelCache,
  export: (args) => runExportCommand(args),
  'tokenizer train': runTokenizerTrain,
};

async function main(argv: string[]): Promise<number> {
  const out = (text: string) => process.stdout.write(`${text}\n`);
  const two = argv.slice(0, 2).join(' ');
  const [name, rest] = COMMANDS[two] ? [two, argv.slice(2)] : [argv[0] ?? '', argv.slice(1)];
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`${name ? `unknown command "${argv.slice(0, 2).join(' ')}"\n` : ''}${USAGE}\n`);
    return 2;
  }
  try {
    return await command(rest, out);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`kiln ${name}: ${err.message}\n`);
      return 2;
    }
    // Expected failures (bad files, bad ids, no provider) print one line; KILN_DEBUG=1 shows the stack.
    const detail = process.env.KILN_DEBUG ? ((err as Error).stack ?? String(err)) : ((err as Error).message ?? String(err));
    process.stderr.write(`kiln ${name}: ${detail}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code; // let stdout drain instead of exiting mid-write
  },
  (err: unknown) => {
    process.stderr.write(`kiln: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

// `kiln serve --stdio | --node-ipc`: the language server, for editors other than VS Code and for tests.
import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import { startKilnServer } from '../lsp/server';
import { UsageError } from './cli-args';

export function runServe(args: string[]): Promise<number> {
  if (!args.some((a) => a === '--stdio' || a === '--node-ipc' || a.startsWith('--socket=') || a.startsWith('--pipe='))) {
    throw new UsageError('usage: kiln serve --stdio | --node-ipc | --socket=PORT | --pipe=NAME');
  }
  // With --stdio, stdout carries the protocol: route stray console output to stderr.
  const toStderr = (...parts: unknown[]) => process.stderr.write(`${parts.map(String).join(' ')}\n`);
  console.log = toStderr;
  console.info = toStderr;
  startKilnServer(createConnection(ProposedFeatures.all));
  return new Promise<number>(() => {}); // runs until the client says exit
}

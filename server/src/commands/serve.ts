// `kiln serve --stdio | --node-ipc | --socket=PORT | --pipe=NAME`: the language server, for editors
// other than VS Code and for tests. Byte streams are read with Kiln's bounded reader; a framing error
// ends the process with one line on stderr, so the client sees a crash and restarts the server
// instead of talking to a server that can no longer understand it.
import { Console } from 'node:console';
import { connect } from 'node:net';
import { createConnection, IPCMessageReader, IPCMessageWriter, type MessageReader, type MessageWriter, ProposedFeatures, StreamMessageWriter } from 'vscode-languageserver/node';
import { BoundedMessageReader, FramingError } from '../lsp/bounded-reader';
import { createLifecycleGate } from '../lsp/lifecycle-gate';
import { startKilnServer } from '../lsp/server';
import { UsageError } from './cli-args';

const USAGE = 'usage: kiln serve --stdio | --node-ipc | --socket=PORT | --pipe=NAME';

interface Transport {
  reader: MessageReader;
  writer: MessageWriter;
}

/** The transport the command line names, as vscode-languageclient passes it. */
export function openTransport(args: string[]): Transport {
  for (const arg of args) {
    if (arg === '--stdio') return { reader: new BoundedMessageReader(process.stdin), writer: new StreamMessageWriter(process.stdout) };
    if (arg === '--node-ipc') return { reader: new IPCMessageReader(process), writer: new IPCMessageWriter(process) };
    const [flag, value] = splitFlag(arg);
    if (flag === '--socket') {
      const port = Number(value);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--socket needs a port from 1 to 65535, got ${JSON.stringify(value)}\n${USAGE}`);
      const socket = connect(port, '127.0.0.1');
      return { reader: new BoundedMessageReader(socket), writer: new StreamMessageWriter(socket) };
    }
    if (flag === '--pipe') {
      if (!value) throw new UsageError(`--pipe needs a name\n${USAGE}`);
      const socket = connect(value);
      return { reader: new BoundedMessageReader(socket), writer: new StreamMessageWriter(socket) };
    }
  }
  throw new UsageError(USAGE);
}

function splitFlag(arg: string): [string, string | undefined] {
  const eq = arg.indexOf('=');
  return eq < 0 ? [arg, undefined] : [arg.slice(0, eq), arg.slice(eq + 1)];
}

/** With --stdio, stdout carries the protocol: every console method that would print there prints to stderr. */
function routeConsoleToStderr(): void {
  const toStderr = new Console({ stdout: process.stderr, stderr: process.stderr });
  for (const name of ['log', 'info', 'debug', 'dir', 'dirxml', 'table', 'count', 'countReset', 'group', 'groupCollapsed', 'groupEnd', 'time', 'timeLog', 'timeEnd'] as const) {
    (console as unknown as Record<string, unknown>)[name] = toStderr[name].bind(toStderr);
  }
}

export function runServe(args: string[]): Promise<number> {
  const { reader, writer } = openTransport(args);
  routeConsoleToStderr();
  const gate = createLifecycleGate(writer);
  reader.onError((error) => {
    if (!(error instanceof FramingError)) return;
    process.stderr.write(`kiln serve: protocol framing error: ${error.message}; exiting so that the client restarts the server\n`);
    process.exit(1);
  });
  // The input ended (the client is gone): exit as LSP's `exit` would, 0 only after `shutdown`.
  reader.onClose(() => process.exit(gate.shutdownRequested ? 0 : 1));
  startKilnServer(createConnection(ProposedFeatures.all, reader, writer, { messageStrategy: gate.strategy }));
  return new Promise<number>(() => {}); // runs until the client says exit
}

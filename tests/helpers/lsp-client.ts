// A real LSP client for the built Kiln server (`node dist/cli.js serve --stdio`), for integration
// tests: vscode-languageserver-protocol over the child's stdio, a settings object the client answers
// workspace/configuration from, the notifications the server sends, and a mirror of every open
// document so tests can edit incrementally and compute positions.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  type CancellationToken,
  ConfigurationRequest,
  createProtocolConnection,
  DidChangeConfigurationNotification,
  DidChangeTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  type InlineCompletionList,
  InlineCompletionRequest,
  LogMessageNotification,
  InlineCompletionTriggerKind,
  type Position,
  type ProtocolConnection,
  type Range,
  type ShowMessageParams,
  ShowMessageNotification,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-languageserver-protocol/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import {
  type FineTuneParams,
  type FineTuneSummary,
  type KilnInitializationOptions,
  KilnFineTuneRequest,
  KilnGetStatsRequest,
  KilnReloadModelRequest,
  type KilnStats,
  KilnStatsNotification,
  KilnStatusNotification,
  KilnTrainingProgressNotification,
  KilnPromptRequest,
  KilnVisibleRangesNotification,
  type PromptResult,
  type ServerStatus,
  type TrainingProgress,
} from '../../server/src/protocol';
import { CLI } from './built-cli';

export interface KilnClientOptions {
  /** The `kiln` configuration section, answered to workspace/configuration; change it with `configure`. */
  settings?: Record<string, unknown>;
  initializationOptions?: KilnInitializationOptions;
  /** The workspace folder's file URI (default none). */
  rootUri?: string;
}

/** Something the server sent, kept in arrival order; `waitFor` resolves on the first match. */
class Inbox<T> {
  readonly items: T[] = [];
  private waiters: { match: (item: T) => boolean; resolve: (item: T) => void }[] = [];

  push(item: T): void {
    this.items.push(item);
    for (const w of this.waiters.filter((w) => w.match(item))) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve(item);
    }
  }

  /** The first item (already received or still to come) at index `from` or later that matches. */
  waitFor(match: (item: T) => boolean, what: string, timeoutMs = 15_000, from = 0): Promise<T> {
    const seen = this.items.slice(from).find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const waiter = { match, resolve: (item: T) => (clearTimeout(timer), resolve(item)) };
      this.waiters.push(waiter);
    });
  }
}

export class KilnClient {
  readonly statuses = new Inbox<ServerStatus>();
  readonly stats = new Inbox<KilnStats>();
  readonly messages = new Inbox<ShowMessageParams>();
  readonly training = new Inbox<TrainingProgress>();
  /** The server's window/logMessage lines (its log). */
  readonly logs = new Inbox<string>();
  /** Every workspace/configuration request answered, counted, so `configure` knows it was pulled. */
  readonly configurationPulls = new Inbox<number>();
  /** The server's stderr (its logs go through the connection; this is for crashes). */
  stderr = '';
  private readonly documents = new Map<string, TextDocument>();
  private exited = false;

  private constructor(
    readonly process: ChildProcess,
    readonly connection: ProtocolConnection,
    public settings: Record<string, unknown>,
  ) {}

  /** Spawns the server, runs initialize/initialized, and waits for the first model load to end. */
  static async start(options: KilnClientOptions = {}): Promise<KilnClient> {
    const child = spawn(process.execPath, [CLI, 'serve', '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, KILN_DEBUG: '' } });
    const connection = createProtocolConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
    const client = new KilnClient(child, connection, { ...options.settings });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (client.stderr += d));
    child.on('exit', () => (client.exited = true));
    connection.onNotification(KilnStatusNotification.type, (s) => client.statuses.push(s));
    connection.onNotification(KilnStatsNotification.type, (s) => client.stats.push(s));
    connection.onNotification(ShowMessageNotification.type, (m) => client.messages.push(m));
    connection.onNotification(KilnTrainingProgressNotification.type, (p) => client.training.push(p));
    connection.onNotification(LogMessageNotification.type, (m) => client.logs.push(m.message));
    connection.onRequest(ConfigurationRequest.type, (params) => {
      client.configurationPulls.push(client.configurationPulls.items.length);
      return params.items.map((item) => (item.section === 'kiln' ? { ...client.settings } : null));
    });
    connection.listen();
    await connection.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: options.rootUri ?? null,
      ...(options.rootUri === undefined ? {} : { workspaceFolders: [{ uri: options.rootUri, name: 'workspace' }] }),
      capabilities: {
        workspace: { configuration: true, didChangeConfiguration: { dynamicRegistration: false } },
        textDocument: { synchronization: { dynamicRegistration: false }, inlineCompletion: { dynamicRegistration: false } },
        window: { showMessage: {} },
      },
      initializationOptions: options.initializationOptions ?? {},
    });
    await connection.sendNotification(InitializedNotification.type, {});
    await client.statuses.waitFor((s) => s.state === 'ready' || s.state === 'error', 'the first model load');
    return client;
  }

  /** Whether the server process has ended. */
  get hasExited(): boolean {
    return this.exited;
  }

  /** Replaces settings fields and tells the server; resolves once the server has pulled them. */
  async configure(patch: Record<string, unknown>): Promise<void> {
    this.settings = { ...this.settings, ...patch };
    const from = this.configurationPulls.items.length;
    await this.connection.sendNotification(DidChangeConfigurationNotification.type, { settings: null });
    await this.configurationPulls.waitFor(() => true, 'the server to pull the configuration', 15_000, from);
  }

  async open(uri: string, text: string, languageId = 'typescript'): Promise<TextDocument> {
    const doc = TextDocument.create(uri, languageId, 1, text);
    this.documents.set(uri, doc);
    await this.connection.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId, version: 1, text } });
    return doc;
  }

  /** The client's copy of an open document. */
  document(uri: string): TextDocument {
    const doc = this.documents.get(uri);
    if (!doc) throw new Error(`${uri} is not open`);
    return doc;
  }

  /** Sends incremental edits (applied in order, as LSP does) and updates the mirror. */
  async edit(uri: string, changes: { range: Range; text: string }[]): Promise<TextDocument> {
    const doc = this.document(uri);
    const version = doc.version + 1;
    TextDocument.update(doc, changes, version);
    await this.connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri, version }, contentChanges: changes });
    return doc;
  }

  /** Inserts `text` at char `offset` of the document; returns the position just after it. */
  async insert(uri: string, offset: number, text: string): Promise<Position> {
    const at = this.document(uri).positionAt(offset);
    const doc = await this.edit(uri, [{ range: { start: at, end: at }, text }]);
    return doc.positionAt(offset + text.length);
  }

  complete(uri: string, position: Position, options: { explicit?: boolean; token?: CancellationToken } = {}): Promise<InlineCompletionList | null> {
    const triggerKind = options.explicit ? InlineCompletionTriggerKind.Invoked : InlineCompletionTriggerKind.Automatic;
    const params = { textDocument: { uri }, position, context: { triggerKind } };
    return this.connection.sendRequest(InlineCompletionRequest.type, params, options.token) as Promise<InlineCompletionList | null>;
  }

  /** kiln/prompt: the prompt a completion at `position` would get (the server waits for its context to settle). */
  prompt(uri: string, position: Position): Promise<PromptResult> {
    return this.connection.sendRequest(KilnPromptRequest.type, { uri, position });
  }

  /** kiln/visibleRanges, as the extension sends it on scrolling. */
  async showRanges(uri: string, ranges: { start: number; end: number }[]): Promise<void> {
    await this.connection.sendNotification(KilnVisibleRangesNotification.type, { uri, ranges });
  }

  getStats(): Promise<KilnStats> {
    return this.connection.sendRequest(KilnGetStatsRequest.type);
  }

  /** kiln/fineTune; cancelling `token` sends $/cancelRequest (the server still answers, `cancelled: true`). */
  fineTune(params: FineTuneParams, token?: CancellationToken): Promise<FineTuneSummary> {
    return this.connection.sendRequest(KilnFineTuneRequest.type, params, token);
  }

  reloadModel(): Promise<ServerStatus> {
    return this.connection.sendRequest(KilnReloadModelRequest.type);
  }

  /** shutdown + exit, then waits for the process to end; kills it if it does not within the grace time. */
  async close(graceMs = 5_000): Promise<number | null> {
    if (this.exited) return this.process.exitCode;
    const ended = once(this.process, 'exit') as Promise<[number | null]>;
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    try {
      await this.connection.sendRequest(ShutdownRequest.type);
      await this.connection.sendNotification(ExitNotification.type);
    } catch {
      this.process.kill('SIGKILL'); // the connection is gone: nothing to shut down politely
    }
    const [code] = await ended;
    clearTimeout(timer);
    this.connection.dispose();
    return code;
  }

  /** Teardown for `after` hooks: never throws, never leaves the process behind. */
  async dispose(): Promise<void> {
    await this.close().catch(() => this.process.kill('SIGKILL'));
  }
}

/** The inserted texts of an answer (empty for null or no items). */
export function insertTexts(list: InlineCompletionList | null): string[] {
  return (list?.items ?? []).map((item) => (typeof item.insertText === 'string' ? item.insertText : item.insertText.value));
}

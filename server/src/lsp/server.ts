// Wires the language server: documents, settings, the model host, inline completions, custom
// requests and the stats notification. Nothing here writes to stdout; logs go through the connection.
import { type Connection, MessageType, ShowMessageNotification, TextDocuments, TextDocumentSyncKind } from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import {
  BACKEND_API_KEY_ENV,
  type KilnInitializationOptions,
  KilnCursorNotification,
  KilnGetStatsRequest,
  KilnReloadModelRequest,
  type KilnStats,
  KilnStatsNotification,
  KilnStatusNotification,
  KilnValidateModelRequest,
  KilnFineTuneRequest,
  KilnTrainingProgressNotification,
  KilnTrainingDataPreviewRequest,
  KilnPromptRequest,
  KilnVisibleRangesNotification,
  KilnExportDatasetRequest,
  type TrainingProgress,
} from '../protocol';
import { defaultModelPath } from '../default-model';
import { LatencyStats } from '../telemetry/latency-stats';
import type { CompletionTimings } from '../telemetry/timings';
import { throttle } from '../telemetry/throttle';
import { handleCursor } from './cursor-handler';
import { handleFineTune } from './fine-tune-handler';
import { handleInlineCompletion } from './inline-completion';
import { handleTrainingDataPreview } from './training-data-handler';
import { handleExportDataset } from './export-dataset-handler';
import { ModelHost } from './model-host';
import { invalidParams, parseFineTuneParams, parsePromptParams, parseValidateModelParams, parseVisibleRangesParams } from './params';
import { WorkspaceContext } from './workspace-context';
import { explainStatus } from './status-message';
import { DEFAULT_SETTINGS, type KilnSettings, needsReload, parseSettings } from './settings';
import { validateModelInWorker } from './model-worker-client';
import { TypingYield } from '../finetune/typing-yield';

const STATS_PUSH_MS = 250;

export function startKilnServer(connection: Connection): void {
  const workspace = new WorkspaceContext();
  let rootUri: string | undefined;
  // TextDocument.update sees each change's range: the edited lines the context's recent-edits source records
  const documents = new TextDocuments({
    create: TextDocument.create,
    update: (doc, changes, version) => {
      const next = TextDocument.update(doc, changes, version);
      workspace.changed(next.uri, next.getText(), changes);
      return next;
    },
  });
  const stats = new LatencyStats();
  let settings: KilnSettings = DEFAULT_SETTINGS;
  let lastAnswer: CompletionTimings | undefined;
  let canPullConfiguration = false;
  let init: KilnInitializationOptions = {};
  let training: TrainingProgress | undefined;
  const reported = new Set<string>(); // messages already shown to the user, so errors never loop
  let remoteProblem: string | undefined; // the remote backend's current failure, if any
  // The client passes the remote API key in the environment (from SecretStorage): read once and
  // removed, so no child process (git, the fine-tune) inherits it; never logged, never in settings.
  const backendApiKey = process.env[BACKEND_API_KEY_ENV] || undefined;
  delete process.env[BACKEND_API_KEY_ENV];
  const currentStatus = () => {
    // the backend in use now (it changes with the settings, not only with a load)
    const { backend: _, ...status } = explainStatus(host.serverStatus);
    const backend = host.remoteLabel;
    return { ...status, ...(backend ? { backend } : {}), ...(remoteProblem ? { message: remoteProblem } : {}) };
  };
  let lastCursor: unknown; // the last kiln/cursor: warmed again once a (re)loaded model is ready
  // A running fine-tune is held stopped while completions are asked for, and a short grace after.
  const typing = new TypingYield({ enabled: settings['fineTune.yieldToTyping'] });

  const log = (message: string) => connection.console.log(message);
  // window/showMessage (a notification): no reply to wait for, so a client that does not answer
  // window/showMessageRequest cannot turn a message into an unhandled rejection.
  const tell = (kind: 'error' | 'warning', message: string) => {
    if (reported.has(message)) return;
    reported.add(message);
    void connection.sendNotification(ShowMessageNotification.type, { type: kind === 'error' ? MessageType.Error : MessageType.Warning, message });
  };

  const collectStats = async (): Promise<KilnStats> => {
    const snap = stats.snapshot();
    const status = currentStatus();
    const engine = host.engine;
    return {
      state: status.state,
      message: status.message,
      model: status.model,
      adapter: status.adapter,
      executionProvider: status.executionProvider,
      backend: status.backend,
      lastLatencyMs: snap.lastMs ?? undefined,
      p50Ms: snap.p50Ms ?? undefined,
      p95Ms: snap.p95Ms ?? undefined,
      reuseRatio: snap.reuseRatio ?? undefined,
      decodeTokensPerSecond: snap.decodeTokensPerSecond ?? undefined,
      answers: snap.recorded,
      answersBySource: snap.bySource,
      training: training && { state: training.state, step: training.step, totalSteps: training.totalSteps, loss: training.loss },
      last: lastAnswer,
      memory: engine ? await engine.memory() : { weightBytes: 0, kvBytes: 0, rssBytes: process.memoryUsage.rss() },
      prewarm: engine?.prewarmStats(),
    };
  };
  const pushStats = throttle(() => {
    void collectStats().then((s) => connection.sendNotification(KilnStatsNotification.type, s));
  }, STATS_PUSH_MS);

  const host = new ModelHost({
    stats,
    log,
    onStatus: (status) => {
      void connection.sendNotification(KilnStatusNotification.type, currentStatus());
      if (status.state === 'error' && status.message) tell('error', status.message);
      if (status.state === 'ready' && lastCursor !== undefined) void handleCursor(lastCursor, { documents, host, log });
      log(`status: ${status.state}${status.message ? ` — ${status.message}` : ''}`);
      pushStats();
    },
    onAnswer: (timings) => {
      lastAnswer = timings;
      pushStats();
    },
    get defaultModelPath() {
      return init.defaultModelPath ?? defaultModelPath();
    },
    get cacheDir() {
      return init.cacheDir;
    },
    context: workspace.supplier,
    backendApiKey,
    onRemoteHealth: (message) => {
      if (message === remoteProblem) return;
      remoteProblem = message;
      void connection.sendNotification(KilnStatusNotification.type, currentStatus());
      if (message) {
        tell('warning', message);
        log(`remote backend: ${message}`);
      } else if (host.remoteLabel) log(`remote backend ${host.remoteLabel} answers`);
      pushStats();
    },
  });
  let contextStarted = false;

  const applySettings = async (raw: unknown, initial: boolean) => {
    const update = parseSettings(raw, settings);
    for (const p of update.problems) tell('warning', `Kiln settings: ${p}`);
    const previous = settings;
    settings = update.settings;
    typing.setEnabled(settings['fineTune.yieldToTyping']);
    if (settings['context.enabled'] && !contextStarted) {
      contextStarted = true; // indexing starts with the first settings that enable context, and then stays
      workspace.start(rootUri, log);
      for (const doc of documents.all()) workspace.opened(doc.uri, doc.getText());
    }
    if (initial || needsReload(previous, settings)) await host.load(settings);
    else {
      host.engine?.updateSettings(settings);
      const backend = host.remoteLabel;
      host.applyBackend(settings);
      if (host.remoteLabel !== backend) void connection.sendNotification(KilnStatusNotification.type, currentStatus());
    }
  };

  const pullSettings = async (): Promise<unknown> => (canPullConfiguration ? connection.workspace.getConfiguration('kiln') : undefined);

  connection.onInitialize((params) => {
    init = (params.initializationOptions ?? {}) as KilnInitializationOptions;
    canPullConfiguration = params.capabilities.workspace?.configuration === true;
    rootUri = params.workspaceFolders?.[0]?.uri ?? params.rootUri ?? undefined;
    return {
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        inlineCompletionProvider: true,
      },
      serverInfo: { name: 'kiln', version: '0.1.0' },
    };
  });

  connection.onInitialized(() => {
    void pullSettings()
      .catch(() => undefined)
      .then((raw) => applySettings(raw, true));
  });

  connection.onDidChangeConfiguration((change) => {
    const fromPush = (change.settings as { kiln?: unknown } | undefined)?.kiln;
    void pullSettings()
      .catch(() => fromPush)
      .then((raw) => applySettings(raw ?? fromPush, false));
  });

  connection.languages.inlineCompletion.on(async (params, token) => {
    const typed = typing.begin();
    try {
      return await handleInlineCompletion(params, token, documents, host);
    } finally {
      typed();
    }
  });
  connection.onRequest(KilnGetStatsRequest.type, () => collectStats());
  connection.onRequest(KilnReloadModelRequest.type, () => host.load(settings));
  connection.onRequest(KilnValidateModelRequest.type, (p) => validateModelInWorker(parseValidateModelParams(p).path));
  connection.onRequest(KilnFineTuneRequest.type, (params, token) =>
    handleFineTune(parseFineTuneParams(params), token, {
      modelPath: host.modelPath(settings),
      cacheDir: init.cacheDir,
      executionProvider: settings.executionProvider,
      typing,
      context: { sources: settings['context.enabled'] ? settings['context.sources'] : [], maxTokens: settings['context.maxTokens'] },
      progress: (p) => {
        training = { ...training, ...p, state: p.state };
        void connection.sendNotification(KilnTrainingProgressNotification.type, p);
        pushStats();
      },
    }),
  );
  connection.onRequest(KilnTrainingDataPreviewRequest.type, (params, token) =>
    handleTrainingDataPreview(params, token, { modelPath: host.modelPath(settings), cacheDir: init.cacheDir, log }),
  );
  connection.onNotification(KilnVisibleRangesNotification.type, (p) => {
    try {
      const { uri, ranges } = parseVisibleRangesParams(p);
      workspace.viewed(uri, ranges);
    } catch (err) {
      log(`kiln/visibleRanges ignored: ${(err as Error).message}`); // a notification has no reply to carry the error
    }
  });
  connection.onRequest(KilnPromptRequest.type, async (p) => {
    const params = parsePromptParams(p);
    await workspace.settled(); // the prompt once the context has read what it was waiting to read
    const doc = documents.get(params.uri);
    if (!doc) throw invalidParams(`Kiln has no open document ${params.uri}`);
    const engine = host.engine;
    if (!engine) return { tokens: [], snippets: [] };
    const prompt = engine.promptFor({ uri: doc.uri, text: doc.getText(), offset: doc.offsetAt(params.position) });
    return { tokens: prompt.tokens, snippets: prompt.block.snippets.map((s) => ({ filename: s.path, text: s.text, source: s.source })) };
  });
  documents.onDidOpen((e) => workspace.opened(e.document.uri, e.document.getText()));
  documents.onDidClose((e) => {
    host.engine?.forgetDocument(e.document.uri);
    workspace.closed(e.document.uri);
  });
  connection.onRequest(KilnExportDatasetRequest.type, (params, token) => handleExportDataset(params, token, { modelPath: host.modelPath(settings), cacheDir: init.cacheDir, log }));
  connection.onNotification(KilnCursorNotification.type, (params) => {
    lastCursor = params;
    void handleCursor(params, { documents, host, log });
  });
  connection.onShutdown(async () => {
    pushStats.cancel();
    typing.dispose(); // the training process is never left stopped
    workspace.dispose();
    await host.dispose();
  });

  documents.listen(connection);
  connection.listen();
}

// Every custom message between the Kiln client and server, typed once and imported by both sides.
// Inline completions themselves use LSP 3.18's textDocument/inlineCompletion; nothing custom there.
import { NotificationType, RequestType, RequestType0 } from 'vscode-languageserver-protocol';
import type { CompletionTimings, RemoteTimings } from './telemetry/timings';

export type { RemoteTimings };

/**
 * The environment variable the client starts the server with to pass the remote backend's API key
 * (from SecretStorage): never an LSP message, never a setting; the server removes it once read.
 */
export const BACKEND_API_KEY_ENV = 'KILN_BACKEND_API_KEY';

/** Passed by the client at initialize. */
export interface KilnInitializationOptions {
  /** The embedded model shipped with the extension, used when `kiln.modelPath` is empty. */
  defaultModelPath?: string;
  /** Where built ONNX graphs are cached (the extension's global storage). */
  cacheDir?: string;
}

export type ServerState = 'starting' | 'loading' | 'ready' | 'error';

export interface ServerStatus {
  state: ServerState;
  /** Why the server is in `error` (e.g. the model folder is missing), written for the user. */
  message?: string;
  model?: string;
  adapter?: string;
  executionProvider?: string;
  /** Precision of the model's matrices: fp32, int8 or int4 (see `kiln.quantization`). */
  weights?: string;
  /** Set when a remote backend the user chose computes the completions: its kind, URL and model. */
  backend?: string;
}

export interface MemoryFigures {
  weightBytes: number;
  kvBytes: number;
  rssBytes: number;
  vramBytes?: number;
}

/** What the status bar and the stats view show; pushed after answers (throttled). */
export interface KilnStats {
  state: ServerState;
  /** Why there are no suggestions yet (starting, loading) or at all (error), as in `ServerStatus`. */
  message?: string;
  model?: string;
  adapter?: string;
  executionProvider?: string;
  /** The remote backend computing the completions, as in `ServerStatus`; its timings are in `last.remote`. */
  backend?: string;
  /** The most recent answer's total latency, any source. */
  lastLatencyMs?: number;
  /** Latency percentiles of recent model-computed answers only; answers that skip model work are in answersBySource. */
  p50Ms?: number;
  p95Ms?: number;
  /** Reused / (reused + computed) prompt tokens over recent model answers. */
  reuseRatio?: number;
  decodeTokensPerSecond?: number;
  /** Answers since the server started. */
  answers: number;
  /** Recent answers (the window behind p50Ms/p95Ms) by source: `model`, `typing-through`, `answer-cache`, `speculation`. */
  answersBySource: Record<string, number>;
  /** The most recent answer's timings: its source and prefill (computed vs reused) and decode counts. */
  last?: CompletionTimings;
  memory?: MemoryFigures;
  /** Pre-warms (prompts prefilled at a cursor the client reported, before a keystroke) since the model loaded. */
  prewarm?: { started: number; finished: number; preempted: number; tokens: number };
  training?: { state: string; step?: number; totalSteps?: number; loss?: number };
}

export namespace KilnStatusNotification {
  export const type = new NotificationType<ServerStatus>('kiln/status');
}

export namespace KilnStatsNotification {
  export const type = new NotificationType<KilnStats>('kiln/stats');
}

/** Current stats on demand (the "Show Stats" command). */
export namespace KilnGetStatsRequest {
  export const type = new RequestType0<KilnStats, void>('kiln/getStats');
}

/** Reloads the model with the current settings (after a model switch or a crash of a load). */
export namespace KilnReloadModelRequest {
  export const type = new RequestType0<ServerStatus, void>('kiln/reloadModel');
}

export interface ValidateModelParams {
  path: string;
}
export interface ValidateModelResult {
  ok: boolean;
  message: string;
}

/** Checks a folder is a loadable model before the client switches `kiln.modelPath` to it. */
export namespace KilnValidateModelRequest {
  export const type = new RequestType<ValidateModelParams, ValidateModelResult, void>('kiln/validateModel');
}

/** What the client asks to fine-tune; unset fields take Kiln's defaults. */
export interface FineTuneParams {
  workspace: string;
  mode?: 'lora' | 'full';
  /** Wall-time budget of the whole run, evaluations included (`kiln.fineTune.minutes`); supersedes maxSteps, which then only caps it. */
  minutes?: number;
  maxSteps?: number;
  /** Files read from the workspace at most; the rest are reported as left out. */
  maxFiles?: number;
  rank?: number;
  learningRate?: number;
}

export interface FineTuneEvalFigures {
  exactMatch: number;
  editSimilarity: number;
  validationLoss: number;
  lines: number;
  files: number;
}

/** A paired difference (after − before) over the same held-out lines, with its 95% interval (NaN under two lines). */
export interface FineTuneGainFigure {
  mean: number;
  low: number;
  high: number;
}

export interface FineTuneGain {
  lines: number;
  exactMatch: FineTuneGainFigure;
  editSimilarity: FineTuneGainFigure;
}

export interface FineTuneSummary {
  /** The adapter folder (LoRA) or model folder (full) written, to switch to. */
  output?: string;
  kind: 'adapter' | 'model';
  cancelled: boolean;
  /** Why training ended: its schedule ran out, the time budget did, validation stopped improving, or a cancel. */
  endReason?: 'completed' | 'time' | 'early-stop' | 'cancelled';
  steps: number;
  bestStep: number;
  trainSeconds: number;
  /** The whole run's seconds, evaluations included (absent from servers older than it). */
  runSeconds?: number;
  trainFiles: number;
  validationFiles: number;
  before?: FineTuneEvalFigures;
  after?: FineTuneEvalFigures;
  gain?: FineTuneGain;
}

/** Runs "Fine-tune on this repository"; cancel with $/cancelRequest (the best result so far is kept). */
export namespace KilnFineTuneRequest {
  export const type = new RequestType<FineTuneParams, FineTuneSummary, void>('kiln/fineTune');
}

/** What "Show What Will Be Trained" asks for: the dataset a fine-tune of `workspace` would build. */
export interface TrainingDataPreviewParams {
  workspace: string;
  /** Files read from the workspace at most (`kiln.fineTune.maxFiles`); unset for Kiln's default. */
  maxFiles?: number;
  /** A folder the server may write the dump into (the extension's storage). */
  storageDir: string;
}

export interface TrainingDataPreviewResult {
  /** The dry-run report: files, tokens, exclusions with reasons, secret lines blanked per rule. */
  report: string;
  /** The file holding every example's decoded text. */
  dumpPath: string;
  examples: number;
  dumpBytes: number;
  trainFiles: number;
  validationFiles: number;
}

/** Builds the fine-tune dataset without training; cancel with $/cancelRequest. */
export namespace KilnTrainingDataPreviewRequest {
  export const type = new RequestType<TrainingDataPreviewParams, TrainingDataPreviewResult, void>('kiln/trainingDataPreview');
}

/** What "Export Training Data" asks for: the dataset a fine-tune of `workspace` would build, written for a trainer elsewhere. */
export interface ExportDatasetParams {
  workspace: string;
  /** Files read from the workspace at most (`kiln.fineTune.maxFiles`); unset for Kiln's default. */
  maxFiles?: number;
  /** An absolute folder: absent or empty, or replaced whole when `overwrite` is set. */
  out: string;
  overwrite?: boolean;
}

export interface ExportDatasetResult {
  out: string;
  trainExamples: number;
  validationExamples: number;
  trainFiles: number;
  validationFiles: number;
  excludedFiles: number;
  scrubbedLines: number;
  /** The lines `kiln finetune --export-dataset` prints: what was written and the torchrun command that trains on it. */
  summary: string;
}

/** Writes train.jsonl, validation.jsonl and manifest.json into `out` (nothing is trained); cancel with $/cancelRequest. */
export namespace KilnExportDatasetRequest {
  export const type = new RequestType<ExportDatasetParams, ExportDatasetResult, void>('kiln/exportDataset');
}

export interface TrainingProgress {
  state: 'running' | 'done' | 'cancelled' | 'failed';
  phase?: string;
  message?: string;
  step?: number;
  totalSteps?: number;
  loss?: number;
  validationLoss?: number;
  tokensPerSecond?: number;
  etaSeconds?: number;
}

/** Why the client reports a cursor: a document became the active editor, or its cursor moved and the user paused. */
export type CursorReason = 'focus' | 'move';

export interface CursorParams {
  textDocument: { uri: string };
  position: { line: number; character: number };
  reason: CursorReason;
}

/**
 * The user is at `position` and may type there (sent debounced, never per keystroke). The server
 * decides what to do with it: it pre-warms the prompt at that cursor as background work.
 */
export namespace KilnCursorNotification {
  export const type = new NotificationType<CursorParams>('kiln/cursor');
}

export namespace KilnTrainingProgressNotification {
  export const type = new NotificationType<TrainingProgress>('kiln/trainingProgress');
}

/** Client → server: the line ranges an editor shows of a document (the "recently viewed" context source). */
export interface VisibleRangesParams {
  uri: string;
  /** 0-based lines [start, end). */
  ranges: { start: number; end: number }[];
}

export namespace KilnVisibleRangesNotification {
  export const type = new NotificationType<VisibleRangesParams>('kiln/visibleRanges');
}

export interface PromptParams {
  uri: string;
  position: { line: number; character: number };
}

/** The prompt a completion at a position would get: its token ids and the context block's snippets. */
export interface PromptResult {
  tokens: number[];
  /** The block's snippets in block order ({filename, text}, as llama.cpp's `input_extra` takes them), with their source. */
  snippets: { filename: string; text: string; source: string }[];
}

/** The prompt at a position, for inspection and for the tests that compare it with `kiln complete --workspace`. */
export namespace KilnPromptRequest {
  export const type = new RequestType<PromptParams, PromptResult, void>('kiln/prompt');
}

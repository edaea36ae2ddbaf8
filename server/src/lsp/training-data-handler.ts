// kiln/trainingDataPreview ("Show What Will Be Trained"): builds the dataset a fine-tune of the
// workspace would train on — same options as kiln/fineTune, same code as `kiln finetune --dry-run
// --dump` — and returns the dry-run report with the path of the dump it wrote into the storage
// folder the client named. Nothing is trained.
import { createHash } from 'node:crypto';
import { isAbsolute, join, resolve } from 'node:path';
import { type CancellationToken, LSPErrorCodes, ResponseError } from 'vscode-languageserver/node';
import { datasetChoices, previewTrainingData } from '../dataset/training-preview';
import { defaultCacheDir } from '../model/graph/build-cache';
import type { TrainingDataPreviewParams, TrainingDataPreviewResult } from '../protocol';
import { fineTuneOptions } from './fine-tune-handler';

export interface TrainingDataContext {
  modelPath: string | undefined;
  cacheDir: string | undefined;
  log: (message: string) => void;
}

let building = false;

function failed(message: string): ResponseError<void> {
  return new ResponseError(LSPErrorCodes.RequestFailed, message);
}

/** The dump's file for a workspace: one per folder, replaced by each preview. */
export function dumpFileFor(storageDir: string, workspace: string): string {
  const key = createHash('sha256').update(resolve(workspace)).digest('hex').slice(0, 16);
  return join(storageDir, 'training-data', `${key}.txt`);
}

export async function handleTrainingDataPreview(params: TrainingDataPreviewParams, token: CancellationToken, ctx: TrainingDataContext): Promise<TrainingDataPreviewResult> {
  if (!ctx.modelPath) throw failed('no model is configured, so there is no tokenizer to show the training data with');
  if (typeof params?.workspace !== 'string' || !params.workspace) throw failed('showing the training data needs a workspace folder');
  if (typeof params.storageDir !== 'string' || !isAbsolute(params.storageDir)) throw failed(`storageDir must be an absolute folder, got ${JSON.stringify(params.storageDir)}`);
  if (building) throw failed('the training data is already being read; wait for it to finish');
  const options = fineTuneOptions(
    { workspace: params.workspace, ...(params.maxFiles === undefined ? {} : { maxFiles: params.maxFiles }) },
    ctx.modelPath,
    ctx.cacheDir ?? defaultCacheDir(),
  );
  building = true;
  const abort = new AbortController();
  const sub = token.onCancellationRequested(() => abort.abort(new Error('cancelled')));
  if (token.isCancellationRequested) abort.abort(new Error('cancelled'));
  try {
    const dumpPath = dumpFileFor(params.storageDir, options.workspace);
    const preview = await previewTrainingData({
      ...datasetChoices(options),
      threads: Math.max(2, options.threads),
      offThread: true,
      dumpPath,
      signal: abort.signal,
      onLog: (message) => ctx.log(`training data: ${message}`),
    });
    const files = preview.report.files;
    return {
      report: preview.text,
      dumpPath,
      examples: preview.dump?.examples ?? 0,
      dumpBytes: preview.dump?.bytes ?? 0,
      trainFiles: files.filter((f) => f.split === 'train').length,
      validationFiles: files.filter((f) => f.split === 'validation').length,
    };
  } catch (err) {
    if (err instanceof ResponseError) throw err;
    if (abort.signal.aborted) throw new ResponseError(LSPErrorCodes.RequestCancelled, 'cancelled');
    throw failed(`reading the training data failed: ${(err as Error).message}`);
  } finally {
    sub.dispose();
    building = false;
  }
}

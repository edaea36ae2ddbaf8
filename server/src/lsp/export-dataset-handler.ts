// kiln/exportDataset ("fine-tune elsewhere"): writes the dataset a fine-tune of the workspace would
// train on — same options as kiln/fineTune, same code as `kiln finetune --export-dataset` — into
// the folder the client chose, for recipes/train_lora.py on a cluster. Nothing is trained.
import { isAbsolute } from 'node:path';
import { type CancellationToken, LSPErrorCodes, ResponseError } from 'vscode-languageserver/node';
import { exportDataset } from '../dataset/export-dataset';
import { datasetChoices } from '../dataset/training-preview';
import { exportChoices, exportSummary } from '../finetune/export-choices';
import { defaultCacheDir } from '../model/graph/build-cache';
import type { ExportDatasetParams, ExportDatasetResult } from '../protocol';
import { fineTuneOptions } from './fine-tune-handler';

export interface ExportDatasetContext {
  modelPath: string | undefined;
  cacheDir: string | undefined;
  log: (message: string) => void;
}

let exporting = false;

function failed(message: string): ResponseError<void> {
  return new ResponseError(LSPErrorCodes.RequestFailed, message);
}

export async function handleExportDataset(params: ExportDatasetParams, token: CancellationToken, ctx: ExportDatasetContext): Promise<ExportDatasetResult> {
  if (!ctx.modelPath) throw failed('no model is configured, so there is no tokenizer to export the training data with');
  if (typeof params?.workspace !== 'string' || !params.workspace) throw failed('exporting the training data needs a workspace folder');
  if (typeof params.out !== 'string' || !isAbsolute(params.out)) throw failed(`out must be an absolute folder, got ${JSON.stringify(params.out)}`);
  if (params.overwrite !== undefined && typeof params.overwrite !== 'boolean') throw failed(`overwrite must be true or false, got ${JSON.stringify(params.overwrite)}`);
  if (exporting) throw failed('the training data is already being exported; wait for it to finish');
  const options = fineTuneOptions(
    { workspace: params.workspace, ...(params.maxFiles === undefined ? {} : { maxFiles: params.maxFiles }) },
    ctx.modelPath,
    ctx.cacheDir ?? defaultCacheDir(),
  );
  exporting = true;
  const abort = new AbortController();
  const sub = token.onCancellationRequested(() => abort.abort(new Error('cancelled')));
  if (token.isCancellationRequested) abort.abort(new Error('cancelled'));
  try {
    const result = await exportDataset({
      ...datasetChoices(options),
      ...exportChoices(options),
      // this process answers completions: tokenize on workers
      threads: Math.max(2, options.threads),
      offThread: true,
      out: params.out,
      overwrite: params.overwrite === true,
      signal: abort.signal,
      onLog: (message) => ctx.log(`export: ${message}`),
    });
    const m = result.manifest;
    return {
      out: result.out,
      trainExamples: m.split.train.examples,
      validationExamples: m.split.validation.examples,
      trainFiles: m.split.train.files,
      validationFiles: m.split.validation.files,
      excludedFiles: m.files.excluded,
      scrubbedLines: m.files.scrubbed_lines,
      summary: exportSummary(result),
    };
  } catch (err) {
    if (err instanceof ResponseError) throw err;
    if (abort.signal.aborted) throw new ResponseError(LSPErrorCodes.RequestCancelled, 'cancelled');
    throw failed(`exporting the training data failed: ${(err as Error).message}`);
  } finally {
    sub.dispose();
    exporting = false;
  }
}

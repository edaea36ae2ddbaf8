// What a dataset export takes from a fine-tune's options beyond the dataset's own choices (the
// LoRA the recipe should default to, Kiln's version, the hash cache), and the summary the CLI and
// the editor show: where it went and the command that trains on it. Shared by `kiln finetune
// --export-dataset` and kiln/exportDataset.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { version } from '../../../package.json';
import type { ExportDatasetOptions, ExportDatasetResult } from '../dataset/export-dataset';
import type { FineTuneOptions } from './fine-tune';
import { DEFAULT_LORA, FINE_TUNE_DEFAULTS } from './fine-tune-options';

export const KILN_VERSION: string = version;

/** The recipe trains LoRA only: a full-parameter choice exports Kiln's default LoRA as the recipe's defaults. */
export function exportChoices(options: FineTuneOptions): Pick<ExportDatasetOptions, 'cacheDir' | 'kilnVersion' | 'lora' | 'schedule'> {
  const lora = options.mode.kind === 'lora' ? options.mode : DEFAULT_LORA;
  return {
    cacheDir: options.cacheDir,
    kilnVersion: KILN_VERSION,
    lora: { rank: lora.rank, alpha: lora.alpha, targets: lora.targets, lr: options.mode.kind === 'lora' ? options.lr : FINE_TUNE_DEFAULTS.lr },
    schedule: { batchSize: options.batchSize, accumulation: options.accumulation, warmupSteps: options.warmupSteps, epochs: options.epochs, maxSteps: options.maxSteps },
  };
}

/** recipes/train_lora.py beside the bundle (dist/) or the sources; undefined in an installed VSIX, which leaves it out. */
export function recipePath(): string | undefined {
  return [resolve(__dirname, '..', 'recipes', 'train_lora.py'), resolve(__dirname, '..', '..', '..', 'recipes', 'train_lora.py')].find((p) => existsSync(p));
}

/** The command line that trains on an export. */
export function recipeCommand(out: string, modelDir: string): string {
  const recipe = recipePath();
  const script = recipe === undefined ? 'recipes/train_lora.py' : JSON.stringify(recipe);
  const where = recipe === undefined ? " (the recipe is in Kiln's source repository, not in the extension)" : '';
  return `torchrun --nproc_per_node <GPUs> ${script} --data ${JSON.stringify(out)} --model ${JSON.stringify(modelDir)} --out <adapter folder>${where}`;
}

export function exportSummary(r: ExportDatasetResult): string {
  const { train, validation } = r.manifest.split;
  return [
    `exported ${train.examples} train examples (${train.files} files, ${train.tokens} tokens) and ${validation.examples} validation examples (${validation.files} files) to ${r.out}`,
    `${r.manifest.files.excluded} files left out, ${r.manifest.files.scrubbed_lines} secret lines blanked; manifest: ${r.out}/manifest.json`,
    `train a LoRA adapter on it with: ${recipeCommand(r.out, r.manifest.base_model.path)}`,
  ].join('\n');
}

// Base checkpoint + PEFT LoRA adapter -> a standalone Hugging Face checkpoint with the adapter merged
// into the weights, loadable by Kiln, transformers or any GGUF converter without PEFT:
//
//   <out>/config.json          the base's, with torch_dtype "float32"
//   <out>/model.safetensors    every decoder tensor, F32 (merged projections carry the LoRA delta)
//   <out>/tokenizer.json, …    copied from the base folder as they are
//
// F32 whatever the base dtype: a delta of scale · B @ A is often below F16/BF16 resolution for a weight,
// and rounding the sum would lose part of the fine-tune. Written into a temp folder, then moved in.
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expectedTensors, openCheckpoint } from '../checkpoint';
import { ModelFileError } from '../errors';
import { MergedWeightSource } from '../merged-weights';
import { type TensorToWrite, writeSafetensors } from '../safetensors';
import { loadLoraAdapter, publishFolder } from './peft';

/** Files beside the weights that a checkpoint's users need; each is copied when the base has it. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
  'generation_config.json',
];

export interface MergedExportResult {
  dir: string;
  tensorCount: number;
  /** The adapter modules merged into the weights. */
  mergedTensors: number;
  /** sha256 of the adapter's safetensors (also recorded in model.safetensors' metadata). */
  adapterHash: string;
  copiedFiles: string[];
}

/**
 * Writes `outDir` as a merged checkpoint. `outDir` must not exist or be empty, so no stale shard index
 * or weights of an earlier export can sit beside the new ones. The merged tensors are held once in F32
 * while the file is written; the base is read one tensor at a time.
 */
export function exportMerged(baseDir: string, adapterDir: string, outDir: string): MergedExportResult {
  const out = resolve(outDir);
  if (existsSync(out) && (!statSync(out).isDirectory() || readdirSync(out).length > 0)) {
    throw new ModelFileError(out, 'output folder already exists and is not empty');
  }
  const ckpt = openCheckpoint(baseDir);
  try {
    const adapter = loadLoraAdapter(adapterDir, ckpt.config);
    const merged = new MergedWeightSource(ckpt.weights, adapter);
    const tensors: TensorToWrite[] = expectedTensors(ckpt.config).map((t) => ({ name: t.name, shape: t.shape, dtype: 'F32', data: merged.readFloat32(t.name) }));
    // openCheckpoint validated it; every field is kept (architectures, rope settings, token ids)
    const config = { ...(JSON.parse(readFileSync(join(baseDir, 'config.json'), 'utf8')) as object), torch_dtype: 'float32' };
    const copiedFiles = TOKENIZER_FILES.filter((f) => existsSync(join(baseDir, f)));
    publishFolder(out, (tmp) => {
      for (const f of copiedFiles) copyFileSync(join(baseDir, f), join(tmp, f));
      writeFileSync(join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
      writeSafetensors(join(tmp, 'model.safetensors'), tensors, { format: 'pt', kiln_merged_adapter_sha256: adapter.hash });
      return [...copiedFiles, 'config.json', 'model.safetensors'];
    });
    return { dir: out, tensorCount: tensors.length, mergedTensors: merged.adaptedNames().length, adapterHash: adapter.hash, copiedFiles };
  } finally {
    ckpt.weights.close();
  }
}

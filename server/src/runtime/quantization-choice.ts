// Which weights a model is loaded with: `kiln.quantization` / `--quantization`. Explicit choices
// apply everywhere; `auto` takes the precision that `kiln model quantize` measured and recommended
// for this model (recorded in its kiln.json), only on the CPU, where it pays, and only for the weights
// it measured: a merged adapter changes them, so a fine-tuned model runs as its gain was measured (fp32).
import type { QuantBits } from '../model/quantize';
import { loadModel, type LoadedModel, type LoadModelOptions } from './load-model';

export type Precision = 'none' | 'int8' | 'int4';
export type QuantizationSetting = 'auto' | Precision;
export const QUANTIZATION_SETTINGS: readonly QuantizationSetting[] = ['auto', 'none', 'int8', 'int4'];
export const PRECISIONS: readonly Precision[] = ['none', 'int8', 'int4'];

export function precisionBits(p: Precision): QuantBits | undefined {
  return p === 'int4' ? 4 : p === 'int8' ? 8 : undefined;
}

/**
 * Loads with the chosen quantization. Under `auto`, a recommended quantized graph is tried first;
 * if the session lands on a GPU provider, the model is reloaded unquantized on that provider.
 */
export async function loadWithQuantization(dir: string, setting: QuantizationSetting, recommended: Precision | undefined, options: LoadModelOptions): Promise<LoadedModel> {
  const precision = setting === 'auto' ? (options.adapterDir === undefined ? (recommended ?? 'none') : 'none') : setting;
  const quantization = precisionBits(precision);
  const loaded = await loadModel(dir, { ...options, quantization });
  if (setting !== 'auto' || !quantization || loaded.session.provider === 'cpu') return loaded;
  options.log?.(`${precision} is recommended for the CPU; the model runs on ${loaded.session.provider}, so it is loaded unquantized`);
  await loaded.session.release();
  return loadModel(dir, { ...options, executionProvider: loaded.session.provider, quantization: undefined });
}

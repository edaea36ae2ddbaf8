// Which weights a model is loaded with: `kiln.quantization` / `--quantization`. Explicit choices
// apply everywhere. `auto` takes, on the CPU only (where it pays), the precision `kiln model
// quantize` measured and recommended for this model (its kiln.json); with nothing measured, a model
// above ~100M parameters loads int8 and a smaller one as it is. A LoRA adapter runs as side products
// on the same quantized base (model/graph/lora-side-product.ts), so it no longer forces fp32.
import { loadModelConfig } from '../model/config';
import { parameterCount } from '../model/model-size';
import type { QuantBits } from '../model/quantize';
import { loadModel, type LoadedModel, type LoadModelOptions } from './load-model';

export type Precision = 'none' | 'int8' | 'int4';
export type QuantizationSetting = 'auto' | Precision;
export const QUANTIZATION_SETTINGS: readonly QuantizationSetting[] = ['auto', 'none', 'int8', 'int4'];
export const PRECISIONS: readonly Precision[] = ['none', 'int8', 'int4'];

/**
 * Above this many parameters an unmeasured model loads int8 under `auto`. Decode there is bound by
 * the weight bytes streamed per token: Qwen2.5-Coder-0.5B's shape decoded at 48–65 ms/token fp32 vs
 * 18–31 int8 and 20–27 int4, and 1.5B's at 124–164 / 49–54 / 57–65 (2 threads; ENVIRONMENT.md), so
 * int8 is the measured choice (int4 no faster, and it costs more quality). Below it (Kiln's own
 * 4M–25M models) fp32 decode is a few ms and quantization buys little.
 */
export const AUTO_QUANTIZE_MIN_PARAMETERS = 100e6;

export function precisionBits(p: Precision): QuantBits | undefined {
  return p === 'int4' ? 4 : p === 'int8' ? 8 : undefined;
}

/** What `auto` picks on the CPU: the measured recommendation, else int8 for a large model. */
export function automaticPrecision(recommended: Precision | undefined, parameters: () => number): Precision {
  if (recommended) return recommended;
  return parameters() > AUTO_QUANTIZE_MIN_PARAMETERS ? 'int8' : 'none';
}

/**
 * Loads with the chosen quantization. Under `auto`, a quantized graph is tried first; if the session
 * lands on a GPU provider, the model is reloaded unquantized on that provider.
 */
export async function loadWithQuantization(dir: string, setting: QuantizationSetting, recommended: Precision | undefined, options: LoadModelOptions): Promise<LoadedModel> {
  // config.json only (bounded in size); the weights are validated with the graph build
  const precision = setting === 'auto' ? automaticPrecision(recommended, () => parameterCount(loadModelConfig(dir))) : setting;
  const quantization = precisionBits(precision);
  const loaded = await loadModel(dir, { ...options, quantization });
  if (setting !== 'auto' || !quantization || loaded.session.provider === 'cpu') return loaded;
  options.log?.(`${precision} is chosen for the CPU; the model runs on ${loaded.session.provider}, so it is loaded unquantized`);
  await loaded.session.release();
  return loadModel(dir, { ...options, executionProvider: loaded.session.provider, quantization: undefined });
}

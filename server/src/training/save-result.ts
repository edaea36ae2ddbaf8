// The result of a run: a PEFT adapter (LoRA) or a complete HF checkpoint (full-parameter), plus
// kiln.json recording the FIM orders the model was trained on and the base's facts it keeps.
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectedTensors, openCheckpoint } from '../model/checkpoint';
import { toHfConfigJson } from '../model/config';
import type { FimOrder } from '../model/fim';
import type { TrainableParam, TrainingMode } from '../model/graph/training-graph';
import { saveLoraAdapter } from '../model/export/peft';
import { writeSafetensors } from '../model/safetensors';

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

/** Graph layout [in,out] back to HF [out,in]. */
function transposeBack(x: Float32Array, shape: number[]): Float32Array {
  const [rows, cols] = shape as [number, number]; // graph shape [in, out]
  const out = new Float32Array(x.length);
  for (let i = 0; i < rows; i++) for (let o = 0; o < cols; o++) out[o * rows + i] = x[i * cols + o]!;
  return out;
}

export interface TrainedModel {
  /** The adapter (LoRA) or model (full) folder to write. */
  outDir: string;
  /** The base model the run started from. */
  baseDir: string;
  mode: TrainingMode;
  params: readonly TrainableParam[];
  /** The trained values by parameter name. */
  values: ReadonlyMap<string, Float32Array>;
  /** The FIM orders the model was trained on (kiln.json). */
  fimOrders: FimOrder[];
  /**
   * The base's kiln.json facts a full-parameter result keeps: the context it was trained to (without
   * it, a model trained at 512 positions gets prompts up to its 1,024 and degenerates) and its
   * context-block format. Never the quantization measurement: it was taken on the old weights.
   */
  keptFacts?: { contextTokens?: number; contextFormat?: string };
}

export function saveTrainedModel({ outDir, baseDir, mode, params, values, fimOrders, keptFacts = {} }: TrainedModel): void {
  if (mode.kind === 'lora') {
    saveLoraAdapter(outDir, { baseModel: baseDir, mode, tensors: values, shapes: new Map(params.map((p) => [p.name, p.shape])) });
    return;
  }
  const base = openCheckpoint(baseDir);
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const byName = new Map(params.map((p) => [p.hfName, p]));
    const tensors = expectedTensors(base.config).map((t) => {
      const p = byName.get(t.name);
      const trained = p && values.get(p.name);
      const data = trained ? (p.transposed ? transposeBack(trained, p.shape) : trained) : base.weights.readFloat32(t.name);
      return { name: t.name, shape: t.shape, dtype: 'F32' as const, data };
    });
    writeSafetensors(join(tmp, 'model.safetensors'), tensors);
    writeFileSync(join(tmp, 'config.json'), JSON.stringify(toHfConfigJson(base.config), null, 2));
    for (const f of TOKENIZER_FILES) if (existsSync(join(baseDir, f))) copyFileSync(join(baseDir, f), join(tmp, f));
    const { contextTokens, contextFormat } = keptFacts;
    const facts = { fimOrders, ...(contextTokens === undefined ? {} : { contextTokens }), ...(contextFormat === undefined ? {} : { contextFormat }) };
    writeFileSync(join(tmp, 'kiln.json'), JSON.stringify(facts, null, 2));
    rmSync(outDir, { recursive: true, force: true });
    renameSync(tmp, outDir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    base.weights.close();
  }
}

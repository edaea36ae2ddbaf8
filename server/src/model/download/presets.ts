// The models "Kiln: Download Model…" and `kiln model download --list-presets` offer, with what each
// costs: download size, parameters and the memory it needs, computed from its published config.json
// (parameters × bytes per precision + the KV cache of the default prompt window), and the latency
// measured on this class of machine (preset-latency.ts). A preset whose architecture Kiln cannot
// build yet is listed with the reason, and refused before anything is downloaded.
import type { ModelConfig } from '../config';
import { kvCacheBytes, loadedWeightBytes, parameterCount } from '../model-size';
import { PRESET_LATENCY, type PresetLatency, type Range } from './preset-latency';

/** The published shape of a checkpoint (its config.json), for sizing it before it is downloaded. */
export type PublishedShape =
  | { architecture: 'llama-family'; config: ModelConfig }
  | {
      architecture: 'starcoder2';
      /** StarCoder2: LayerNorm with bias, GELU MLP c_fc/c_proj with biases, biased projections, sliding-window attention. */
      config: Pick<ModelConfig, 'hiddenSize' | 'numLayers' | 'numHeads' | 'numKvHeads' | 'headDim' | 'intermediateSize' | 'vocabSize' | 'maxPositions' | 'tieWordEmbeddings'>;
    };

export interface ModelPreset {
  id: string;
  label: string;
  repo: string;
  shape: PublishedShape;
  /** The model's license as its model card names it. */
  license: string;
  /** Why Kiln cannot run it yet; absent when it can. */
  unsupported?: string;
}

const qwen25Coder = (o: Pick<ModelConfig, 'hiddenSize' | 'numLayers' | 'numHeads' | 'intermediateSize'>): ModelConfig => ({
  modelType: 'qwen2',
  numKvHeads: 2,
  headDim: o.hiddenSize / o.numHeads,
  vocabSize: 151_936,
  maxPositions: 32_768,
  rmsNormEps: 1e-6,
  ropeTheta: 1_000_000,
  ropeLinearFactor: 1,
  tieWordEmbeddings: true,
  attentionBias: true,
  ...o,
});

/** Shapes from each repository's config.json. */
export const MODEL_PRESETS: readonly ModelPreset[] = [
  {
    id: 'qwen2.5-coder-0.5b',
    label: 'Qwen2.5-Coder 0.5B',
    repo: 'Qwen/Qwen2.5-Coder-0.5B',
    shape: { architecture: 'llama-family', config: qwen25Coder({ hiddenSize: 896, numLayers: 24, numHeads: 14, intermediateSize: 4864 }) },
    license: 'Apache-2.0',
  },
  {
    id: 'qwen2.5-coder-1.5b',
    label: 'Qwen2.5-Coder 1.5B',
    repo: 'Qwen/Qwen2.5-Coder-1.5B',
    shape: { architecture: 'llama-family', config: qwen25Coder({ hiddenSize: 1536, numLayers: 28, numHeads: 12, intermediateSize: 8960 }) },
    license: 'Apache-2.0',
  },
  {
    id: 'qwen2.5-coder-3b',
    label: 'Qwen2.5-Coder 3B',
    repo: 'Qwen/Qwen2.5-Coder-3B',
    shape: { architecture: 'llama-family', config: qwen25Coder({ hiddenSize: 2048, numLayers: 36, numHeads: 16, intermediateSize: 11008 }) },
    license: 'Qwen Research License (non-commercial)',
  },
  {
    id: 'deepseek-coder-1.3b-base',
    label: 'DeepSeek-Coder 1.3B base',
    repo: 'deepseek-ai/deepseek-coder-1.3b-base',
    shape: {
      architecture: 'llama-family',
      config: {
        modelType: 'llama',
        hiddenSize: 2048,
        numLayers: 24,
        numHeads: 16,
        numKvHeads: 16,
        headDim: 128,
        intermediateSize: 5504,
        vocabSize: 32_256,
        maxPositions: 16_384,
        rmsNormEps: 1e-6,
        ropeTheta: 100_000,
        ropeLinearFactor: 4,
        tieWordEmbeddings: false,
        attentionBias: false,
      },
    },
    license: 'DeepSeek License',
  },
  {
    id: 'starcoder2-3b',
    label: 'StarCoder2 3B',
    repo: 'bigcode/starcoder2-3b',
    shape: {
      architecture: 'starcoder2',
      config: {
        hiddenSize: 3072,
        numLayers: 30,
        numHeads: 24,
        numKvHeads: 2,
        headDim: 128,
        intermediateSize: 12_288,
        vocabSize: 49_152,
        maxPositions: 16_384,
        tieWordEmbeddings: true,
      },
    },
    license: 'BigCode OpenRAIL-M',
    unsupported:
      'StarCoder2 (the "starcoder2" architecture: LayerNorm with bias, a GELU c_fc/c_proj MLP, sliding-window attention) is not supported by Kiln yet; Kiln builds LLaMA-family models (llama, qwen2, mistral)',
  },
];

/** Tokens of the default prompt window plus completion (kiln.maxPrefixTokens + maxSuffixTokens + maxTokens). */
export const DEFAULT_WINDOW_TOKENS = 1024 + 256 + 64;

export interface PresetSizes {
  parameters: number;
  /** The published BF16 weights. */
  downloadBytes: number;
  /** Weights as Kiln loads them plus the KV cache of one default window, per precision. */
  memoryBytes: { int8: number; int4: number; fp32: number; fp16: number };
  kvBytes: number;
}

/** StarCoder2's parameters: biased projections and MLP, LayerNorms with bias (tied head in the 3B). */
function starcoder2Parameters(c: Extract<PublishedShape, { architecture: 'starcoder2' }>['config']): number {
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const attention = d * q + 2 * d * kv + q * d + q + 2 * kv + d;
  const mlp = 2 * d * c.intermediateSize + c.intermediateSize + d;
  return c.vocabSize * d + c.numLayers * (attention + mlp + 4 * d) + 2 * d + (c.tieWordEmbeddings ? 0 : c.vocabSize * d);
}

export function presetSizes(p: ModelPreset): PresetSizes {
  const s = p.shape;
  const parameters = s.architecture === 'llama-family' ? parameterCount(s.config) : starcoder2Parameters(s.config);
  const kvBytes = kvCacheBytes(s.config, DEFAULT_WINDOW_TOKENS);
  // an architecture Kiln cannot build yet is sized at plain bytes per parameter
  const weights = (precision: 'int8' | 'int4' | 'fp32' | 'fp16', perParameter: number) =>
    s.architecture === 'llama-family' ? loadedWeightBytes(s.config, precision) : parameters * perParameter;
  return {
    parameters,
    downloadBytes: parameters * 2,
    kvBytes,
    memoryBytes: {
      int8: weights('int8', 1 + 5 / 32) + kvBytes,
      int4: weights('int4', 0.5 + 4.5 / 32) + kvBytes,
      fp32: weights('fp32', 4) + kvBytes,
      fp16: weights('fp16', 2) + kvBytes,
    },
  };
}

export function findPreset(idOrRepo: string): ModelPreset | undefined {
  const key = idOrRepo.toLowerCase();
  return MODEL_PRESETS.find((p) => p.id === key || p.repo.toLowerCase() === key);
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;
const range = ([lo, hi]: Range) => (lo === hi ? `${lo}` : `${lo}–${hi}`);

/** One line on the measured latency, or says it was not measured yet. */
export function describeLatency(latency: PresetLatency | undefined): string {
  if (!latency) return 'latency on this class of machine not measured yet';
  const d = latency.decodeMsPerToken;
  const decode = (['int8', 'int4', 'fp32'] as const)
    .filter((k) => d[k])
    .map((k) => `${k} ${range(d[k]!)}`)
    .join(', ');
  const prefill = latency.prefill1kSeconds ? `; 1,000-token prefill ${range(latency.prefill1kSeconds)} s` : '';
  return `decode ms/token on 2 CPU threads: ${decode}${prefill}`;
}

/** What a picker or a listing shows for a preset: a title, a one-line summary and the details. */
export function describePreset(p: ModelPreset): { label: string; description: string; detail: string } {
  const s = presetSizes(p);
  const m = s.memoryBytes;
  const params = s.parameters >= 1e9 ? `${(s.parameters / 1e9).toFixed(2)}B` : `${(s.parameters / 1e6).toFixed(0)}M`;
  // a GPU loads the weights unquantized (fp32 in the editor): VRAM is the fp32 figure
  const memory = `RAM ≈ ${gb(m.int8)} int8 (the CPU default) · ${gb(m.int4)} int4 · ${gb(m.fp32)} fp32; VRAM ≈ ${gb(m.fp32)} (fp32; weights + KV of a ${DEFAULT_WINDOW_TOKENS}-token window)`;
  return {
    label: p.unsupported ? `${p.label} (not supported yet)` : p.label,
    description: `${p.repo} · ${params} parameters · ${gb(s.downloadBytes)} download · ${p.license}`,
    detail: p.unsupported ?? `${memory}; ${describeLatency(PRESET_LATENCY[p.id])}`,
  };
}

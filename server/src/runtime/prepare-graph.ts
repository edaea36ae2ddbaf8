// Validating a checkpoint folder and building its decoder graph (or finding the build in the cache):
// all synchronous JavaScript and file work, kept free of onnxruntime so it can run in a worker thread
// (lsp/model-worker.ts) and only the session creation stays with the caller.
import { performance } from 'node:perf_hooks';
import { openCheckpoint } from '../model/checkpoint';
import type { ModelConfig } from '../model/config';
import { loadLoraAdapter } from '../model/export/peft';
import { cachedGraph, defaultCacheDir, graphCacheKey, isCompleteBuild, weightsFileHash, writeBuildMeta } from '../model/graph/build-cache';
import { type AttentionPath, buildDecoderGraph, DECODER_BUILDER_VERSION, DECODER_OPSETS, type WeightType } from '../model/graph/decoder';
import { writeModel } from '../model/graph/write-model';
import { MergedWeightSource } from '../model/merged-weights';
import type { QuantBits } from '../model/quantize';

export const DEFAULT_ATTENTION: AttentionPath = 'plain';

export interface PrepareGraphOptions {
  attention?: AttentionPath;
  weightType?: WeightType;
  /** int4/int8 block-quantized Linear layers and head (MatMulNBits); absent = the weight type as is. */
  quantization?: QuantBits;
  /** Where built graphs are cached (the extension passes its global storage). */
  cacheDir?: string;
  /** A PEFT LoRA adapter folder merged into the weights as the graph is built (the adapter's hash joins the cache key). */
  adapterDir?: string;
  log?: (message: string) => void;
}

export interface AdapterIdentity {
  dir: string;
  /** sha256 of adapter_model.safetensors. */
  hash: string;
}

export interface PreparedGraph {
  config: ModelConfig;
  graphDir: string;
  weightBytes: number;
  cacheHit: boolean;
  buildMs: number;
  adapter?: AdapterIdentity;
}

/** Builds (or finds in the cache) the decoder graph for a checkpoint (and adapter); returns its folder. */
export function prepareGraph(modelDir: string, options: PrepareGraphOptions = {}): PreparedGraph {
  const t0 = performance.now();
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  // Plain attention is the default: on the CPU it measured faster than the fused GroupQueryAttention
  // path at prefill (≈2.4×) and no slower at decode (tests/bench/model.bench.ts, same run).
  const graphOptions = {
    attention: options.attention ?? DEFAULT_ATTENTION,
    weightType: options.weightType ?? 'float32',
    ...(options.quantization ? { quantization: options.quantization } : {}),
  };
  const checkpoint = openCheckpoint(modelDir);
  try {
    const adapter = options.adapterDir === undefined ? undefined : loadLoraAdapter(options.adapterDir, checkpoint.config);
    const identity = adapter && { dir: adapter.dir, hash: adapter.hash };
    const prepared = (graphDir: string, weightBytes: number, cacheHit: boolean): PreparedGraph => ({
      config: checkpoint.config,
      graphDir,
      weightBytes,
      cacheHit,
      buildMs: performance.now() - t0,
      adapter: identity,
    });
    const key = graphCacheKey({
      weightHashes: checkpoint.weights.files.map((f) => weightsFileHash(f.path, cacheDir)),
      config: checkpoint.config,
      // the scale too: lora_alpha lives in adapter_config.json, outside the hashed tensors
      options: adapter ? { ...graphOptions, adapter: { hash: adapter.hash, scale: adapter.scale } } : graphOptions,
      builderVersion: DECODER_BUILDER_VERSION,
    });
    const cached = cachedGraph(cacheDir, key);
    if (cached.meta) return prepared(cached.dir, cached.meta.weightBytes, true);
    const adapted = adapter ? ` with the adapter ${adapter.dir}` : '';
    const precision = options.quantization ? `int${options.quantization}` : graphOptions.weightType;
    options.log?.(`building the ${graphOptions.attention}/${precision} graph for ${modelDir}${adapted}`);
    const weights = adapter ? new MergedWeightSource(checkpoint.weights, adapter) : checkpoint.weights;
    const graph = buildDecoderGraph(checkpoint.config, weights, graphOptions);
    // The build record goes in before the folder is published, so a complete-looking folder is complete.
    const written = writeModel(graph, cached.dir, DECODER_OPSETS, {
      finish: (tmpDir, weightBytes) => writeBuildMeta(tmpDir, weightBytes, { modelDir, ...graphOptions, ...(identity ? { adapter: identity } : {}) }),
      isComplete: isCompleteBuild,
    });
    return prepared(cached.dir, written.weightBytes, false);
  } finally {
    checkpoint.weights.close();
  }
}

/** Prepares a graph somewhere (this thread, or a worker) and resolves to where it was written. */
export type GraphPreparer = (modelDir: string, options: PrepareGraphOptions) => Promise<PreparedGraph>;

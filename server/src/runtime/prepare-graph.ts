// Validating a checkpoint folder and building its decoder graph (or finding the build in the cache):
// all synchronous JavaScript and file work, kept free of onnxruntime so it can run in a worker thread
// (lsp/model-worker.ts) and only the session creation stays with the caller.
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { type Checkpoint, openCheckpoint } from '../model/checkpoint';
import { ParallelQuantizer } from '../model/graph/parallel-quantize';
import type { ModelConfig } from '../model/config';
import { loadLoraAdapter, splitLoraName } from '../model/export/peft';
import { adapterGraphFiles, readAdapterGraphRecord, writeAdapterGraph } from '../model/graph/adapter-graph';
import { cachedGraph, defaultCacheDir, graphCacheKey, isCompleteBuild, weightsFileHash, writeBuildMeta } from '../model/graph/build-cache';
import { INITIALIZER_PARAMS } from '../model/graph/decoder-parts';
import { type AttentionPath, buildDecoderGraph, DECODER_BUILDER_VERSION, DECODER_OPSETS, type DecoderGraphOptions, type WeightType } from '../model/graph/decoder';
import { DEFAULT_GRAPH_CACHE_LIMIT_BYTES, markGraphUsed, pruneGraphCache } from '../model/graph/graph-cache';
import { adapterParams } from '../model/graph/lora-side-product';
import { MODEL_FILE, writeModel } from '../model/graph/write-model';
import type { QuantBits } from '../model/quantize';

/** Bump when an adapter graph changes while the base graph does not (it joins the adapter's cache key). */
const ADAPTER_GRAPH_VERSION = 1;

export const DEFAULT_ATTENTION: AttentionPath = 'plain';

export interface PrepareGraphOptions {
  attention?: AttentionPath;
  weightType?: WeightType;
  /** int4/int8 block-quantized Linear layers and head (MatMulNBits); absent = the weight type as is. */
  quantization?: QuantBits;
  /** Where built graphs are cached (the extension passes its global storage). */
  cacheDir?: string;
  /**
   * A PEFT LoRA adapter folder, applied as side products on the base graph (any precision) and
   * written beside it, sharing its weights (the adapter's hash joins the cache key).
   */
  adapterDir?: string;
  /** The graph cache's size cap: after a build, least recently used graphs go until it fits. */
  cacheLimitBytes?: number;
  /** Graph folders in use elsewhere in this process (the model being replaced): never pruned. */
  keepGraphDirs?: string[];
  log?: (message: string) => void;
}

export interface AdapterIdentity {
  dir: string;
  /** sha256 of adapter_model.safetensors. */
  hash: string;
}

export interface PreparedGraph {
  config: ModelConfig;
  /** The cache folder: the base graph's, which an adapter graph's files sit in. */
  graphDir: string;
  /** The .onnx file to create the session from (model.onnx, or the adapter's lora-<key>.onnx). */
  modelPath: string;
  weightBytes: number;
  cacheHit: boolean;
  buildMs: number;
  adapter?: AdapterIdentity;
}

/** Builds (or finds in the cache) the decoder graph for a checkpoint (and adapter); returns its folder and model file. */
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
    const weightHashes = checkpoint.weights.files.map((f) => weightsFileHash(f.path, cacheDir));
    const base = prepareBaseGraph({ modelDir, checkpoint, cacheDir, graphOptions, weightHashes, log: options.log });
    const finish = (modelPath: string, weightBytes: number, cacheHit: boolean, identity?: AdapterIdentity): PreparedGraph => {
      markGraphUsed(modelPath);
      if (!cacheHit)
        pruneGraphCache(cacheDir, { limitBytes: options.cacheLimitBytes ?? DEFAULT_GRAPH_CACHE_LIMIT_BYTES, keep: [base.dir, ...(options.keepGraphDirs ?? [])], log: options.log });
      return { config: checkpoint.config, graphDir: base.dir, modelPath, weightBytes, cacheHit, buildMs: performance.now() - t0, adapter: identity };
    };
    if (!adapter) return finish(join(base.dir, MODEL_FILE), base.weightBytes, base.cacheHit);
    const identity = { dir: adapter.dir, hash: adapter.hash };
    const key = graphCacheKey({
      weightHashes,
      config: checkpoint.config,
      // the scale too: lora_alpha lives in adapter_config.json, outside the hashed tensors
      options: { ...graphOptions, adapter: { hash: adapter.hash, scale: adapter.scale } },
      builderVersion: DECODER_BUILDER_VERSION * 1000 + ADAPTER_GRAPH_VERSION,
    });
    const found = readAdapterGraphRecord(base.dir, key);
    if (found) return finish(join(base.dir, adapterGraphFiles(key).model), base.weightBytes + found.loraBytes, base.cacheHit, identity);
    options.log?.(`adding the adapter ${adapter.dir} to the ${describeGraph(graphOptions)} graph of ${modelDir} (LoRA side products; the base weights are shared)`);
    // No base weight is read here: the adapter graph references the base graph's stored weights.
    const graph = buildDecoderGraph(checkpoint.config, checkpoint.weights, graphOptions, adapterParams(INITIALIZER_PARAMS, adapter));
    const written = writeAdapterGraph(graph, {
      baseDir: base.dir,
      key,
      opsets: DECODER_OPSETS,
      isAdapterWeight: (name) => splitLoraName(name) !== undefined,
      describe: { modelDir, ...graphOptions, adapter: identity },
    });
    return finish(written.modelPath, base.weightBytes + written.loraBytes, false, identity);
  } finally {
    checkpoint.weights.close();
  }
}

type GraphOptions = Pick<DecoderGraphOptions, 'attention' | 'weightType' | 'quantization'>;

function describeGraph(o: GraphOptions): string {
  return `${o.attention}/${o.quantization ? `int${o.quantization}` : o.weightType}`;
}

interface BaseGraphSpec {
  modelDir: string;
  checkpoint: Checkpoint;
  cacheDir: string;
  graphOptions: GraphOptions;
  weightHashes: string[];
  log?: (message: string) => void;
}

/** The checkpoint's own graph (no adapter), from the cache or built and published now. */
function prepareBaseGraph({ modelDir, checkpoint, cacheDir, graphOptions, weightHashes, log }: BaseGraphSpec): { dir: string; weightBytes: number; cacheHit: boolean } {
  const key = graphCacheKey({ weightHashes, config: checkpoint.config, options: graphOptions, builderVersion: DECODER_BUILDER_VERSION });
  const cached = cachedGraph(cacheDir, key);
  if (cached.meta) return { dir: cached.dir, weightBytes: cached.meta.weightBytes, cacheHit: true };
  log?.(`building the ${describeGraph(graphOptions)} graph for ${modelDir}`);
  // quantizing is a quantized build's largest part: half of each large weight on a second thread where there is one
  const parallelQuantizer =
    graphOptions.quantization !== undefined && availableParallelism() > 1
      ? new ParallelQuantizer(
          modelDir,
          checkpoint.weights.files.map((f) => f.path),
          { log },
        )
      : undefined;
  try {
    const graph = buildDecoderGraph(checkpoint.config, checkpoint.weights, { ...graphOptions, ...(parallelQuantizer ? { parallelQuantizer } : {}) });
    // The build record goes in before the folder is published, so a complete-looking folder is complete.
    const written = writeModel(graph, cached.dir, DECODER_OPSETS, {
      finish: (tmpDir, weightBytes) => writeBuildMeta(tmpDir, weightBytes, { modelDir, ...graphOptions }),
      isComplete: isCompleteBuild,
    });
    return { dir: cached.dir, weightBytes: written.weightBytes, cacheHit: false };
  } finally {
    parallelQuantizer?.close();
  }
}

/** Prepares a graph somewhere (this thread, or a worker) and resolves to where it was written. */
export type GraphPreparer = (modelDir: string, options: PrepareGraphOptions) => Promise<PreparedGraph>;

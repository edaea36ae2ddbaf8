// From a Hugging Face checkpoint folder to a ready DecoderSession: validate, build the graph (or
// reuse the cached build), create the session on the best execution provider that works.
import * as ort from 'onnxruntime-node';
import { performance } from 'node:perf_hooks';
import { openCheckpoint } from '../model/checkpoint';
import type { ModelConfig } from '../model/config';
import { cachedGraph, defaultCacheDir, graphCacheKey, weightsFileHash, writeBuildMeta } from '../model/graph/build-cache';
import { type AttentionPath, buildDecoderGraph, DECODER_BUILDER_VERSION, DECODER_OPSETS, type WeightType } from '../model/graph/decoder';
import { MODEL_FILE, writeModel } from '../model/graph/write-model';
import { join } from 'node:path';
import { DecoderSession } from './decoder-session';
import { createWithFallback, type ExecutionProviderChoice, type ProviderAttempt } from './execution-provider';

export interface LoadModelOptions {
  executionProvider?: ExecutionProviderChoice;
  threads?: number;
  attention?: AttentionPath;
  weightType?: WeightType;
  /** Where built graphs are cached (the extension passes its global storage). */
  cacheDir?: string;
  log?: (message: string) => void;
}

export interface LoadedModel {
  dir: string;
  config: ModelConfig;
  session: DecoderSession;
  attempts: ProviderAttempt[];
  /** True when the graph came from the cache rather than being built now. */
  cacheHit: boolean;
  buildMs: number;
  sessionCreateMs: number;
}

/** Builds (or finds in the cache) the decoder graph for a checkpoint; returns its folder. */
export function prepareGraph(modelDir: string, options: LoadModelOptions = {}): { config: ModelConfig; graphDir: string; weightBytes: number; cacheHit: boolean; buildMs: number } {
  const t0 = performance.now();
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const graphOptions = { attention: options.attention ?? 'fused', weightType: options.weightType ?? 'float32' };
  const checkpoint = openCheckpoint(modelDir);
  try {
    const key = graphCacheKey({
      weightHashes: checkpoint.weights.files.map((f) => weightsFileHash(f.path, cacheDir)),
      config: checkpoint.config,
      options: graphOptions,
      builderVersion: DECODER_BUILDER_VERSION,
    });
    const cached = cachedGraph(cacheDir, key);
    if (cached.meta) {
      return { config: checkpoint.config, graphDir: cached.dir, weightBytes: cached.meta.weightBytes, cacheHit: true, buildMs: performance.now() - t0 };
    }
    options.log?.(`building the ${graphOptions.attention}/${graphOptions.weightType} graph for ${modelDir}`);
    const graph = buildDecoderGraph(checkpoint.config, checkpoint.weights, graphOptions);
    const written = writeModel(graph, cached.dir, DECODER_OPSETS);
    writeBuildMeta(cached.dir, written.weightBytes, { modelDir, ...graphOptions });
    return { config: checkpoint.config, graphDir: cached.dir, weightBytes: written.weightBytes, cacheHit: false, buildMs: performance.now() - t0 };
  } finally {
    checkpoint.weights.close();
  }
}

export async function loadModel(modelDir: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const prepared = prepareGraph(modelDir, options);
  const t0 = performance.now();
  const { session, provider, attempts } = await createWithFallback(
    { executionProvider: options.executionProvider ?? 'auto', threads: options.threads ?? 0, log: options.log },
    (_provider, sessionOptions) => ort.InferenceSession.create(join(prepared.graphDir, MODEL_FILE), sessionOptions),
  );
  return {
    dir: modelDir,
    config: prepared.config,
    session: new DecoderSession(session, prepared.config, provider, prepared.weightBytes),
    attempts,
    cacheHit: prepared.cacheHit,
    buildMs: prepared.buildMs,
    sessionCreateMs: performance.now() - t0,
  };
}

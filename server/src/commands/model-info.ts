// `kiln model info <dir> [--json]`: what a checkpoint is and where it would run.
import { openCheckpoint } from '../model/checkpoint';
import { loadModel } from '../runtime/load-model';
import { MODEL_OPTIONS, parseCommandArgs, parseModelOptions, UsageError, withUsage } from './cli-args';

const USAGE = 'usage: kiln model info <model-dir> [--json] [--ep auto|cpu|webgpu|cuda] [--threads N] [--cache DIR] [--attention fused|plain] [--dtype f32|f16]';

export async function runModelInfo(args: string[], out: (text: string) => void): Promise<number> {
  const { dir, json, options } = withUsage(USAGE, () => {
    const { values, positionals } = parseCommandArgs(args, MODEL_OPTIONS);
    if (positionals.length !== 1) throw new UsageError('expected one model folder');
    return { dir: positionals[0]!, json: values.json === true, options: parseModelOptions(values) };
  });
  const checkpoint = openCheckpoint(dir);
  let parameters = 0;
  let fileBytes = 0;
  const dtypes = new Set<string>();
  for (const name of checkpoint.weights.names()) {
    const info = checkpoint.weights.info(name);
    parameters += info.shape.reduce((a, b) => a * b, 1);
    fileBytes += info.end - info.begin;
    dtypes.add(info.dtype);
  }
  checkpoint.weights.close();
  const loaded = await loadModel(dir, options);
  const report = {
    dir,
    config: loaded.config,
    parameters,
    checkpointWeightBytes: fileBytes,
    checkpointDtypes: [...dtypes],
    loadedWeightBytes: loaded.session.weightBytes,
    executionProvider: loaded.session.provider,
    providerAttempts: loaded.attempts,
    graphCacheHit: loaded.cacheHit,
  };
  await loaded.session.release();
  if (json) {
    out(JSON.stringify(report, null, 2));
  } else {
    const c = report.config;
    out(
      [
        `model        ${dir} (${c.modelType})`,
        `parameters   ${(parameters / 1e6).toFixed(2)}M (${[...dtypes].join(', ')}, ${(fileBytes / 2 ** 20).toFixed(1)} MiB on disk)`,
        `shape        d=${c.hiddenSize} layers=${c.numLayers} heads=${c.numHeads} kv_heads=${c.numKvHeads} head_dim=${c.headDim} mlp=${c.intermediateSize} vocab=${c.vocabSize}`,
        `rope         theta=${c.ropeTheta} linear_factor=${c.ropeLinearFactor} max_positions=${c.maxPositions}`,
        `tied head    ${c.tieWordEmbeddings}   attention bias ${c.attentionBias}`,
        `provider     ${report.executionProvider}${report.providerAttempts.map((a) => `\n  skipped ${a.provider}: ${a.error}`).join('')}`,
      ].join('\n'),
    );
  }
  return 0;
}
